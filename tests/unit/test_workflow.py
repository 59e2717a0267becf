"""Every `nox -s <session>` that CI calls (the GitHub Actions workflow, .ci/run) names a session of noxfile.py."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO_ROOT = Path(__file__).parents[2]
WORKFLOWS = sorted((REPO_ROOT / ".github/workflows").glob("*.yml"))
NOX_CALL = re.compile(r"\bnox -s ([\w-]+)")


def sessions() -> set[str]:
    """Names of the functions of noxfile.py decorated with @nox.session(...)."""
    tree = ast.parse((REPO_ROOT / "noxfile.py").read_text())
    return {
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef)
        and any(ast.unparse(d).startswith("nox.session") for d in node.decorator_list)
    }


def run_scripts(node: Any) -> Iterator[str]:
    """Every `run:` script of a workflow."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "run" and isinstance(value, str):
                yield value
            else:
                yield from run_scripts(value)
    elif isinstance(node, list):
        for item in node:
            yield from run_scripts(item)


def test_there_is_a_workflow() -> None:
    assert WORKFLOWS


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_workflow_calls_only_existing_sessions(workflow: Path) -> None:
    called = {name for script in run_scripts(yaml.safe_load(workflow.read_text())) for name in NOX_CALL.findall(script)}
    assert called, f"{workflow.name} calls no nox session"
    assert not called - sessions(), f"{workflow.name} calls sessions noxfile.py lacks: {sorted(called - sessions())}"


def test_ci_run_calls_only_existing_sessions() -> None:
    called = set(NOX_CALL.findall((REPO_ROOT / ".ci/run").read_text()))
    assert not called - sessions(), f".ci/run calls sessions noxfile.py lacks: {sorted(called - sessions())}"
