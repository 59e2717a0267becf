"""The pip-audit summary: findings fail the lint, unaudited packages are named, never passed off as clean."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tools.audit_report import main


def write(tmp_path: Path, dependencies: list[dict]) -> str:
    path = tmp_path / "report.json"
    path.write_text(json.dumps({"dependencies": dependencies, "fixes": []}))
    return str(path)


def test_a_finding_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report = write(
        tmp_path,
        [
            {
                "name": "requests",
                "version": "2.25.0",
                "vulns": [{"id": "GHSA-j8r2-6x86-q33q", "fix_versions": ["2.31.0"]}],
            },
            {"name": "pyyaml", "version": "6.0.3", "vulns": []},
        ],
    )
    assert main(report) == 1
    out = capsys.readouterr().out
    assert "VULNERABLE requests==2.25.0: GHSA-j8r2-6x86-q33q (fixed in: 2.31.0)" in out
    assert "2 of 2 pinned dependencies audited, 1 findings" in out


def test_unaudited_packages_are_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report = write(tmp_path, [{"name": "ray", "version": "2.60.0", "skip_reason": "Dependency not found on PyPI: ray"}])
    assert main(report) == 0
    out = capsys.readouterr().out
    assert "0 of 1 pinned dependencies audited, 0 findings" in out
    assert "NOT audited (1): ray" in out
