"""Golden files of the rendered fixture repos: compare (tests) and regenerate (`nox -s update_golden`).

tests/fixtures/repo (KubeRay envs) renders to tests/golden/, tests/fixtures/repo_targets (ECS and Cloud Run envs)
to tests/golden_targets/, tests/fixtures/repo_streaming (an app that streams tokens, on each target) to
tests/golden_streaming/.
"""

from __future__ import annotations

import difflib
import sys
from pathlib import Path

from render.pipeline import render_repo
from render.write import read_tree, write_tree

FIXTURE_REPO = Path(__file__).parent / "fixtures" / "repo"
GOLDEN_DIR = Path(__file__).parent / "golden"
TARGETS_REPO = Path(__file__).parent / "fixtures" / "repo_targets"
TARGETS_GOLDEN_DIR = Path(__file__).parent / "golden_targets"
STREAMING_REPO = Path(__file__).parent / "fixtures" / "repo_streaming"
STREAMING_GOLDEN_DIR = Path(__file__).parent / "golden_streaming"
GOLDEN_TREES = {FIXTURE_REPO: GOLDEN_DIR, TARGETS_REPO: TARGETS_GOLDEN_DIR, STREAMING_REPO: STREAMING_GOLDEN_DIR}


def render_fixture(repo: Path = FIXTURE_REPO) -> dict[str, str]:
    """A fixture repo rendered in memory (CRD validation is a separate test)."""
    return render_repo(repo, crd_dir=None).files


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
    """`update` rewrites every golden tree from its fixture repo."""
    if argv != ["update"]:
        print("usage: python -m tests.golden_tree update", file=sys.stderr)
        return 2
    for repo, golden in GOLDEN_TREES.items():
        files = render_fixture(repo)
        changed = differences(files, read_tree(golden))
        write_tree(files, golden)
        print(f"tests/{golden.name}/: {len(files)} files, {len(changed)} changed")
        for line in changed:
            print(line.splitlines()[0])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
