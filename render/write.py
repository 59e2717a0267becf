"""The only place that writes rendered/: whole tree or nothing."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from render.errors import OutputDirError


def read_tree(directory: Path) -> dict[str, str]:
    """Relative path → text of every file under `directory` (empty when it does not exist); bytes that are not
    UTF-8, which no render writes, read as U+FFFD, so such a file is stale rather than an error."""
    if not directory.is_dir():
        return {}
    return {
        str(p.relative_to(directory)): p.read_bytes().decode("utf-8", "replace")
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


def stale_files(files: dict[str, str], directory: Path) -> list[str]:
    """Paths that differ between `files` and `directory`: changed, missing or extra, sorted."""
    check_replaceable(files, directory)
    existing = read_tree(directory)
    return sorted(path for path in set(files) | set(existing) if files.get(path) != existing.get(path))


def write_tree(files: dict[str, str], directory: Path) -> None:
    """Replace `directory` with exactly `files`, atomically: a failure leaves the old tree as it was.

    The new tree is written beside the old one, then swapped in by renames on the same filesystem.
    """
    check_replaceable(files, directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.new-", dir=directory.parent))
    retired = directory.with_name(f".{directory.name}.old")
    try:
        for relative, text in files.items():
            path = staging / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        if retired.exists():
            shutil.rmtree(retired)
        had_old = directory.exists()
        if had_old:
            directory.rename(retired)
        try:
            staging.rename(directory)
        except BaseException:
            if had_old:
                retired.rename(directory)
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    shutil.rmtree(retired, ignore_errors=True)


def check_replaceable(files: dict[str, str], directory: Path) -> None:
    """Raise OutputDirError unless replacing `directory` by `files` can only lose an earlier render.

    Replacing deletes whatever the new tree does not hold, so a mistyped output directory (`--out .`, `--out ~`,
    `--out deployments`, a folder of hand-written manifests) would be wiped. A rendered tree always shares paths
    with the next render (rendered/argocd/ at least), so an existing, non-empty directory holding none of the paths
    `files` has is refused: checked by those paths, without walking a directory that may be a whole disk.
    """
    if directory.exists() and not directory.is_dir():
        raise OutputDirError(f"{directory}: not a directory")
    if not directory.is_dir() or any((directory / path).is_file() for path in files):
        return
    present = next(directory.iterdir(), None)
    if present is not None:
        raise OutputDirError(
            f"{directory}: holds files ({present.name}, ...) but none that a render writes, so it is not an earlier "
            "render; rendering replaces the whole directory and would delete them. Hint: choose a new or empty "
            "directory, or remove this one first"
        )
