"""How a local run (`nox -s serve`, `loadtest`, `bench`, `reliability`) stops: on Ctrl-C, SIGTERM or SIGHUP alike,
and leaving nothing it started behind.

The rule, in one place:
- a signal interrupts the main thread as Ctrl-C does (KeyboardInterrupt), so every `finally` and context manager
  unwinds whichever signal came: a terminal sends SIGINT to the whole foreground group, nox follows with SIGTERM to
  its child if that one is still running after `interrupt_timeout`;
- once stopping, further signals are held: a second Ctrl-C or nox's SIGTERM cannot cut a shutdown short and leak
  what it was stopping;
- Serve and Ray stop through their own shutdown, then whatever Ray started and outlives it is killed by PID;
- any other child runs in a process group of its own (`start_new_session=True`) and is stopped as a group by
  `stop_group`: it gets no SIGINT from the terminal, and its own children go with it. Never by name.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any

import psutil

# Longest a stop of Serve and Ray takes: Serve's graceful shutdown waits up to 30 s for its controller (ray.serve's
# ServeControllerClient.shutdown), Ray gives each of its processes 1 s before SIGKILL, then REAP_TIMEOUT_S. The
# noxfile, which cannot import this, gives its long-running sessions' commands as long before SIGTERM, and as long
# again before SIGKILL; the tests hold a stop to it.
STOP_TIMEOUT_S = 60
REAP_TIMEOUT_S = 5.0
GROUP_STOP_TIMEOUT_S = 10.0
SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _interrupt(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def stop_on_signals() -> None:
    """From now on SIGTERM and SIGHUP interrupt the main thread as Ctrl-C does.

    Call it again after ray.init: the driver's core worker installs a SIGTERM handler of its own, which prints a
    stack dump and exits without stopping what Ray started.
    """
    for signum in SIGNALS:
        signal.signal(signum, _interrupt)


@contextlib.contextmanager
def signals_held(doing: str) -> Iterator[None]:
    """While inside: SIGINT, SIGTERM and SIGHUP print that `doing` is under way and change nothing."""

    def hold(signum: int, _frame: FrameType | None) -> None:
        print(f"{signal.Signals(signum).name}: still {doing}", file=sys.stderr, flush=True)

    previous = {signum: signal.signal(signum, hold) for signum in SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@contextlib.contextmanager
def local_ray(cwd: Path | None = None, **init_args: Any) -> Iterator[Any]:
    """`ray.init(**init_args)` (from `cwd` if given) for the block, which gets its context; leaving it however it is
    left (return, error, Ctrl-C, SIGTERM), Serve and Ray shut down with signals held, then each process Ray started
    that is still alive is killed by PID: a raylet that outlives its 1 s of grace is SIGKILLed, and its agents,
    orphaned, would stay (`ray::DashboardAgent`, `ray::RuntimeEnvAgent`, about 215 MB).
    """
    import ray

    before = _children()
    started: list[int] = []
    try:
        with contextlib.chdir(cwd) if cwd is not None else contextlib.nullcontext():
            context = ray.init(**init_args)
        # ray.init starts the node's processes (GCS, raylet, dashboard, log monitor) as children of this one, and
        # only them while it runs; everything else Ray starts descends from these.
        started = sorted(_children() - before)
        stop_on_signals()
        yield context
    finally:
        print("stopping Serve and Ray", file=sys.stderr, flush=True)
        with signals_held("stopping Serve and Ray"):
            stop_ray(started or sorted(_children() - before))  # ray.init interrupted: what it had started


def stop_ray(started: list[int]) -> None:
    """Shut down Serve, then Ray; then SIGKILL whatever is still alive of the processes `started` (PIDs) and their
    descendants."""
    import ray
    from ray import serve

    tree = _with_descendants(started)  # now: once their raylet is gone, orphans are no one's descendants
    try:
        if ray.is_initialized():  # else serve.shutdown would start a Ray to look for Serve in
            serve.shutdown()
    finally:
        ray.shutdown()
        _reap(tree, REAP_TIMEOUT_S)


def stop_group(process: subprocess.Popen[Any], timeout_s: float = GROUP_STOP_TIMEOUT_S) -> None:
    """Stop a child started with `start_new_session=True`, with its process group, the way nox stops its own: SIGINT
    (the Ctrl-C a group of its own does not get from the terminal), SIGTERM after `timeout_s`, SIGKILL after
    `timeout_s` more; then whatever the group's processes had started and outlives them is killed by PID. Signals
    are held meanwhile. A child that has exited gets only the SIGKILL for what it may have left in its group."""
    with signals_held(f"stopping process group {process.pid}"):
        members = _with_descendants([process.pid])
        for signum in (signal.SIGINT, signal.SIGTERM):
            if process.poll() is not None:
                break
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signum)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout_s)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        _reap(members, REAP_TIMEOUT_S)


def _children() -> set[int]:
    return {child.pid for child in psutil.Process().children()}


def _with_descendants(pids: list[int]) -> list[psutil.Process]:
    found = {}
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            process = psutil.Process(pid)
            for member in [process, *process.children(recursive=True)]:
                found[member.pid] = member
    return list(found.values())


def _reap(processes: list[psutil.Process], timeout_s: float) -> None:
    """Wait up to `timeout_s` for `processes` to end, then SIGKILL the rest (psutil checks that each is still the
    process it was, not a reused PID) and wait for those to end too."""
    alive = _ended_within(processes, timeout_s)
    for process in alive:
        with contextlib.suppress(psutil.Error):
            print(f"killing {process.pid} ({process.name()}), still running after the stop", file=sys.stderr)
            process.kill()
    _ended_within(alive, timeout_s)


def _ended_within(processes: list[psutil.Process], timeout_s: float) -> list[psutil.Process]:
    """Those of `processes` still running after up to `timeout_s`. A zombie has ended: an orphan waits on a parent
    that may never reap it."""
    deadline = time.monotonic() + timeout_s
    while (alive := [process for process in processes if _running(process)]) and time.monotonic() < deadline:
        time.sleep(0.1)
    return alive


def _running(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False
