"""env.serve.warm_workers: the toolkit's warm-workers app keeps fresh Ray workers on the node, a new app's replica
starts in an already running worker instead of a new process, and the app tops the node up again afterwards.

Both apps run without a runtime_env, as the rendered ones do: an app with one needs worker processes of its own.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import psutil
import pytest

from localrun.serve import deploy
from render.plan import WARM_WORKERS_APP, warm_workers_application
from tests.integration.single_app import free_port

PER_NODE = 2
PROBE = {"name": "pid-probe", "import_path": "tests.integration.pid_app:app", "route_prefix": None}
WAIT_S = 60.0


@pytest.fixture(scope="module")
def port(ray_cluster: Any) -> Iterator[int]:
    from ray import serve

    try:
        yield free_port()
    finally:
        serve.shutdown()


def fresh_pids() -> list[int]:
    """The fresh workers the warm-workers app found on the node at its last check."""
    from ray import serve

    found = serve.get_app_handle(WARM_WORKERS_APP).fresh_workers.remote().result()
    assert len(found) == 1, found  # the session's Ray is one node
    return next(iter(found.values()))


def wait_for(condition: Callable[[list[int]], bool]) -> list[int]:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        pids = fresh_pids()
        if condition(pids):
            return pids
        time.sleep(0.5)
    raise AssertionError(f"fresh workers still {fresh_pids()} after {WAIT_S:.0f} s")


def test_a_new_replica_takes_a_fresh_worker_and_the_node_is_topped_up(port: int) -> None:
    from ray import serve

    warm = warm_workers_application(PER_NODE)
    deploy({"applications": [warm]}, port)
    before = wait_for(lambda pids: len(pids) >= PER_NODE)

    deployed_at = time.time()
    deploy({"applications": [warm, PROBE]}, port)
    replica = serve.get_app_handle(PROBE["name"]).remote().result()
    # A process that was running before the deploy: no worker start on the replica's path. Ray may hand it any
    # fresh worker that fits, the app's or one of its own, so the PID is not checked against `before`.
    assert psutil.Process(replica).create_time() < deployed_at, (replica, before)

    # The replica's worker is no longer fresh; the app starts others in its place.
    wait_for(lambda pids: len(pids) >= PER_NODE and replica not in pids)


def test_a_raylet_api_that_fails_degrades_the_app_and_leaves_it_healthy(port: int) -> None:
    from ray import serve
    from ray.serve.schema import ApplicationStatus, DeploymentStatus

    from tests.integration.misdirected_warm_workers import HEALTH_CHECK_PERIOD_S

    misdirected = {
        "name": "misdirected-warm-workers",
        "import_path": "tests.integration.misdirected_warm_workers:app_builder",
        "route_prefix": None,
        "args": {"per_node": PER_NODE},
    }
    deploy({"applications": [misdirected]}, port)
    handle = serve.get_app_handle(misdirected["name"])
    deadline = time.monotonic() + WAIT_S
    while not (failing := handle.failing_raylets.remote().result()):
        assert time.monotonic() < deadline, f"no raylet call failed after {WAIT_S:.0f} s"
        time.sleep(0.5)
    assert list(failing.values()) == ["UNIMPLEMENTED"], failing  # the GCS serves no NodeManagerService
    pid = handle.pid.remote().result()

    time.sleep(5 * HEALTH_CHECK_PERIOD_S)  # five health checks, each of which a restart loop would fail

    status = serve.status().applications[misdirected["name"]]
    assert status.status == ApplicationStatus.RUNNING, status
    assert {d.status for d in status.deployments.values()} == {DeploymentStatus.HEALTHY}, status
    assert handle.pid.remote().result() == pid  # the same replica: never replaced
    assert handle.failing_raylets.remote().result() == failing
