"""Graceful shutdown of a task: the rendered ECS container runs as a local process, Locust drives it, and a SIGTERM
arrives mid-load, as on every deploy and scale-in. Every request that started before the signal must be answered,
the process must exit 0 within the container's stopTimeout, and no process it started may outlive it.

The process runs the task definition's entryPoint + command with exactly its environment, except for what a local
process needs and a container has by itself: PATH and PYTHONPATH to this checkout, and the Serve port, moved to a
free one (a container owns its network namespace; this machine's port 8000 may be taken). Cloud Run runs the same
script with --grace-period-s=10 (render/targets/cloudrun.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
import yaml

from render.pipeline import render_repo
from tests.golden_tree import TARGETS_REPO
from tests.integration.single_app import REPO_ROOT, free_port

ENV = "fargate"
APP = "slow"
USERS = 8
DELAY_S = 1.0
READY_TIMEOUT_S = 120.0
LOCUSTFILE = Path(__file__).with_name("drain_locustfile.py")
# The slow app alone, on 0.5 CPU, with room in one replica for every Locust user: nothing queues in the proxy.
APPS = {
    "apps": [
        {
            "name": APP,
            "import_path": "tests.integration.slow_app:app_builder",
            "route_prefix": f"/{APP}",
            "args": {"delay_s": DELAY_S},
            "slo": {"p95_ms": 2000, "error_rate": 0.0, "min_rps": 1},
            "deployments": [
                {
                    "name": "Slow",
                    "num_replicas": 1,
                    "max_ongoing_requests": 2 * USERS,
                    "ray_actor_options": {"num_cpus": 0.5},
                }
            ],
        }
    ]
}


@dataclass(frozen=True)
class Stopped:
    """What happened around one SIGTERM: wall-clock time of the signal, seconds to exit, the exit code, every
    recorded request, and the processes the task had started that were still alive 10 s after it exited."""

    signalled_at: float
    exit_s: float
    returncode: int | None
    requests: list[dict[str, Any]]
    survivors: list[psutil.Process]
    log: str


@pytest.fixture(scope="module")
def container(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The ECS container definition of the slow app, rendered from a copy of the targets fixture repo."""
    repo = tmp_path_factory.mktemp("drain") / "repo"
    shutil.copytree(TARGETS_REPO, repo)
    (repo / "deployments/base/apps.yaml").write_text(yaml.safe_dump(APPS))
    env_file = repo / f"deployments/{ENV}/env.yaml"
    env = yaml.safe_load(env_file.read_text())
    del env["apps"]  # per-app overlays of the fixture's echo apps
    env_file.write_text(yaml.safe_dump(env))
    files = render_repo(repo, None, [ENV]).files
    (definition,) = json.loads(files[f"{ENV}/native/{APP}/ecs.RegisterTaskDefinition.json"])["containerDefinitions"]
    return dict(definition)


def local_env(container: dict[str, Any], port: int) -> dict[str, str]:
    """The container's environment, with the Serve port moved to `port`, plus PATH, PYTHONPATH and HOME."""
    env = {entry["name"]: entry["value"] for entry in container["environment"]}
    config = yaml.safe_load(env["SERVE_CONFIG"])
    config["http_options"]["port"] = port
    env["SERVE_CONFIG"] = yaml.safe_dump(config)
    return {
        **env,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(REPO_ROOT),
        "HOME": os.environ.get("HOME", str(REPO_ROOT)),
    }


def wait_healthy(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    """Poll `url` until it answers 200; fail if the process exits or READY_TIMEOUT_S passes."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the task exited ({process.returncode}) before it was healthy:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    pytest.fail(f"{url} not healthy after {READY_TIMEOUT_S:g} s:\n{log.read_text()[-3000:]}")


def read_requests(record: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in record.read_text().splitlines() if line]


def run_and_terminate(argv: list[str], env: dict[str, str], port: int, wait_s: float, work: Path) -> Stopped:
    """Start `argv` with `env`, load it with Locust once healthy, send it SIGTERM mid-load and wait up to `wait_s`
    for it to exit; whatever it leaves running is killed afterwards, and reported."""
    log, record = work / "task.log", work / "requests.jsonl"
    record.touch()
    with log.open("wb") as out:
        task = subprocess.Popen(argv, env=env, cwd=REPO_ROOT, stdout=out, stderr=subprocess.STDOUT)
    locust = None
    started: list[psutil.Process] = []
    try:
        wait_healthy(f"http://127.0.0.1:{port}/{APP}/healthz", task, log)
        locust_env = {**os.environ, "DRAIN_RECORD": str(record), "DRAIN_PATH": f"/{APP}"}
        locust = subprocess.Popen(
            [
                *(sys.executable, "-m", "locust", "--headless", "--locustfile", str(LOCUSTFILE)),
                *("--host", f"http://127.0.0.1:{port}", "--users", str(USERS), "--spawn-rate", str(USERS)),
                *("--run-time", "60s", "--loglevel", "WARNING", "--only-summary"),
            ],
            env=locust_env,
            cwd=work,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        # Mid-load: every user has had two answers, and the users, started together, answer in waves; half a delay
        # after a wave each has its next request in flight.
        deadline = time.monotonic() + 30
        while sum(not r["failed"] for r in read_requests(record)) < 2 * USERS and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(DELAY_S / 2)
        started = task_descendants(task)
        signalled_at = time.time()
        task.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        with contextlib.suppress(subprocess.TimeoutExpired):
            task.wait(timeout=wait_s)
        exit_s = time.monotonic() - sent
        time.sleep(1.0)  # answers on their way back to Locust
    finally:
        if locust is not None:
            locust.send_signal(signal.SIGTERM)
            locust.wait(timeout=30)
        if task.poll() is None:
            started = started or task_descendants(task)
            task.kill()
            task.wait()
        _, survivors = psutil.wait_procs(started, timeout=10)
        for leftover in survivors:
            with contextlib.suppress(psutil.NoSuchProcess):
                leftover.kill()
    return Stopped(signalled_at, exit_s, task.returncode, read_requests(record), survivors, log.read_text())


def task_descendants(task: subprocess.Popen[bytes]) -> list[psutil.Process]:
    return psutil.Process(task.pid).children(recursive=True)


def test_sigterm_mid_load_drops_no_accepted_request(container: dict[str, Any], tmp_path: Path) -> None:
    port = free_port()
    stop_timeout = container["stopTimeout"]
    stopped = run_and_terminate(
        container["entryPoint"] + container["command"], local_env(container, port), port, stop_timeout, tmp_path
    )
    before = [r for r in stopped.requests if r["start"] < stopped.signalled_at]
    in_flight = [r for r in before if r["end"] > stopped.signalled_at]
    dropped = [r for r in before if r["failed"]]
    print(
        f"\n{len(stopped.requests)} requests, {len(before)} started before SIGTERM ({len(in_flight)} in flight at"
        f" it), {len(dropped)} of those failed; exit {stopped.returncode} after {stopped.exit_s:.1f} s"
    )
    assert len(in_flight) >= USERS // 2, "the signal did not catch requests in flight"
    assert not dropped, f"{len(dropped)} requests accepted before SIGTERM failed, e.g. {dropped[:3]}"
    assert stopped.exit_s <= stop_timeout, f"still running {stop_timeout} s after SIGTERM"
    assert stopped.returncode == 0, stopped.log[-3000:]
    assert not stopped.survivors, f"left running: {[p.pid for p in stopped.survivors]}"
