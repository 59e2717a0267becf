"""What a server process is called in the bench's CPU breakdown."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import psutil
import pytest

from benchmarks.machine import CpuWindow, process_label


class Named:
    """A process as process_label sees it: its command line."""

    def __init__(self, *command: str) -> None:
        self._command = list(command)

    def cmdline(self) -> list[str]:
        return self._command

    def name(self) -> str:
        return os.path.basename(self._command[0])


@pytest.mark.parametrize(
    ("command", "label"),
    [
        (["ray::ServeReplica:zero-shot:ZeroShotClassifier"], "ServeReplica:zero-shot:ZeroShotClassifier"),
        (["ray::ProxyActor.receive_asgi_messages"], "ProxyActor"),
        (["/venv/bin/python", "-B", "-c", "from multiprocessing.resource_tracker import main;main(6)"], "python -c"),
        (["/usr/sbin/haproxy", "-f", "/tmp/haproxy.cfg"], "haproxy"),
        (
            ["/venv/bin/python", "-m", "_bentoml_impl.worker.service", "x:Y", "--service-name", "ZeroShotEncoder"],
            "bentoml ZeroShotEncoder",
        ),
        (["/venv/bin/python", "-c", "from multiprocessing.spawn import spawn_main; spawn_main(7)"], "uvicorn worker"),
        (["/venv/bin/python", "-m", "uvicorn", "benchmarks.tuned_fastapi:app"], "uvicorn"),
        (["/venv/bin/python", "-u", "/venv/lib/ray/dashboard/agent.py", "--node-ip"], "dashboard/agent.py"),
        (["/usr/sbin/mariadbd"], "mariadbd"),
    ],
)
def test_processes_are_named_for_what_they_run(command: list[str], label: str) -> None:
    assert process_label(Named(*command)) == label  # type: ignore[arg-type]


def test_a_window_splits_the_measured_cpu_by_process() -> None:
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        window = CpuWindow(lambda: [psutil.Process(busy.pid)])
        window.start()
        time.sleep(0.5)
        use = window.stop()
    finally:
        busy.kill()
        busy.wait()
    assert list(use.by_process) == [f"{os.path.basename(sys.executable)} -c"]
    assert sum(use.by_process.values()) == pytest.approx(use.measured_cores)
    assert use.measured_cores > 0.05  # a busy loop, on a machine others may share
