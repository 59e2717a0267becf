"""The only place that writes rendered/: whole tree or nothing."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path


def read_tree(directory: Path) -> dict[str, str]:
    """Relative path → text of every file under `directory` (empty when it does not exist)."""
    if not directory.is_dir():
        return {}
    return {
        str(p.relative_to(directory)): p.read_text(encoding="utf-8")
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


def stale_files(files: dict[str, str], directory: Path) -> list[str]:
    """Paths that differ between `files` and `directory`: changed, missing or extra, sorted."""
    existing = read_tree(directory)
    return sorted(path for path in set(files) | set(existing) if files.get(path) != existing.get(path))


def write_tree(files: dict[str, str], directory: Path) -> None:
    """Replace `directory` with exactly `files`, atomically: a failure leaves the old tree as it was.

    The new tree is written beside the old one, then swapped in by renames on the same filesystem.
    """
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
