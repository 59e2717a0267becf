"""The serving image runs an ECS task definition as ECS would: a container of the image with exactly the rendered
entryPoint, command, environment (secrets injected as ECS injects them, as plain variables), port mapping and
memory limit; its health check command run inside it with `docker exec`; `/healthz` and `/predict` answered from a
model mounted read-only at the path the spec names; and `docker stop -t <stopTimeout>` (SIGTERM, then SIGKILL) under
load drains with no failed request among those sent before the signal, exiting 0 in time.

It needs a Docker engine and skips, saying so, when none answers. The image is $SERVING_IMAGE when set, else it is
built here (`tools/image.py`): on the local Debian base where it can be made, since no registry may be reachable,
else on the Dockerfile's production base. Every container, network and tag it creates is removed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import yaml

from render.pipeline import render_repo
from tests.golden_tree import TARGETS_REPO
from tests.integration.single_app import REPO_ROOT, free_port
from tools import image as image_tool

ENV = "fargate"
APP = "doubleit"
WORKDIR = "/home/ray"  # the image's working directory: relative file:// model URIs resolve against it
MODEL = "models/doubleit/doubleit.pt"
USERS = 8
READY_TIMEOUT_S = 300.0  # the task definition's healthCheck.startPeriod


def _no_engine() -> str | None:
    """Why no Docker engine can be used, or None."""
    try:
        image_tool.engine_version()
    except image_tool.ImageError as error:
        return str(error)
    return None


_NO_ENGINE = _no_engine()
pytestmark = pytest.mark.skipif(_NO_ENGINE is not None, reason=f"needs a Docker engine: {_NO_ENGINE}")


def docker(*args: str, check: bool = True, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=check, env=env)


@pytest.fixture(scope="module")
def image() -> Iterator[str]:
    """$SERVING_IMAGE, else the Dockerfile built under a tag of this run (removed after; shared layers stay)."""
    given = os.environ.get("SERVING_IMAGE")
    if given:
        yield given
        return
    tag = f"serving-toolkit:it-{uuid.uuid4().hex[:8]}"
    try:
        image_tool.ensure_local_base()
        base: str | None = image_tool.LOCAL_BASE
        print(f"\nbuilding {tag} on {base} (Debian bookworm's Python by debootstrap), not the production base")
    except image_tool.ImageError as error:
        base = None
        print(f"\nbuilding {tag} on the Dockerfile's production base ({error})")
    image_id, size, seconds = image_tool.build(tag, base)
    print(f"image {image_id[:19]}, {size / 1e9:.2f} GB, built in {seconds:.0f} s")
    try:
        yield tag
    finally:
        docker("rmi", tag, check=False)


@pytest.fixture(scope="module")
def task_definition(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The RegisterTaskDefinition body of the doubleit app on the Fargate fixture env, its model a file:// URI."""
    manifest = json.loads((REPO_ROOT / "models/manifest.json").read_text())[APP]
    assert manifest["uri"] == f"file://{MODEL}", manifest
    repo = tmp_path_factory.mktemp("image-ecs") / "repo"
    shutil.copytree(TARGETS_REPO, repo)
    app = {
        "name": APP,
        "import_path": "serve_apps.doubleit.app:app_builder",
        "route_prefix": f"/{APP}",
        "model": {"uri": manifest["uri"], "sha256": manifest["sha256"]},
        "slo": {"p95_ms": 50, "error_rate": 0.0, "min_rps": 10},
        "deployments": [
            {
                "name": "DoubleIt",
                "num_replicas": 1,
                "max_ongoing_requests": 4 * USERS,
                "ray_actor_options": {"num_cpus": 0.25},
            }
        ],
    }
    (repo / "deployments/base/apps.yaml").write_text(yaml.safe_dump({"apps": [app]}))
    env_file = repo / f"deployments/{ENV}/env.yaml"
    env = yaml.safe_load(env_file.read_text())
    del env["apps"]  # per-app overlays of the fixture's echo apps
    env_file.write_text(yaml.safe_dump(env))
    files = render_repo(repo, None, [ENV]).files
    return dict(json.loads(files[f"{ENV}/native/{APP}/ecs.RegisterTaskDefinition.json"]))


@dataclass
class Task:
    """A running container of the task definition and how to reach it."""

    name: str
    url: str
    container: dict[str, Any]


@pytest.fixture
def task(image: str, task_definition: dict[str, Any]) -> Iterator[Task]:
    """The task's one container, on a bridge network of its own, its port published on 127.0.0.1."""
    (container,) = task_definition["containerDefinitions"]
    name = f"it-ecs-{uuid.uuid4().hex[:8]}"
    docker("network", "create", name)
    env = {e["name"]: e["value"] for e in container["environment"]}
    # ECS resolves each secret's valueFrom into a variable; here the prediction log's URL points at a file.
    secrets = {s["name"]: "sqlite:////tmp/predictions.sqlite" for s in container.get("secrets", [])}
    assert set(secrets) <= {"PREDICTION_DB_URL"}, secrets
    variables = {**env, **secrets}
    (mapping,) = container["portMappings"]
    port = free_port()
    args = [
        *("run", "--detach", "--name", name, "--network", name),
        *("--publish", f"127.0.0.1:{port}:{mapping['containerPort']}/{mapping['protocol']}"),
        *("--memory", f"{container['memory']}m", "--stop-timeout", str(container["stopTimeout"])),
        *("--volume", f"{REPO_ROOT / MODEL}:{WORKDIR}/{MODEL}:ro"),
        *(arg for variable in sorted(variables) for arg in ("--env", variable)),
        *("--entrypoint", container["entryPoint"][0]),
        image,
        *container["entryPoint"][1:],
        *container["command"],
    ]
    try:
        docker(*args, env={**os.environ, **variables})  # `--env NAME` takes the value from the CLI's environment
        yield Task(name, f"http://127.0.0.1:{port}/{APP}", container)
    finally:
        docker("rm", "--force", name, check=False)
        docker("network", "rm", name, check=False)


def logs(task: Task) -> str:
    result = docker("logs", "--tail", "60", task.name, check=False)
    return (result.stdout + result.stderr)[-4000:]


def wait_healthy(task: Task) -> float:
    """Run the healthCheck command with `docker exec` until it exits 0 (every 2 s, not ECS's 30); the seconds."""
    command = task.container["healthCheck"]["command"]
    assert command[0] == "CMD", command
    started = time.monotonic()
    while time.monotonic() - started < READY_TIMEOUT_S:
        state = docker("inspect", "--format", "{{.State.Running}}", task.name).stdout.strip()
        if state != "true":
            pytest.fail(f"the container stopped before it was healthy:\n{logs(task)}")
        if docker("exec", task.name, *command[1:], check=False).returncode == 0:
            return time.monotonic() - started
        time.sleep(2)
    pytest.fail(f"health check failing after {READY_TIMEOUT_S:g} s:\n{logs(task)}")


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


def test_the_ecs_task_serves_and_drains_in_its_container(task: Task) -> None:
    ready_s = wait_healthy(task)
    assert httpx.get(f"{task.url}/healthz", timeout=5).status_code == 200
    answer = httpx.post(f"{task.url}/predict", json={"values": [1.0, 2.5, -4.0]}, timeout=10)
    assert answer.status_code == 200, answer.text
    assert answer.json()["values"] == [2.0, 5.0, -8.0]

    stop_timeout = task.container["stopTimeout"]
    calls: list[Call] = []
    stop = threading.Event()
    users = [threading.Thread(target=load, args=(task.url, stop, calls)) for _ in range(USERS)]
    for user in users:
        user.start()
    try:
        deadline = time.monotonic() + 30
        while sum(not c.failed for c in calls) < 20 * USERS and time.monotonic() < deadline:
            time.sleep(0.05)
        signalled_at = time.time()
        stopped = time.monotonic()
        docker("stop", "--time", str(stop_timeout), task.name)  # SIGTERM, SIGKILL after stopTimeout: ECS's order
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
        f"\nhealthy after {ready_s:.0f} s (health check by docker exec); {len(calls)} calls, {len(before)} sent before"
        f" SIGTERM ({len(in_flight)} in flight at it), {len(dropped)} of those failed; exit {state['ExitCode']} after"
        f" {exit_s:.1f} s of a {stop_timeout} s stopTimeout"
    )
    assert in_flight, "the signal caught no request in flight"
    assert not dropped, f"{len(dropped)} calls sent before SIGTERM failed, e.g. {dropped[:3]}"
    assert exit_s < stop_timeout, f"not stopped within stopTimeout {stop_timeout} s (SIGKILL):\n{logs(task)}"
    assert state["ExitCode"] == 0 and not state["OOMKilled"], f"{state}\n{logs(task)}"
