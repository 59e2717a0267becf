"""Faults under load on a local Ray: `python -m benchmarks.reliability` (`nox -s reliability`).

Scenarios, each bounded in time, each reported with its error rate and recovery time:

- replica killed: iris at 2 replicas under load, one replica's process SIGKILLed mid-load; recovery is the time
  until Serve runs 2 replicas again (targets: error rate <= 1 %, recovery <= 10 s);
- worker node lost: a second Ray node joins on 127.0.0.1 and hosts a replica; its raylet is SIGKILLed mid-load
  (that node only); recovery is the time until Serve runs 2 replicas again on what is left;
- head lost with GCS fault tolerance: a head with no CPUs keeps its GCS in the machine's Redis; a worker node hosts
  both replicas and a proxy of its own; under load at that proxy every process of the head is SIGKILLed and a new
  head started with the same Redis and namespace (KubeRay recreating the head pod); reported are the requests and
  failures at the worker's proxy while the head is away and the time until the head is healthy again (targets:
  error rate <= 1 %, healthy head <= 60 s, the worker node and its replicas kept);
- the CI fault tests (database outage, S3 corrupted/unreachable, bounded bodies, HTTP fuzz) run through pytest and
  are reported pass/fail.

Writes reports/reliability/<UTC timestamp>.md.
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

REPO_ROOT = Path(__file__).parents[1]
APP = "iris"
REPLICAS = 2
# Room on the head for both replicas (0.5 CPU each) once the worker node is gone.
HEAD_CPUS = 1
WORKER_CPUS = 1
CLIENTS = 2
WARM_UP_S = 5.0
AFTER_FAULT_S = 15.0
REQUEST_TIMEOUT_S = 10.0
RECOVERY_TIMEOUT_S = 60.0
TARGET_ERROR_RATE = 0.01
TARGET_RECOVERY_S = 10.0
BODY = {"instances": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]}
CI_TESTS = {
    "database outage (MariaDB stopped 12 s)": "tests/integration/test_faults_database.py",
    "S3 corrupted / unreachable at replica start": "tests/integration/test_faults_s3.py",
    "oversized body and slow client": "tests/integration/test_bounded_requests.py",
    "HTTP fuzz of iris (schemathesis)": "tests/integration/test_fuzz.py",
}


@dataclass
class Load:
    """Client threads predicting until stopped; counts answers and failures."""

    url: str
    interval_s: float = 0.0  # between one client's requests; 0: each sends its next as soon as it has an answer
    lock: threading.Lock = field(default_factory=threading.Lock)
    ok: int = 0
    failed: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> None:
        self.threads = [threading.Thread(target=self._drive, daemon=True) for _ in range(CLIENTS)]
        for thread in self.threads:
            thread.start()

    def finish(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(REQUEST_TIMEOUT_S + 5)

    def _drive(self) -> None:
        with httpx.Client(timeout=REQUEST_TIMEOUT_S) as client:
            while not self.stop.is_set():
                try:
                    response = client.post(self.url, json=BODY)
                    failure = None if response.status_code == 200 else f"HTTP {response.status_code}"
                except httpx.HTTPError as error:
                    failure = type(error).__name__
                with self.lock:
                    if failure is None:
                        self.ok += 1
                    else:
                        self.failed.append(failure)
                self.stop.wait(self.interval_s)

    def counts(self) -> tuple[int, int]:
        """Requests and failures so far."""
        with self.lock:
            return self.ok + len(self.failed), len(self.failed)

    @property
    def error_rate(self) -> float:
        total = self.ok + len(self.failed)
        return len(self.failed) / total if total else 1.0


@dataclass(frozen=True)
class Result:
    """One scenario's figures."""

    scenario: str
    requests: int
    failed: int
    error_rate: float | None
    recovery_s: float | None
    passed: bool
    note: str


def deploy_iris(port: int, env_vars: dict[str, str]) -> str:
    """iris of the dev env at REPLICAS replicas; returns its /predict URL."""
    from localrun.serve import deploy, env_serve_config

    config = env_serve_config(REPO_ROOT, "dev")
    (iris,) = (a for a in config["applications"] if a["name"] == APP)
    (deployment,) = iris["deployments"]
    deployment = {**deployment, "num_replicas": REPLICAS}
    deployment.pop("autoscaling_config", None)
    runtime_env = {"env_vars": {**iris.get("runtime_env", {}).get("env_vars", {}), **env_vars}}
    app = {**iris, "deployments": [deployment], "runtime_env": runtime_env}
    return deploy({**config, "applications": [app]}, port).url + iris["route_prefix"] + "/predict"


@dataclass(frozen=True)
class Replica:
    """A live iris replica actor: its id, process and node."""

    actor_id: str
    pid: int
    node_id: str


def replica_actors() -> list[Replica]:
    """The iris replicas' actors that are alive (from the GCS: no dashboard, hence no state API, here)."""
    from ray._private.state import actors

    return [
        Replica(actor_id, info["Pid"], info["Address"]["NodeID"])
        for actor_id, info in actors(actor_state_name="ALIVE").items()
        if info["ActorClassName"].startswith(f"ServeReplica:{APP}:")
    ]


def running_replicas() -> int:
    from ray import serve
    from ray.serve._private.common import ReplicaState

    status = serve.status().applications.get(APP)
    if status is None:
        return 0
    return sum(d.replica_states.get(ReplicaState.RUNNING, 0) for d in status.deployments.values())


def wait_recovered(gone: Callable[[], bool], faulted: float) -> float | None:
    """Seconds from `faulted` until the fault is seen (`gone`) and Serve runs REPLICAS replicas again."""
    while time.monotonic() - faulted < RECOVERY_TIMEOUT_S:
        if gone() and running_replicas() >= REPLICAS and len(replica_actors()) >= REPLICAS:
            return time.monotonic() - faulted
        time.sleep(0.1)
    return None


def under_load(url: str, fault: Callable[[], Callable[[], bool]]) -> tuple[Load, float | None]:
    """Load, fault mid-load, wait for recovery, load a little more; the load and the recovery time."""
    load = Load(url)
    load.start()
    try:
        time.sleep(WARM_UP_S)
        faulted = time.monotonic()
        gone = fault()
        recovery = wait_recovered(gone, faulted)
        time.sleep(max(0.0, AFTER_FAULT_S - (time.monotonic() - faulted)))
    finally:
        load.finish()
    return load, recovery


def kill_replica() -> Callable[[], bool]:
    victim = replica_actors()[0]
    os.kill(victim.pid, signal.SIGKILL)
    return lambda: victim.actor_id not in {a.actor_id for a in replica_actors()}


def replica_killed(url: str) -> Result:
    load, recovery = under_load(url, kill_replica)
    return figures("replica killed (SIGKILL of its process)", load, recovery)


def figures(scenario: str, load: Load, recovery: float | None, note: str = "") -> Result:
    passed = load.error_rate <= TARGET_ERROR_RATE and recovery is not None and recovery <= TARGET_RECOVERY_S
    kinds = sorted(set(load.failed))
    return Result(
        scenario,
        load.ok + len(load.failed),
        len(load.failed),
        load.error_rate,
        recovery,
        passed,
        note or (f"failures: {', '.join(kinds)}" if kinds else ""),
    )


def join_worker_node(gcs_address: str, temp_dir: Path) -> subprocess.Popen[bytes]:
    """A second Ray node on this machine joining the head; `ray start --block` so its process tree is ours."""
    ray = Path(sys.executable).with_name("ray")
    return subprocess.Popen(
        [str(ray), "start", "--address", gcs_address, "--num-cpus", str(WORKER_CPUS), "--block"],
        stdout=(temp_dir / "worker-node.log").open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def wait_for_nodes(count: int, node: subprocess.Popen[bytes]) -> bool:
    """Whether `count` Ray nodes are alive within 60 s (False at once if the joining node's process ended)."""
    import ray

    deadline = time.monotonic() + 60
    while len([n for n in ray.nodes() if n["Alive"]]) < count:
        if time.monotonic() > deadline or node.poll() is not None:
            return False
        time.sleep(0.5)
    return True


def worker_node_lost(url: str, node: subprocess.Popen[bytes]) -> Result:
    """SIGKILL the raylet of the second node while it hosts a replica."""
    import psutil
    import ray

    head = ray.get_runtime_context().get_node_id()
    # SPREAD placed the replicas over both nodes at deploy; a replica replaced since may be back on the head.
    for _ in range(5):
        if any(a.node_id != head for a in replica_actors()):
            break
        os.kill(replica_actors()[0].pid, signal.SIGKILL)
        wait_recovered(lambda: True, time.monotonic())
    on_worker = [a for a in replica_actors() if a.node_id != head]
    if not on_worker:
        return Result("worker node lost", 0, 0, None, None, False, "no replica landed on the second node")
    raylets = [p for p in psutil.Process(node.pid).children(recursive=True) if p.name() == "raylet"]

    def lose_node() -> Callable[[], bool]:
        for raylet in raylets:
            raylet.kill()
        lost = {a.actor_id for a in on_worker}
        return lambda: not lost & {a.actor_id for a in replica_actors()}

    load, recovery = under_load(url, lose_node)
    return figures("worker node lost (its raylet SIGKILLed)", load, recovery)


def stop_node(node: subprocess.Popen[bytes]) -> None:
    """Kill what is left of the second node's process tree."""
    import psutil

    if node.poll() is None:
        for child in psutil.Process(node.pid).children(recursive=True):
            child.kill()
        node.kill()
    node.wait(30)


def forget_cluster(gcs_address: str) -> None:
    """Remove the pointer `ray start` wrote to our (now stopped) cluster; a later bare ray.init() would follow it."""
    pointer = Path(tempfile.gettempdir()) / "ray" / "ray_current_cluster"
    if pointer.exists() and pointer.read_text().strip() == gcs_address:
        pointer.unlink()


# Head lost with GCS fault tolerance, in the environment KubeRay gives the pods of a RayService whose
# gcsFaultToleranceOptions name a Redis (ray-project/kuberay ray-operator/controllers/ray/common/pod.go:
# configureGCSFaultTolerance, configureRedisFT and the RayService block of setContainerEnvVars; the names are in
# ray-operator/controllers/ray/utils/constant.go). Ray reads RAY_REDIS_ADDRESS in python/ray/_private/node.py and
# RAY_external_storage_namespace as its config external_storage_namespace (src/ray/common/ray_config_def.h); see
# ray-project/ray doc/source/ray-core/fault_tolerance/gcs.rst and the KubeRay guide
# doc/source/cluster/kubernetes/user-guides/kuberay-gcs-ft.md.
LOCAL = "127.0.0.1"
REDIS_HOST = LOCAL
REDIS_PORT = 6379  # the machine's Redis: no auth, keeps nothing on disk
RAYSERVICE_ENV = {
    "RAY_timeout_ms_task_wait_for_death_info": "0",
    "RAY_gcs_server_request_timeout_seconds": "5",
    "RAY_SERVE_KV_TIMEOUT_S": "5",
}
# RAY_gcs_rpc_server_reconnect_timeout_s of worker pods, KubeRay's DefaultWorkerRayGcsReconnectTimeoutS. Ray's own
# default, 60 s (ray_config_def.h), is how long a worker raylet waits for the GCS before it exits with its node: a
# head healthy within it keeps even workers KubeRay did not configure, hence the target.
WORKER_GCS_RECONNECT_TIMEOUT_S = 600
TARGET_HEAD_HEALTHY_S = 60.0
HEAD_LOST_INTERVAL_S = 0.05
# From the first `ray start` until the load starts; with RECOVERY_TIMEOUT_S and AFTER_FAULT_S it bounds the scenario
# to about 3 min. A run here takes about 30 s of it.
SETUP_TIMEOUT_S = 90.0


class Driver:
    """A Ray driver in a process of its own: a driver dies with the raylet it attaches to, which may be the head's."""

    def __init__(self, env: dict[str, str], target: Callable[..., Any], *args: Any) -> None:
        context = multiprocessing.get_context("spawn")
        self._name = target.__name__
        self._outcome, sender = context.Pipe(duplex=False)
        self._process = context.Process(target=_run_driver, args=(sender, env, target, args), daemon=True)
        self._process.start()

    def finished(self, timeout_s: float) -> bool:
        """Whether the target has returned or raised, waiting up to timeout_s for it."""
        return self._outcome.poll(timeout_s)

    def result(self, timeout_s: float) -> Any:
        """What the target returned; RuntimeError with its traceback if it raised, TimeoutError after timeout_s."""
        try:
            if not self._outcome.poll(timeout_s):
                raise TimeoutError(f"{self._name} did not finish within {timeout_s:.0f} s")
            failed, value = self._outcome.recv()
        finally:
            self._process.join(10)
            if self._process.is_alive():
                self._process.kill()
                self._process.join()
        if failed:
            raise RuntimeError(f"{self._name} failed:\n{value}")
        return value


def _run_driver(sender: Connection, env: dict[str, str], target: Callable[..., Any], args: tuple[Any, ...]) -> None:
    os.environ.update(env)  # before Ray reads its settings
    import ray

    try:
        outcome = (False, target(*args))
    except Exception:
        outcome = (True, traceback.format_exc())
    sender.send(outcome)  # before the shutdown, which may wait on a GCS that is gone
    ray.shutdown()


def ray_start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """`ray start <args> --block` with `env` added to ours; a session of its own, so its process group is the node."""
    from tests.integration.single_app import free_port

    ray = Path(sys.executable).with_name("ray")
    # Given its agents' ports, the raylet does not wait for the agents to write them: it waits 15 s at most, and on two
    # cores shared with the load, the replicas and the worker's proxy, a new head's dashboard agent took 25 s to start.
    # Free ports also keep clear of the fixed defaults (52365) another Ray on this machine may hold.
    agent_ports = [
        ("--dashboard-agent-listen-port", free_port()),
        ("--dashboard-agent-grpc-port", free_port()),
        ("--metrics-export-port", free_port()),
        ("--runtime-env-agent-port", free_port()),
    ]
    return subprocess.Popen(
        [
            str(ray),
            "start",
            *args,
            *(str(item) for pair in agent_ports for item in pair),
            "--disable-usage-stats",
            "--block",
        ],
        env={**os.environ, **RAYSERVICE_ENV, **env},
        cwd=REPO_ROOT,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def start_head(port: int, namespace: str, auth: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """A head with no CPUs, like the rendered RayService's, whose GCS keeps its tables in Redis under `namespace`."""
    from tests.integration.single_app import free_port

    return ray_start(
        [
            "--head",
            "--port",
            str(port),
            "--num-cpus",
            "0",
            "--include-dashboard",
            "false",
            "--ray-client-server-port",  # not the fixed default, 10001, another Ray on this machine may hold
            str(free_port()),
        ],
        {**auth, "RAY_REDIS_ADDRESS": f"{REDIS_HOST}:{REDIS_PORT}", "RAY_external_storage_namespace": namespace},
        log,
    )


def join_worker(gcs_address: str, proxy_port: int, auth: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """A worker node whose Serve proxy listens on `proxy_port`, the head's proxy holding http_options.port."""
    return ray_start(
        ["--address", gcs_address, "--num-cpus", str(WORKER_CPUS)],
        {
            **auth,
            "RAY_gcs_rpc_server_reconnect_timeout_s": str(WORKER_GCS_RECONNECT_TIMEOUT_S),
            "RAY_SERVE_WORKER_PROXY_HTTP_PORT": str(proxy_port),
        },
        log,
    )


def kill_node(node: subprocess.Popen[bytes]) -> None:
    """SIGKILL a `ray start` node and every process it started, as when its pod crashes."""
    import psutil

    if node.poll() is None:
        for process in [*psutil.Process(node.pid).children(recursive=True), psutil.Process(node.pid)]:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()
    with contextlib.suppress(ProcessLookupError):
        os.killpg(node.pid, signal.SIGKILL)  # workers the raylet started and left behind
    node.wait(30)


def wait_listening(host: str, port: int, deadline: float) -> bool:
    """Whether something accepts TCP on host:port before the monotonic `deadline`."""
    import socket

    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex((host, port)) == 0:
                return True
        time.sleep(0.2)
    return False


def deploy_on_worker(gcs_address: str, head_proxy_port: int, env_vars: dict[str, str]) -> tuple[str, str, list[int]]:
    """(In a Driver) Wait for both nodes, deploy iris; its URL at the head's proxy, the head's id, replicas' pids."""
    import ray

    ray.init(address=gcs_address, log_to_driver=False)
    while len([n for n in ray.nodes() if n["Alive"]]) < 2:
        time.sleep(0.5)  # bounded by the caller's Driver.result
    url = deploy_iris(head_proxy_port, env_vars)
    (head_id,) = (n["NodeID"] for n in ray.nodes() if n["Alive"] and "node:__internal_head__" in n["Resources"])
    return url, head_id, [r.pid for r in replica_actors()]


def watch_head(gcs_address: str, lost_head_id: str, ready: Event, go: Event) -> tuple[float, float]:
    """(In a Driver) Set `ready`, then once `go` is set: the monotonic times (one clock for every process on Linux) at
    which a new head is alive in the GCS and serve.status() shows iris RUNNING."""
    import ray
    from ray import serve
    from ray._raylet import GcsClient
    from ray.core.generated.gcs_pb2 import GcsNodeInfo

    gcs = GcsClient(address=gcs_address)  # now: built while the GCS is down, it blocks for 40 s
    ready.set()
    go.wait()
    deadline = time.monotonic() + RECOVERY_TIMEOUT_S

    def new_head_alive() -> bool:
        try:
            nodes = gcs.get_all_node_info(timeout=1, state_filter=GcsNodeInfo.GcsNodeState.ALIVE).values()
        except Exception:  # the GCS is down or still loading its tables from Redis
            return False
        return any(n.is_head_node and n.node_id.hex() != lost_head_id for n in nodes)

    while not new_head_alive():
        if time.monotonic() > deadline:
            raise TimeoutError(f"no new head in the GCS within {RECOVERY_TIMEOUT_S:.0f} s")
        time.sleep(0.1)
    gcs_at = time.monotonic()
    ray.init(address=gcs_address, log_to_driver=False)
    while (status := serve.status().applications.get(APP)) is None or status.status != "RUNNING":
        if time.monotonic() > deadline:
            raise TimeoutError(f"{APP} not RUNNING within {RECOVERY_TIMEOUT_S:.0f} s")
        time.sleep(0.1)
    return gcs_at, time.monotonic()


def wait_answering(url: str, deadline: float) -> bool:
    """Whether `url` answers a prediction before the monotonic `deadline`."""
    while time.monotonic() < deadline:
        try:
            if httpx.post(url, json=BODY, timeout=REQUEST_TIMEOUT_S).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    return False


def head_lost(temp_dir: Path) -> Result:
    """The head-lost scenario on a cluster of its own (head + one worker node), cleaned up, Redis keys included."""
    import psutil
    from ray._private.gcs_utils import cleanup_redis_storage
    from ray._private.services import get_node_ip_address

    from localrun.stop import signals_held
    from tests.integration.single_app import free_port

    scenario = "head lost, GCS FT on Redis (head SIGKILLed, new head started)"
    namespace = f"reliability-{uuid.uuid4().hex}"
    # The rendered RayService has authOptions.mode token: KubeRay gives every pod and client these two.
    auth = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": uuid.uuid4().hex}
    head_port, worker_proxy_port = free_port(), free_port()
    # Ray puts this machine's interface address where it is given 127.0.0.1 (services.resolve_ip_for_localhost).
    node_ip = get_node_ip_address()
    gcs_address = f"{node_ip}:{head_port}"

    def new_head() -> subprocess.Popen[bytes]:
        # A new pod starts with an empty /tmp/ray. Here the pointer an earlier head left would name our GCS address,
        # which the worker's raylet names too, and `ray start --head` would take that GCS for running and refuse.
        forget_cluster(gcs_address)
        heads.append(start_head(head_port, namespace, auth, temp_dir / f"head-{len(heads) + 1}.log"))
        return heads[-1]

    heads: list[subprocess.Popen[bytes]] = []
    worker = None
    set_up_by = time.monotonic() + SETUP_TIMEOUT_S
    try:
        new_head()
        if not wait_listening(node_ip, head_port, set_up_by):
            return Result(scenario, 0, 0, None, None, False, f"the head did not start; see {temp_dir}/head-1.log")
        worker = join_worker(gcs_address, worker_proxy_port, auth, temp_dir / "worker.log")
        env_vars = {"MODEL_CACHE_DIR": str(temp_dir / "cache")}
        deploy = Driver(auth, deploy_on_worker, gcs_address, free_port(), env_vars)
        try:
            url, head_id, replica_pids = deploy.result(set_up_by - time.monotonic())
        except (TimeoutError, RuntimeError) as error:
            return Result(scenario, 0, 0, None, None, False, str(error).strip().splitlines()[-1])
        worker_url = urlsplit(url)._replace(netloc=f"{LOCAL}:{worker_proxy_port}").geturl()
        if not wait_answering(worker_url, set_up_by):
            return Result(scenario, 0, 0, None, None, False, "the worker node's proxy did not answer")
        ready, go = multiprocessing.get_context("spawn").Event(), multiprocessing.get_context("spawn").Event()
        watch = Driver(auth, watch_head, gcs_address, head_id, ready, go)
        if not ready.wait(max(0.0, set_up_by - time.monotonic())):
            return Result(scenario, 0, 0, None, None, False, "the watching driver did not reach the GCS")
        # Paced: an unpaced load takes both cores, and the new head's Python agents, which its raylet gives 15 s to
        # start, then took 25 s.
        load = Load(worker_url, interval_s=HEAD_LOST_INTERVAL_S)
        load.start()
        try:
            time.sleep(WARM_UP_S)
            before = load.counts()
            faulted = time.monotonic()
            kill_node(heads[-1])
            new_head()
            go.set()
            # KubeRay recreates a head pod whose Ray container exits, as `ray start --block` does if its raylet fails.
            while not watch.finished(1.0) and time.monotonic() - faulted < RECOVERY_TIMEOUT_S:
                if heads[-1].poll() is not None:
                    new_head()
            try:
                gcs_at, healthy_at = watch.result(15)
                problem = ""
            except (TimeoutError, RuntimeError) as error:
                gcs_at = healthy_at = None
                problem = str(error).strip().splitlines()[-1]
            after = load.counts()
            time.sleep(max(0.0, AFTER_FAULT_S - (time.monotonic() - faulted)))
        finally:
            load.finish()
        kept = sum(psutil.pid_exists(pid) for pid in replica_pids)
        worker_alive = worker.poll() is None
    finally:
        with signals_held("stopping the scenario's Ray nodes"):
            for node in [*heads, *([worker] if worker else [])]:
                kill_node(node)
            forget_cluster(gcs_address)
            cleaned = cleanup_redis_storage(REDIS_HOST, REDIS_PORT, "", False, namespace)
    requests, failed = after[0] - before[0], after[1] - before[1]
    rate = failed / requests if requests else None
    recovery = None if healthy_at is None else healthy_at - faulted
    kinds = sorted(set(load.failed[before[1] : after[1]]))
    note = [
        f"requests at the worker's proxy from the kill until the head is healthy; {len(heads) - 1} head(s) started"
        f" after the kill; {len(replica_pids)} replicas on the worker, {kept} alive after; worker node"
        f" {'up' if worker_alive else 'LOST'}",
        f"GCS with a new head after {gcs_at - faulted:.1f} s" if gcs_at is not None else problem,
        f"failures: {', '.join(kinds)}" if kinds else "",
        f"whole run {load.ok + len(load.failed)} requests, {len(load.failed)} failed",
        "" if cleaned else f"Redis keys of {namespace} NOT deleted",
    ]
    passed = (
        rate is not None
        and rate <= TARGET_ERROR_RATE
        and recovery is not None
        and recovery <= TARGET_HEAD_HEALTHY_S
        and worker_alive
        and kept == len(replica_pids)
    )
    return Result(scenario, requests, failed, rate, recovery, passed, "; ".join(n for n in note if n))


def ci_test(name: str, path: str) -> Result:
    from localrun.stop import STOP_TIMEOUT_S, stop_group

    started = time.monotonic()
    # -m "": also the scenarios marked `reliability`, which `nox -s tests` leaves out.
    command = [sys.executable, "-m", "pytest", path, "-q", "-p", "no:cacheprovider", "-W", "ignore", "-m", ""]
    # A group of its own, stopped with SIGINT first: pytest then tears its fixtures down, its Ray included.
    run = subprocess.Popen(
        command, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        out, err = run.communicate(timeout=600)
        summary = out.strip().splitlines()[-1] if out.strip() else err[-200:]
        passed = run.returncode == 0
    except subprocess.TimeoutExpired:
        summary, passed = "timed out after 600 s", False
    finally:
        stop_group(run, timeout_s=STOP_TIMEOUT_S)
    return Result(name, 0, 0, None, None, passed, f"{summary} ({time.monotonic() - started:.0f} s)")


def report(results: list[Result], out_dir: Path) -> Path:
    """Write the scenarios' table to out_dir/<UTC timestamp>.md; return the path."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    lines = [
        f"# Reliability run {stamp}",
        "",
        f"Targets: error rate <= {TARGET_ERROR_RATE:.0%}, back to {REPLICAS} replicas <= {TARGET_RECOVERY_S:.0f} s.",
        f"Load: {CLIENTS} client threads on {APP}/predict, {WARM_UP_S:.0f} s before the fault, {AFTER_FAULT_S:.0f} s"
        " after.",
        "Head lost: requests and recovery from the kill until the head is healthy (target <="
        f" {TARGET_HEAD_HEALTHY_S:.0f} s), each client paced at one request per {HEAD_LOST_INTERVAL_S * 1000:.0f} ms.",
        "",
        "| scenario | requests | failed | error rate | recovery (s) | pass | note |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        rate = "" if r.error_rate is None else f"{r.error_rate:.2%}"
        recovery = "" if r.recovery_s is None else f"{r.recovery_s:.1f}"
        requests = f"{r.requests}" if r.requests else ""
        failed = f"{r.failed}" if r.requests else ""
        verdict = "yes" if r.passed else "NO"
        lines.append(f"| {r.scenario} | {requests} | {failed} | {rate} | {recovery} | {verdict} | {r.note} |")
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{stamp}.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def main(argv: list[str] | None = None) -> int:
    """Run every scenario, write the report, exit 1 when one misses its target."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.reliability", description=__doc__)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "reports" / "reliability")
    parser.add_argument("--skip-ci-tests", action="store_true", help="only the replica, worker node and head scenarios")
    args = parser.parse_args(argv)

    import ray
    from ray import serve

    from localrun.stop import local_ray, signals_held, stop_on_signals
    from tests.integration.single_app import free_port

    stop_on_signals()  # Ctrl-C or SIGTERM in any scenario unwinds through its finally, which stops its nodes
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="reliability-") as temp:
        # "local": a new cluster even if a `ray start` of another run left /tmp/ray/ray_current_cluster behind.
        with local_ray(address="local", num_cpus=HEAD_CPUS, include_dashboard=False, log_to_driver=False):
            gcs_address = ray.get_runtime_context().gcs_address
            node = join_worker_node(gcs_address, Path(temp))
            try:
                if not wait_for_nodes(2, node):
                    raise SystemExit(f"the second Ray node did not join; see {Path(temp) / 'worker-node.log'}")
                url = deploy_iris(free_port(), {"MODEL_CACHE_DIR": str(Path(temp) / "cache")})
                results.append(replica_killed(url))
                results.append(worker_node_lost(url, node))
            finally:
                with signals_held("stopping the second Ray node"):
                    serve.shutdown()
                    stop_node(node)
                    forget_cluster(gcs_address)
        results.append(head_lost(Path(temp)))
    if not args.skip_ci_tests:
        results.extend(ci_test(name, path) for name, path in CI_TESTS.items())
    path = report(results, args.out)
    print(path.read_text())
    print(f"wrote {path}")
    return 0 if all(r.passed for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
