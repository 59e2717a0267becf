"""Faults under load on a local Ray: `python -m benchmarks.reliability` (`nox -s reliability`).

Scenarios, each bounded in time, each reported with its error rate and recovery time:

- replica killed: iris at 2 replicas under load, one replica's process SIGKILLed mid-load; recovery is the time
  until Serve runs 2 replicas again (targets: error rate <= 1 %, recovery <= 10 s);
- worker node lost: a second Ray node joins on 127.0.0.1 and hosts a replica; its raylet is SIGKILLed mid-load
  (that node only); recovery is the time until Serve runs 2 replicas again on what is left;
- the CI fault tests (database outage, S3 corrupted/unreachable, bounded bodies, HTTP fuzz) run through pytest and
  are reported pass/fail.

Writes reports/reliability/<UTC timestamp>.md.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

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
    from serve_apps.local import deploy, env_serve_config

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


def ci_test(name: str, path: str) -> Result:
    started = time.monotonic()
    # -m "": also the scenarios marked `reliability`, which `nox -s tests` leaves out.
    command = [sys.executable, "-m", "pytest", path, "-q", "-p", "no:cacheprovider", "-W", "ignore", "-m", ""]
    try:
        run = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600, check=False)
        summary = run.stdout.strip().splitlines()[-1] if run.stdout.strip() else run.stderr[-200:]
        passed = run.returncode == 0
    except subprocess.TimeoutExpired:
        summary, passed = "timed out after 600 s", False
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
    parser.add_argument("--skip-ci-tests", action="store_true", help="only the replica and node scenarios")
    args = parser.parse_args(argv)

    import ray
    from ray import serve

    from tests.integration.single_app import free_port

    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="reliability-") as temp:
        # "local": a new cluster even if a `ray start` of another run left /tmp/ray/ray_current_cluster behind.
        ray.init(address="local", num_cpus=HEAD_CPUS, include_dashboard=False, log_to_driver=False)
        gcs_address = ray.get_runtime_context().gcs_address
        node = join_worker_node(gcs_address, Path(temp))
        try:
            if not wait_for_nodes(2, node):
                raise SystemExit(f"the second Ray node did not join; see {Path(temp) / 'worker-node.log'}")
            url = deploy_iris(free_port(), {"MODEL_CACHE_DIR": str(Path(temp) / "cache")})
            results.append(replica_killed(url))
            results.append(worker_node_lost(url, node))
        finally:
            serve.shutdown()
            stop_node(node)
            ray.shutdown()
            forget_cluster(gcs_address)
    if not args.skip_ci_tests:
        results.extend(ci_test(name, path) for name, path in CI_TESTS.items())
    path = report(results, args.out)
    print(path.read_text())
    print(f"wrote {path}")
    return 0 if all(r.passed for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
