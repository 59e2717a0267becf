"""Data flows one way: the render pipeline (spec, plan, targets, validation, writing) imports nothing from the review
tools (render/review/), which read its output beside it."""

from __future__ import annotations

import ast
from pathlib import Path

RENDER = Path(__file__).parents[3] / "render"


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def test_the_pipeline_does_not_import_the_review_tools() -> None:
    pipeline_files = [p for p in RENDER.rglob("*.py") if "review" not in p.relative_to(RENDER).parts]
    # cli.py is the entry point: it dispatches to both.
    offenders = {
        str(p.relative_to(RENDER)): sorted(m for m in imported_modules(p) if m.startswith("render.review"))
        for p in pipeline_files
        if p.name not in ("cli.py", "__main__.py")
    }
    assert {f: m for f, m in offenders.items() if m} == {}
    assert any("render.review" in m for m in imported_modules(RENDER / "cli.py"))
