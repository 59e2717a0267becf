"""The bad-spec corpus (tests/bad_specs/) through the CLI: exit 1, file + key path, no traceback, nothing written."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from render.cli import main
from render.write import read_tree
from tests.golden_tree import FIXTURE_REPO

CORPUS = Path(__file__).parents[2] / "bad_specs"
CASES = yaml.safe_load((CORPUS / "cases.yaml").read_text())


@pytest.fixture(scope="module")
def rendered_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fixture repo with a good rendered/ tree, rendered once."""
    repo = tmp_path_factory.mktemp("good") / "repo"
    shutil.copytree(FIXTURE_REPO, repo)
    assert main(["--root", str(repo), "render"]) == 0
    return repo


def test_corpus_is_large_enough() -> None:
    assert len(CASES) >= 20
    assert sorted(c["case"] for c in CASES) == sorted(p.name for p in CORPUS.glob("*.yaml") if p.name != "cases.yaml")


@pytest.mark.parametrize("case", CASES, ids=[c["case"] for c in CASES])
def test_bad_spec_is_refused_with_file_and_path(
    case: dict[str, Any], rendered_repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(rendered_repo, repo)
    before = read_tree(repo / "rendered")
    shutil.copy(CORPUS / case["case"], repo / case["replaces"])
    assert main(["--root", str(repo), "render"]) == 1
    err = capsys.readouterr().err
    # One expected line, or several for a file with more than one mistake.
    for expected in case["expect"] if isinstance(case["expect"], list) else [case["expect"]]:
        assert expected in err
    assert "Traceback" not in err
    assert "nothing was written" in err
    assert read_tree(repo / "rendered") == before


def test_cli_process_prints_no_traceback(rendered_repo: Path, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(rendered_repo, repo)
    shutil.copy(CORPUS / "secret_as_value.yaml", repo / "deployments/dev/env.yaml")
    result = subprocess.run(
        [sys.executable, "-m", "render", "--root", str(repo), "render"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 1
    assert result.stderr.startswith("deployments/dev/env.yaml: env.secrets.DB_URL: got 'mysql://root:pw@db/x';")
    assert "Traceback" not in result.stderr
