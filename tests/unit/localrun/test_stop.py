"""The stop rule of the local runners, on real signals and real processes (Ray's part: tests/integration)."""

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from localrun.stop import signals_held, stop_group, stop_on_signals


@pytest.fixture
def handlers() -> Iterator[None]:
    """The test's signal handlers are put back after it."""
    saved = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    yield
    for signum, handler in saved.items():
        signal.signal(signum, handler)


def signal_self(signum: int) -> None:
    os.kill(os.getpid(), signum)
    time.sleep(0.5)  # the handler runs in the main thread at its next bytecode


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_a_signal_unwinds_as_ctrl_c_does(handlers: None, signum: int) -> None:
    stop_on_signals()
    with pytest.raises(KeyboardInterrupt):
        signal_self(signum)


def test_signals_are_held_while_stopping(handlers: None, capsys: pytest.CaptureFixture[str]) -> None:
    stop_on_signals()
    with signals_held("stopping the test"):
        signal_self(signal.SIGTERM)
        signal_self(signal.SIGINT)
    assert capsys.readouterr().err.splitlines() == [
        "SIGTERM: still stopping the test",
        "SIGINT: still stopping the test",
    ]
    with pytest.raises(KeyboardInterrupt):
        signal_self(signal.SIGTERM)


def tree(tmp_path: Path, script: str) -> tuple[subprocess.Popen[bytes], list[psutil.Process]]:
    """A Python parent running `script` in a session of its own, and its processes once they have all started."""
    ready = tmp_path / "ready"
    code = "\n".join(
        ["import pathlib, signal, subprocess, time", script, f"pathlib.Path({str(ready)!r}).touch()", "time.sleep(600)"]
    )
    parent = subprocess.Popen([sys.executable, "-c", code], start_new_session=True)
    deadline = time.monotonic() + 30
    while not ready.exists():
        assert time.monotonic() < deadline and parent.poll() is None, "the process tree did not start"
        time.sleep(0.05)
    return parent, [psutil.Process(parent.pid), *psutil.Process(parent.pid).children(recursive=True)]


def running(processes: list[psutil.Process]) -> list[psutil.Process]:
    return [p for p in processes if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


def test_a_group_stops_on_the_ctrl_c_it_did_not_get_from_the_terminal(tmp_path: Path) -> None:
    parent, processes = tree(tmp_path, "child = subprocess.Popen(['sleep', '600'])")
    stop_group(parent)
    assert parent.returncode != 0  # KeyboardInterrupt: Python's answer to SIGINT
    assert not running(processes)


def test_a_group_that_ignores_sigint_and_sigterm_is_killed(tmp_path: Path) -> None:
    script = "for s in (signal.SIGINT, signal.SIGTERM): signal.signal(s, signal.SIG_IGN)"
    parent, processes = tree(tmp_path, script)
    stop_group(parent, timeout_s=0.5)
    assert parent.returncode == -signal.SIGKILL
    assert not running(processes)


def test_a_child_in_a_session_of_its_own_goes_too(tmp_path: Path) -> None:
    # Out of the group a killpg reaches, as Ray's own node processes would be: stopped by PID.
    script = "child = subprocess.Popen(['sleep', '600'], start_new_session=True)"
    parent, processes = tree(tmp_path, script)
    assert len(processes) == 2
    stop_group(parent)
    assert not running(processes)
