"""Who used the machine's CPU during a measured window: the system under test, the load generator, the rest.

Other people's work on a shared machine disturbs timings; every window therefore records the cores busy outside
this benchmark's process tree ("foreign"), and the benchmark waits for a quiet machine before measuring.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import psutil

from localrun.stop import stop_group

_Key = tuple[int, float]  # pid, create_time: a pid alone may be reused


def _cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


def tree(root: int) -> list[psutil.Process]:
    """`root` and all its descendants (processes that exit meanwhile are skipped)."""
    try:
        parent = psutil.Process(root)
        return [parent, *parent.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def _snapshot(processes: Iterable[psutil.Process]) -> dict[_Key, float]:
    seen = {}
    for process in processes:
        try:
            seen[process.pid, process.create_time()] = _cpu_seconds(process)
        except psutil.NoSuchProcess:
            continue
    return seen


def _busy_seconds() -> float:
    times = psutil.cpu_times()
    return sum(times) - times.idle - getattr(times, "iowait", 0.0)


def process_label(process: psutil.Process) -> str:
    """What a process is, for a CPU breakdown: Ray's title (`ServeReplica:zero-shot:ZeroShotClassifier`), a BentoML
    service worker (`bentoml ZeroShotEncoder`), uvicorn's worker, else the program or Python script it runs."""
    try:
        command = process.cmdline() or [process.name()]
    except psutil.Error:
        return "?"
    if command[0].startswith("ray::"):  # Ray titles an actor's process by its class, and the method it runs now
        return command[0].removeprefix("ray::").split(" ")[0].split(".")[0]
    if "--service-name" in command[:-1]:
        return f"bentoml {command[command.index('--service-name') + 1]}"
    if any("spawn_main" in part for part in command):
        return "uvicorn worker"
    program = os.path.basename(command[0])
    if program.startswith("python") and len(command) > 1:
        if command[1] == "-m" and len(command) > 2:
            return command[2]
        if "-c" in command:
            return f"{program} -c"
        script = [part for part in command[1:] if not part.startswith("-")][:1]
        return "/".join(script[0].split("/")[-2:]) if script else program
    return program


@dataclass(frozen=True)
class CpuUse:
    """Average busy cores over a window: the measured processes, this benchmark's whole tree (with the measured
    processes outside it), the whole machine."""

    measured_cores: float
    benchmark_cores: float
    machine_cores: float
    by_process: dict[str, float]  # the measured cores by process_label
    seconds: float  # the window's length: cores x seconds = CPU-seconds

    @property
    def foreign_cores(self) -> float:
        """Cores busy outside this benchmark: other people's work on the machine."""
        return max(0.0, self.machine_cores - self.benchmark_cores)


class CpuWindow:
    """Measures CPU over a window: `start()`, run the load, `stop()`.

    `measured` lists the processes that count (called at both ends, so that processes started meanwhile, such as a
    new Ray worker, are counted from their creation); everything else in this benchmark's tree counts as its own
    overhead (load generator, idle other system), and the machine's remaining busy time as foreign. `outside` lists
    measured processes that are not in the tree (a database server the system writes to), so that their CPU is the
    system's and not foreign.
    """

    def __init__(
        self, measured: Callable[[], list[psutil.Process]], outside: Callable[[], list[psutil.Process]] = list
    ) -> None:
        self._measured = measured
        self._outside = outside
        self._start: tuple[float, float, dict[_Key, float], dict[_Key, float]] | None = None

    def start(self) -> None:
        """Take the opening snapshot."""
        self._start = (time.perf_counter(), _busy_seconds(), _snapshot(self._measured()), _snapshot(self._ours()))

    def stop(self) -> CpuUse:
        """Take the closing snapshot; the average busy cores since start()."""
        assert self._start is not None, "stop() before start()"
        began, busy, measured, everything = self._start
        wall = time.perf_counter() - began
        machine = (_busy_seconds() - busy) / wall
        processes = self._measured()
        after = _snapshot(processes)
        by_process: dict[str, float] = {}
        for process in processes:
            with contextlib.suppress(psutil.Error):
                key = (process.pid, process.create_time())
                if key in after:
                    label = process_label(process)
                    by_process[label] = by_process.get(label, 0.0) + (after[key] - measured.get(key, 0.0)) / wall
        return CpuUse(
            measured_cores=_delta(measured, after) / wall,
            benchmark_cores=_delta(everything, _snapshot(self._ours())) / wall,
            machine_cores=machine,
            by_process=dict(sorted(by_process.items(), key=lambda item: -item[1])),
            seconds=wall,
        )

    def _ours(self) -> list[psutil.Process]:
        return [*tree(os.getpid()), *self._outside()]


def run_windowed(command: list[str], window: CpuWindow, what: str) -> tuple[str, CpuUse]:
    """Run a load generator, which prints `window-start` and `window-end` on stderr around its measured window and
    its figures on stdout; its stdout and the CPU `window` measured between the two marks.

    In a process group of its own (wrk included), stopped as one if the bench is.
    """
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        cpu = None
        assert process.stderr is not None
        for line in process.stderr:
            if line.strip() == "window-start":
                window.start()
            elif line.strip() == "window-end":
                cpu = window.stop()
                break
        out, err = process.communicate()
    finally:
        stop_group(process)
    if process.returncode != 0 or cpu is None:
        raise RuntimeError(f"{what} failed ({process.returncode}): {err[-2000:]}")
    return out, cpu


def _delta(before: dict[_Key, float], after: dict[_Key, float]) -> float:
    return sum(seconds - before.get(key, 0.0) for key, seconds in after.items())


def wait_for_quiet(max_foreign_cores: float, timeout_s: float, log: Callable[[str], None]) -> float:
    """Wait until the cores busy outside this benchmark stay under `max_foreign_cores` for 3 s (at most
    `timeout_s`); return the last figure, which the report keeps either way."""
    deadline = time.monotonic() + timeout_s
    warned = False
    while True:
        window = CpuWindow(lambda: [])
        window.start()
        time.sleep(3)
        foreign = window.stop().foreign_cores
        if foreign <= max_foreign_cores or time.monotonic() > deadline:
            if foreign > max_foreign_cores:
                log(f"machine still busy ({foreign:.2f} foreign cores) after {timeout_s:.0f} s; measuring anyway")
            return foreign
        if not warned:
            log(f"machine busy: {foreign:.2f} cores used by other processes; waiting (up to {timeout_s:.0f} s)")
            warned = True


def load_average() -> str:
    """The 1, 5 and 15 minute load averages, as `uptime` prints them."""
    return ", ".join(f"{value:.2f}" for value in os.getloadavg())


def say(message: str) -> None:
    """A progress line on stderr, with the time and the load average."""
    print(f"[bench {time.strftime('%H:%M:%S')} load {load_average()}] {message}", file=sys.stderr, flush=True)
