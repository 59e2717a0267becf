"""The rendered tree of a git ref: what Argo CD deployed from that commit.

Two sources, in this order:

1. The ref's committed `rendered/`. Argo CD syncs exactly these files, so they are what that commit deployed;
   CI's `render --check` keeps them equal to what the commit's renderer makes. No old code runs.
2. If the ref has no `rendered/`, the ref's own renderer: `python -m render --root <worktree> render --out <tmp>`
   in a temporary `git worktree add --detach`, run by this interpreter with `PYTHONPATH=<worktree>`. The old code
   renders the old spec: rendering an old spec with today's code would hide what a renderer change does.
   The worktree is removed afterwards, also when rendering fails.

A ref with neither (no `rendered/`, no `render/` package) cannot be compared: that is an error.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from render.errors import ServingError
from render.write import read_tree

RENDERED_DIR = "rendered"
RENDERER_PACKAGE = "render/__main__.py"


class GitError(ServingError):
    """A git ref cannot be read or rendered."""


@dataclass(frozen=True)
class Snapshot:
    """The rendered files of one commit (path relative to rendered/ → text) and where they came from."""

    ref: str
    commit: str
    files: dict[str, str]
    source: str


def git(root: Path, *args: str) -> str:
    """Run git in `root`; return stdout, raise GitError with git's message on failure."""
    result = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise GitError(f"git {' '.join(args)}: {result.stderr.strip() or f'exit {result.returncode}'}")
    return result.stdout


def git_bytes(root: Path, *args: str) -> bytes:
    """Run git in `root`; return stdout as bytes (archives)."""
    result = subprocess.run(["git", "-C", str(root), *args], capture_output=True, check=False)
    if result.returncode != 0:
        raise GitError(f"git {' '.join(args)}: {result.stderr.decode(errors='replace').strip()}")
    return result.stdout


def resolve(root: Path, ref: str) -> str:
    """The commit a ref names."""
    try:
        return git(root, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}").strip()
    except GitError:
        raise GitError(
            f"{ref!r} names no commit in {root}. Hint: use a branch, tag or commit, e.g. origin/main"
        ) from None


def has_path(root: Path, commit: str, path: str) -> bool:
    """Whether `path` exists in the commit's tree."""
    return bool(git(root, "ls-tree", "--name-only", commit, "--", path).strip())


def extract(root: Path, commit: str, paths: list[str], into: Path) -> None:
    """Write the files under `paths` at `commit` into the directory `into` (no checkout, no index change)."""
    archive = git_bytes(root, "archive", "--format=tar", commit, "--", *paths)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")


@contextmanager
def worktree(root: Path, commit: str) -> Iterator[Path]:
    """A detached worktree of `commit`, removed on exit whatever happens inside."""
    scratch = Path(tempfile.mkdtemp(prefix="render-ref-"))
    tree = scratch / "tree"
    try:
        git(root, "worktree", "add", "--detach", "--quiet", str(tree), commit)
        yield tree
    finally:
        if tree.exists():
            subprocess.run(
                ["git", "-C", str(root), "worktree", "remove", "--force", str(tree)], capture_output=True, check=False
            )
        subprocess.run(["git", "-C", str(root), "worktree", "prune"], capture_output=True, check=False)
        shutil.rmtree(scratch, ignore_errors=True)


def run_renderer(tree: Path, out: Path) -> None:
    """Render the worktree with its own code into `out`; raise GitError with its output when it fails."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    result = subprocess.run(
        [sys.executable, "-m", "render", "--root", str(tree), "render", "--out", str(out)],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise GitError(f"the renderer of that commit failed (exit {result.returncode}):\n{result.stderr.strip()}")


def snapshot(root: Path, ref: str) -> Snapshot:
    """The rendered tree of `ref` in the repository at `root` (see the module docstring for the source)."""
    commit = resolve(root, ref)
    short = commit[:12]
    with tempfile.TemporaryDirectory(prefix="render-ref-out-") as scratch:
        out = Path(scratch)
        if has_path(root, commit, RENDERED_DIR):
            extract(root, commit, [RENDERED_DIR], out)
            return Snapshot(ref, commit, read_tree(out / RENDERED_DIR), f"`rendered/` as committed in {short}")
        if not has_path(root, commit, RENDERER_PACKAGE):
            raise GitError(f"{ref} ({short}) has neither rendered/ nor a renderer (render/): nothing to compare with")
        with worktree(root, commit) as tree:
            run_renderer(tree, out / RENDERED_DIR)
        return Snapshot(ref, commit, read_tree(out / RENDERED_DIR), f"rendered by the renderer of {short}")
