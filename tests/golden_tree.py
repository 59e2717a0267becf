"""Golden files of the rendered fixture repo: compare (tests) and regenerate (`nox -s update_golden`)."""

from __future__ import annotations

import difflib
import sys
from pathlib import Path

from render.pipeline import render_repo
from render.write import read_tree, write_tree

FIXTURE_REPO = Path(__file__).parent / "fixtures" / "repo"
GOLDEN_DIR = Path(__file__).parent / "golden"


def render_fixture() -> dict[str, str]:
    """The fixture repo rendered in memory (CRD validation is a separate test)."""
    return render_repo(FIXTURE_REPO, crd_dir=None).files


def differences(files: dict[str, str], golden: dict[str, str]) -> list[str]:
    """MISSING / DIFFER / EXTRA lines, DIFFER with a unified diff; empty when equal."""
    report = []
    for path in sorted(set(files) | set(golden)):
        if path not in golden:
            report.append(f"EXTRA   {path} (rendered, but no golden file)")
        elif path not in files:
            report.append(f"MISSING {path} (golden file, but not rendered)")
        elif files[path] != golden[path]:
            diff = difflib.unified_diff(
                golden[path].splitlines(), files[path].splitlines(), f"golden/{path}", f"rendered/{path}", lineterm=""
            )
            report.append(f"DIFFER  {path}\n" + "\n".join(diff))
    return report


def main(argv: list[str]) -> int:
    """`update` rewrites tests/golden/ from the fixture repo."""
    if argv != ["update"]:
        print("usage: python -m tests.golden_tree update", file=sys.stderr)
        return 2
    files = render_fixture()
    changed = differences(files, read_tree(GOLDEN_DIR))
    write_tree(files, GOLDEN_DIR)
    print(f"tests/golden/: {len(files)} files, {len(changed)} changed")
    for line in changed:
        print(line.splitlines()[0])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
