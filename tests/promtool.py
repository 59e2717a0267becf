"""The rendered PrometheusRules as Prometheus reads them, checked and tested by the real promtool (Debian's
`prometheus` package); the unit tests skip, saying so, where it is not installed."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool is not on PATH (apt-get install --no-install-recommends prometheus)"
)


def rule_groups(rendered_rule: str) -> list[dict[str, Any]]:
    """The rule groups of a rendered PrometheusRule file: what prometheus-operator hands Prometheus as a rule file."""
    manifest = yaml.safe_load(rendered_rule)
    assert manifest["kind"] == "PrometheusRule", manifest["kind"]
    return list(manifest["spec"]["groups"])


def write_rule_file(groups: list[dict[str, Any]], path: Path) -> Path:
    """A Prometheus rule file holding `groups`."""
    path.write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
    return path


def promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """Run promtool; its output (stdout and stderr) is in `.stdout`."""
    assert PROMTOOL is not None
    return subprocess.run(
        [PROMTOOL, *map(str, args)], capture_output=False, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
