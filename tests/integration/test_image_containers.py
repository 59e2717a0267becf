"""The serving image runs what ECS and Cloud Run are told to run: a container of the image with exactly the rendered
command (ECS: entryPoint + command; Cloud Run: command + args), environment (secrets resolved into plain variables,
as both platforms inject them), port and memory limit. It must pass the platform's health check (ECS: the task
definition's command, run inside the container with `docker exec`; Cloud Run: an HTTP GET of the startup probe's
path), answer `/healthz` and `/predict` from a model mounted read-only at the path the spec's file:// URI names, and
under load, on `docker stop -t <grace>` (SIGTERM, then SIGKILL after the platform's grace: ECS stopTimeout, Cloud
Run's 10 s), drain with no failed request among those sent before the signal and exit 0 in time.

It needs a Docker engine and skips, saying so, when none answers. The image is $SERVING_IMAGE when set, else it is
built here (`tools/image.py`): on the local Debian base where it can be made, since no registry may be reachable,
else on the Dockerfile's production base. Every container, network and tag it creates is removed.
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
import yaml

from tests.golden_tree import TARGETS_REPO
from tests.integration.serving_image import APP, docker, logs, model_volume, needs_engine, render_app, serving_image
from tests.integration.single_app import free_port

USERS = 8
READY_TIMEOUT_S = 300.0  # ECS healthCheck.startPeriod; Cloud Run's startup probe allows 240 s
CLOUD_RUN_GRACE_S = 10  # Cloud Run's time between SIGTERM and SIGKILL (its container contract)
DB_URL = "sqlite:////tmp/predictions.sqlite"  # the value of the PREDICTION_DB_URL secret inside the container

pytestmark = needs_engine


@pytest.fixture(scope="module")
def image() -> Iterator[str]:
    """The serving image (serving_image.py)."""
    with serving_image() as tag:
        yield tag


@dataclass(frozen=True)
class Launch:
    """What a platform starts: the container's argv, environment, port, memory and grace, and its health check."""

    target: str
    argv: list[str]
    env: dict[str, str]
    container_port: int
    memory_mib: int
    grace_s: int
    health_exec: list[str] | None  # a command run inside the container (ECS), else an HTTP GET of health_path
    health_path: str


def ecs_launch(files: dict[str, str]) -> Launch:
    """The Fargate env's task definition: entryPoint + command, environment + secrets, stopTimeout, healthCheck."""
    (container,) = json.loads(files[f"fargate/native/{APP}/ecs.RegisterTaskDefinition.json"])["containerDefinitions"]
    secrets = {s["name"]: DB_URL for s in container.get("secrets", [])}
    assert set(secrets) <= {"PREDICTION_DB_URL"}, secrets
    (mapping,) = container["portMappings"]
    assert mapping["protocol"] == "tcp", mapping
    command = container["healthCheck"]["command"]
    assert command[0] == "CMD", command
    return Launch(
        "ecs",
        container["entryPoint"] + container["command"],
        {**{e["name"]: e["value"] for e in container["environment"]}, **secrets},
        mapping["containerPort"],
        container["memory"],
        container["stopTimeout"],
        command[1:],
        f"/{APP}/healthz",
    )


def cloudrun_launch(files: dict[str, str]) -> Launch:
    """The Cloud Run env's knative Service: command + args, env (secretKeyRef resolved), limits, startup probe."""
    (container,) = yaml.safe_load(files[f"run/native/{APP}/run.v1.Service.yaml"])["spec"]["template"]["spec"][
        "containers"
    ]
    env = {}
    for entry in container["env"]:
        assert "value" in entry or entry["name"] == "PREDICTION_DB_URL", entry
        env[entry["name"]] = entry.get("value", DB_URL)
    (port,) = container["ports"]
    memory = container["resources"]["limits"]["memory"]
    mib = {"Mi": 1, "Gi": 1024}[memory[-2:]] * float(memory[:-2])
    return Launch(
        "cloudrun",
        container["command"] + container["args"],
        env,
        port["containerPort"],
        int(mib),
        CLOUD_RUN_GRACE_S,
        None,
        container["startupProbe"]["httpGet"]["path"],
    )


@pytest.fixture(scope="module", params=["ecs", "cloudrun"])
def launch(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Launch:
    if request.param == "ecs":
        return ecs_launch(render_app(tmp_path_factory, TARGETS_REPO, "fargate", 4 * USERS))
    return cloudrun_launch(render_app(tmp_path_factory, TARGETS_REPO, "run", 4 * USERS))


@dataclass
class Task:
    """A running container of a launch and how to reach it."""

    name: str
    url: str
    launch: Launch


@pytest.fixture
def task(image: str, launch: Launch) -> Iterator[Task]:
    """The launch's one container, on a bridge network of its own, its port published on 127.0.0.1."""
    name = f"it-{launch.target}-{uuid.uuid4().hex[:8]}"
    docker("network", "create", name)
    port = free_port()
    entrypoint, *arguments = launch.argv
    args = [
        *("run", "--detach", "--name", name, "--network", name),
        *("--publish", f"127.0.0.1:{port}:{launch.container_port}/tcp"),
        *("--memory", f"{launch.memory_mib}m", "--stop-timeout", str(launch.grace_s)),
        *model_volume(),
        *(arg for variable in sorted(launch.env) for arg in ("--env", variable)),
        *("--entrypoint", entrypoint),
        image,
        *arguments,
    ]
    try:
        docker(*args, env={**os.environ, **launch.env})  # `--env NAME` takes the value from the CLI's environment
        yield Task(name, f"http://127.0.0.1:{port}", launch)
    finally:
        docker("rm", "--force", name, check=False)
        docker("network", "rm", name, check=False)


def healthy(task: Task) -> bool:
    """One health check as the platform makes it."""
    if task.launch.health_exec is not None:
        return docker("exec", task.name, *task.launch.health_exec, check=False).returncode == 0
    try:
        return httpx.get(f"{task.url}{task.launch.health_path}", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def wait_healthy(task: Task) -> float:
    """Health-check every 2 s (ECS: 30 s, Cloud Run: 10 s) until one passes; the seconds it took."""
    started = time.monotonic()
    while time.monotonic() - started < READY_TIMEOUT_S:
        state = docker("inspect", "--format", "{{.State.Running}}", task.name).stdout.strip()
        if state != "true":
            pytest.fail(f"the container stopped before it was healthy:\n{logs(task.name)}")
        if healthy(task):
            return time.monotonic() - started
        time.sleep(2)
    pytest.fail(f"health check failing after {READY_TIMEOUT_S:g} s:\n{logs(task.name)}")


@dataclass(frozen=True)
class Call:
    start: float
    end: float
    failed: bool
    error: str = ""


def load(url: str, stop: threading.Event, calls: list[Call]) -> None:
    """Post /predict without pause until `stop`, recording every call (wall clock)."""
    with httpx.Client(timeout=30) as client:
        while not stop.is_set():
            start = time.time()
            try:
                response = client.post(f"{url}/predict", json={"values": [1.5, -2.0, 3.0] * 100})
                failed, error = response.status_code != 200, str(response.status_code)
            except httpx.HTTPError as exc:
                failed, error = True, repr(exc)[:200]
            calls.append(Call(start, time.time(), failed, error if failed else ""))


def test_the_container_serves_and_drains(task: Task) -> None:
    ready_s = wait_healthy(task)
    app_url = f"{task.url}/{APP}"
    assert httpx.get(f"{app_url}/healthz", timeout=5).status_code == 200
    answer = httpx.post(f"{app_url}/predict", json={"values": [1.0, 2.5, -4.0]}, timeout=10)
    assert answer.status_code == 200, answer.text
    assert answer.json()["values"] == [2.0, 5.0, -8.0]

    stop_timeout = task.launch.grace_s
    calls: list[Call] = []
    stop = threading.Event()
    users = [threading.Thread(target=load, args=(app_url, stop, calls)) for _ in range(USERS)]
    for user in users:
        user.start()
    try:
        deadline = time.monotonic() + 30
        while sum(not c.failed for c in calls) < 20 * USERS and time.monotonic() < deadline:
            time.sleep(0.05)
        signalled_at = time.time()
        stopped = time.monotonic()
        docker("stop", "--time", str(stop_timeout), task.name)  # SIGTERM, then SIGKILL after the grace
        exit_s = time.monotonic() - stopped
    finally:
        stop.set()
        for user in users:
            user.join(timeout=60)
    state = json.loads(docker("inspect", "--format", "{{json .State}}", task.name).stdout)
    before = [c for c in calls if c.start < signalled_at]
    in_flight = [c for c in before if c.end > signalled_at]
    dropped = [c for c in before if c.failed]
    print(
        f"\n{task.launch.target}: healthy after {ready_s:.0f} s; {len(calls)} calls, {len(before)} sent before"
        f" SIGTERM ({len(in_flight)} in flight at it), {len(dropped)} of those failed; exit {state['ExitCode']} after"
        f" {exit_s:.1f} s of a {stop_timeout} s grace"
    )
    assert in_flight, "the signal caught no request in flight"
    assert not dropped, f"{len(dropped)} calls sent before SIGTERM failed, e.g. {dropped[:3]}"
    assert exit_s < stop_timeout, f"not stopped within its {stop_timeout} s grace (SIGKILL):\n{logs(task.name)}"
    assert state["ExitCode"] == 0 and not state["OOMKilled"], f"{state}\n{logs(task.name)}"
