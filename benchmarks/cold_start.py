"""Replica cold start: deploy a copy of the zero-shot app, its model on S3, and time it to its first answer.

Ray and Serve are up (the benchmark's own) and reach S3 (LocalStack, started here) through the environment every
Ray process inherited, as a container's; the copy gets its own name and route, and the node's model cache is
emptied first, so its replica downloads the artifact, verifies its sha256, loads it and answers. The copy is
deployed in one config with the running app, which Serve leaves untouched.
"""

from __future__ import annotations

import contextlib
import http.client
import importlib.util
import shutil
import sys
import time
import urllib.parse
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import psutil

from benchmarks.machine import CpuWindow
from localrun.serve import deploy, submit
from serve_apps.common.artifact import ModelArtifact

BUCKET = "bench-models"
REGION = "us-east-1"
POLL_S = 0.02
CPU_SHOWN_S = 0.05  # processes below this many CPU-seconds in the cold start are left out of its breakdown


@dataclass(frozen=True)
class ColdStart:
    """Seconds from a deploy call: a new app to RUNNING and to its first answer (Serve builds the app in a task
    first), and one more replica of it to RUNNING (a scale-up, what autoscaling does: no build)."""

    app: str
    to_running_s: float
    to_first_answer_s: float
    scale_up_to_running_s: float
    # CPU-seconds each kind of process on the machine used from the deploy call to the first answer (machine
    # .process_label; "busy" is the whole machine's), largest first: what the new replicas competed with.
    cpu_s_to_first_answer: dict[str, float]


def _localstack_module(root: Path) -> ModuleType:
    """tools/localstack_host.py (`tools` is not a package)."""
    path = root / "tools" / "localstack_host.py"
    spec = importlib.util.spec_from_file_location("localstack_host", path)
    assert spec is not None and spec.loader is not None, f"cannot load {path}"
    module = importlib.util.module_from_spec(spec)
    sys.modules["localstack_host"] = module
    spec.loader.exec_module(module)
    return module


@contextlib.contextmanager
def s3_model(root: Path, model_file: Path, sha256: str) -> Iterator[tuple[ModelArtifact, dict[str, str]]]:
    """Start LocalStack, upload `model_file`; yield its artifact and the environment that reaches it."""
    import boto3

    localstack = _localstack_module(root)
    with localstack.LocalStackHost(services=("s3",)) as stack:
        env = {
            "AWS_ENDPOINT_URL": stack.endpoint_url,
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
        }
        client = boto3.client(
            "s3",
            endpoint_url=stack.endpoint_url,
            region_name=REGION,
            aws_access_key_id="test",
            aws_secret_access_key="test",  # noqa: S106 - LocalStack's fixed test credentials
        )
        client.create_bucket(Bucket=BUCKET)
        key = f"zero_shot/{model_file.name}"
        client.upload_file(str(model_file), BUCKET, key)
        yield ModelArtifact(uri=f"s3://{BUCKET}/{key}", sha256=sha256), env


def cold_copy(app: dict[str, Any], name: str, artifact: ModelArtifact) -> dict[str, Any]:
    """The app's Serve application under another name and route, its model `artifact`."""
    return {**app, "name": name, "route_prefix": f"/{name}", "args": {**app["args"], "model": artifact.model_dump()}}


def first_answer(url: str, body: bytes, timeout_s: float) -> float:
    """Poll POST `url` until it answers 200; the time.monotonic() of that answer.

    Over one kept-alive connection while the server keeps it (HAProxy keeps it after its own 404): every poll's CPU
    is taken from the replicas it times on the same cores. The bench's process, polls, deploy call and status
    polls together, still used 0.2 CPU-s of each cold start after this change (0.17-0.36 before).
    """
    parts = urllib.parse.urlsplit(url)
    deadline = time.monotonic() + timeout_s
    connection: http.client.HTTPConnection | None = None
    try:
        while time.monotonic() < deadline:
            try:
                connection = connection or http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=5)
                connection.request("POST", parts.path, body, {"content-type": "application/json"})
                response = connection.getresponse()
                response.read()
                if response.status == 200:
                    return time.monotonic()
            except (OSError, http.client.HTTPException):  # refused, reset, or closed by the server after an error
                if connection is not None:
                    connection.close()
                connection = None
            time.sleep(POLL_S)
    finally:
        if connection is not None:
            connection.close()
    raise TimeoutError(f"no answer from {url} within {timeout_s:.0f} s")


def _running_replicas(app: str) -> int:
    from ray import serve
    from ray.serve._private.common import ReplicaState

    status = serve.status().applications.get(app)
    if status is None:
        return 0
    return sum(d.replica_states.get(ReplicaState.RUNNING, 0) for d in status.deployments.values())


def _one_more_replica(app: dict[str, Any]) -> dict[str, Any]:
    deployments = []
    for deployment in app["deployments"]:
        if "autoscaling_config" in deployment:
            scaling = deployment["autoscaling_config"]
            more = scaling["max_replicas"] + 1
            deployment = {**deployment, "autoscaling_config": {**scaling, "min_replicas": more, "max_replicas": more}}
        else:
            deployment = {**deployment, "num_replicas": deployment["num_replicas"] + 1}
        deployments.append(deployment)
    return {**app, "deployments": deployments}


def measure(
    config: dict[str, Any], copy: dict[str, Any], port: int, body: bytes, cache: Path, timeout_s: float = 120
) -> ColdStart:
    """Empty the model cache, deploy `config` plus `copy`: time the copy to RUNNING and to its first answer; empty
    the cache again, scale the copy up by one replica and time that replica to RUNNING. Leaves `config` deployed.
    `cache` is the MODEL_CACHE_DIR the replicas use (serve_apps.common.artifact.fetch)."""
    url = f"http://127.0.0.1:{port}{copy['route_prefix']}/predict"
    cpu = CpuWindow(lambda: list(psutil.process_iter()))
    with ThreadPoolExecutor(1) as pool:
        shutil.rmtree(cache / "sha256", ignore_errors=True)  # replicas running already hold their model in memory
        cpu.start()
        started = time.monotonic()
        deployed = pool.submit(deploy, {**config, "applications": [*config["applications"], copy]}, port, timeout_s)
        answered = first_answer(url, body, timeout_s)
        used = cpu.stop()
        running = deployed.result().seconds_to_running[copy["name"]]
    # The CPU window's own length, not `answered - started`: it also spans start()'s snapshot, before `started`.
    cpu_s = {"busy": used.machine_cores * used.seconds} | {
        label: cores * used.seconds for label, cores in used.by_process.items() if cores * used.seconds >= CPU_SHOWN_S
    }
    before = _running_replicas(copy["name"])
    shutil.rmtree(cache / "sha256", ignore_errors=True)
    scaled = {**config, "applications": [*config["applications"], _one_more_replica(copy)]}
    scale_started = time.monotonic()
    # Submitted and polled from this thread only (localrun.serve.submit says why).
    submit(scaled, port)
    while _running_replicas(copy["name"]) <= before:
        if time.monotonic() - scale_started > timeout_s:
            raise TimeoutError(f"{copy['name']}: no new replica RUNNING within {timeout_s:.0f} s")
        time.sleep(POLL_S)
    scaled_up = time.monotonic() - scale_started
    deploy(config, port, timeout_s)  # the copy goes away again; its replicas drain in the background
    return ColdStart(
        app=copy["name"],
        to_running_s=running,
        to_first_answer_s=answered - started,
        scale_up_to_running_s=scaled_up,
        cpu_s_to_first_answer={label: round(seconds, 2) for label, seconds in cpu_s.items()},
    )
