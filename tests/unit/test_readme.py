"""The README's commands run as written: every `nox -s` it shows names a session, every repository path and link it
gives exists, and the shell blocks marked `<!-- runnable -->` run, exactly as written, and succeed."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.unit.test_workflow import NOX_CALL, REPO_ROOT, sessions

README = REPO_ROOT / "README.md"
RUNNABLE = "<!-- runnable -->"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)
TOP_LEVEL = tuple(f"{p.name}/" for p in REPO_ROOT.iterdir() if p.is_dir() and not p.name.startswith("."))
# A repository path in backquotes (`deployments/base/apps.yaml`); placeholders (<env>) and globs are not paths.
BACKQUOTED_PATH = re.compile(r"`((?:\.github/|\.ci/)?[\w.-]+(?:/[\w.-]+)+/?)`")
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")
MAX_LINES = 200


def shell_blocks() -> list[tuple[str, bool]]:
    """(text, runnable) of every bash block of the README."""
    text = README.read_text(encoding="utf-8")
    blocks = []
    for match in FENCE.finditer(text):
        if match.group(1) != "bash":
            continue
        before = text[: match.start()].rstrip().splitlines()
        blocks.append((match.group(2), bool(before) and before[-1].strip() == RUNNABLE))
    return blocks


def commands(block: str) -> list[str]:
    """The commands of a block: continuation lines joined, comments and blank lines dropped."""
    joined = block.replace("\\\n", " ")
    return [c for line in joined.splitlines() if (c := line.split(" #", 1)[0].strip()) and not c.startswith("#")]


def test_the_readme_is_short() -> None:
    lines = len(README.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"README.md has {lines} lines; the rest belongs on the docs site (docs/)"


def test_every_nox_session_it_names_exists() -> None:
    named = set(NOX_CALL.findall(README.read_text(encoding="utf-8")))
    assert named, "the README names no nox session"
    assert not named - sessions(), f"README.md names sessions noxfile.py lacks: {sorted(named - sessions())}"


def test_every_repository_path_and_link_exists() -> None:
    text = README.read_text(encoding="utf-8")
    paths = {p for p in BACKQUOTED_PATH.findall(text) if p.startswith((*TOP_LEVEL, ".github/", ".ci/"))}
    links = {link for link in LINK.findall(text) if "://" not in link}
    assert paths and links
    missing = sorted(p for p in paths | links if not (REPO_ROOT / p).exists() and not _generated(p))
    assert not missing, f"README.md names paths that do not exist: {missing}"


def _generated(path: str) -> bool:
    """Paths a documented command creates (build/, models/, reports/) are not in a fresh checkout."""
    return path.startswith(("build/", "models/", "reports/"))


def test_some_blocks_are_runnable() -> None:
    assert any(runnable for _, runnable in shell_blocks())


@pytest.mark.parametrize(
    "command",
    [c for block, runnable in shell_blocks() if runnable for c in commands(block)],
)
def test_runnable_command_succeeds(command: str) -> None:
    """Run from the repository root with the nox of this environment, as a user would type it."""
    argv = shlex.split(command)
    assert argv[0] == "nox", f"a runnable block runs nox sessions only: {command}"
    nox_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{nox_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    result = subprocess.run(argv, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=900)
    output = result.stdout[-3000:] + result.stderr[-3000:]
    assert result.returncode == 0, f"{command} exited {result.returncode}:\n{output}"
