"""The warm-workers app: how it counts a node's workers (those it asked for, taken or not), and what it does when the
raylet's private API fails: the app degrades (leaves the node alone a while, one warning, a metric) instead of
failing, while a bug of its own still escapes.

The raylet here is a real gRPC server on localhost that serves no method, so the app's own Raylet client (Ray's
channel, the generated stub and messages) gets a real UNIMPLEMENTED, as from a raylet whose Ray dropped the method.
No Ray is started: these tests drive the Warmer, the deployment's loop body, with node addresses of their own.
"""

import logging
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import pytest

from serve_apps.warm_workers import STARTUP_TIMEOUT_S, RayletError, Warmer, WarmWorkersArgs, WarmWorkersMetrics

JOB_ID = "01000000"
NODE = "node-a"
WAIT_S = 10.0


class NoRaylet(grpc.GenericRpcHandler):
    """Serves no method: each call is answered UNIMPLEMENTED. Records the methods asked for."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> None:
        self.calls.append(handler_call_details.method)
        return None


class RecordingMetrics(WarmWorkersMetrics):
    """Ray's metric handles (they record nowhere outside a worker, but check their tags), and what was recorded."""

    def __init__(self) -> None:
        super().__init__()
        self.degraded_values: list[bool] = []
        self.failures: list[str] = []

    def degraded(self, degraded: bool) -> None:
        super().degraded(degraded)
        self.degraded_values.append(degraded)

    def raylet_failed(self, reason: str) -> None:
        super().raylet_failed(reason)
        self.failures.append(reason)


class IdleRaylet:
    """A raylet that answers: no fresh workers yet, and any prestart accepted."""

    def workers(self, job_id: str) -> dict[int, bool]:
        return {}

    def prestart(self, job_id: str, count: int) -> None:
        pass


class ScriptedRaylet:
    """A raylet whose workers (PID -> fresh) the test sets, and which records each prestart's count."""

    def __init__(self) -> None:
        self.pids: dict[int, bool] = {}
        self.prestarts: list[int] = []

    def workers(self, job_id: str) -> dict[int, bool]:
        return dict(self.pids)

    def prestart(self, job_id: str, count: int) -> None:
        self.prestarts.append(count)


@pytest.fixture
def no_raylet() -> Iterator[tuple[str, NoRaylet]]:
    """The address of a gRPC server that serves no method, and its handler."""
    handler = NoRaylet()
    server = grpc.server(ThreadPoolExecutor(max_workers=1), handlers=(handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}", handler
    finally:
        server.stop(grace=None)


def minimal_warmer(metrics: WarmWorkersMetrics, **args: Any) -> Warmer:
    return Warmer(JOB_ID, WarmWorkersArgs(per_node=2, **args), metrics)


def check_until_failures(warmer: Warmer, address: str, metrics: RecordingMetrics, count: int) -> None:
    deadline = time.monotonic() + WAIT_S
    while len(metrics.failures) < count:
        assert time.monotonic() < deadline, f"{metrics.failures} after {WAIT_S:.0f} s"
        warmer.check({NODE: address})
        time.sleep(0.01)


def test_a_raylet_without_the_api_degrades_the_app(no_raylet: tuple[str, NoRaylet]) -> None:
    address, _ = no_raylet
    metrics = RecordingMetrics()
    warmer = minimal_warmer(metrics)

    warmer.check({NODE: address})  # does not raise

    assert warmer.failing() == {NODE: "UNIMPLEMENTED"}
    assert metrics.failures == ["UNIMPLEMENTED"]
    assert metrics.degraded_values == [False, True]
    assert warmer.fresh_workers() == {}


def test_a_failing_raylet_is_warned_about_once_with_its_error(
    no_raylet: tuple[str, NoRaylet], caplog: pytest.LogCaptureFixture
) -> None:
    address, _ = no_raylet
    metrics = RecordingMetrics()
    warmer = minimal_warmer(metrics, period_s=0.01)  # backs off 0.02, 0.04, 0.08 s

    with caplog.at_level(logging.WARNING, logger="ray.serve"):
        check_until_failures(warmer, address, metrics, 3)

    assert metrics.failures == ["UNIMPLEMENTED"] * 3
    [warning] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert f"the raylet of node {NODE} failed (UNIMPLEMENTED)" in warning.getMessage()
    assert warning.exc_info is not None and isinstance(warning.exc_info[1], RayletError)
    assert isinstance(warning.exc_info[1].__cause__, grpc.RpcError)  # the traceback shows the RPC's own error


def test_a_failing_raylet_is_left_alone_until_its_backoff_ends(no_raylet: tuple[str, NoRaylet]) -> None:
    address, handler = no_raylet
    warmer = minimal_warmer(RecordingMetrics(), period_s=60)  # tried again after 120 s

    for _ in range(3):
        warmer.check({NODE: address})

    assert handler.calls == ["/ray.rpc.NodeManagerService/GetNodeStats"]


def test_missing_generated_modules_degrade_the_app(
    no_raylet: tuple[str, NoRaylet], monkeypatch: pytest.MonkeyPatch
) -> None:
    import ray.core.generated

    # As if a Ray upgrade removed the module: `from ray.core.generated import node_manager_pb2` then fails.
    monkeypatch.delattr(ray.core.generated, "node_manager_pb2", raising=False)
    monkeypatch.setitem(sys.modules, "ray.core.generated.node_manager_pb2", None)
    address, _ = no_raylet
    metrics = RecordingMetrics()
    warmer = minimal_warmer(metrics)

    warmer.check({NODE: address})

    assert warmer.failing() == {NODE: "ModuleNotFoundError"}
    assert metrics.degraded_values[-1] is True


def test_the_app_recovers_when_the_raylet_answers_again(
    no_raylet: tuple[str, NoRaylet], caplog: pytest.LogCaptureFixture
) -> None:
    address, _ = no_raylet
    metrics = RecordingMetrics()
    warmer = minimal_warmer(metrics, period_s=0.01)
    check_until_failures(warmer, address, metrics, 1)
    warmer._connect = lambda address: IdleRaylet()  # type: ignore[assignment,return-value]  # the node upgraded

    deadline = time.monotonic() + WAIT_S
    with caplog.at_level(logging.INFO, logger="ray.serve"):
        while warmer.failing():
            assert time.monotonic() < deadline, warmer.failing()
            warmer.check({NODE: address})
            time.sleep(0.01)

    assert metrics.degraded_values[-1] is False
    assert warmer.fresh_workers() == {NODE: []}
    assert "every node's raylet answers again" in caplog.text


def test_a_bug_outside_the_raylet_calls_is_not_absorbed() -> None:
    class NoneRaylet(IdleRaylet):
        def workers(self, job_id: str) -> dict[int, bool]:
            return None  # type: ignore[return-value]

    warmer = Warmer(JOB_ID, WarmWorkersArgs(per_node=2), RecordingMetrics(), lambda address: NoneRaylet())  # type: ignore[arg-type,return-value]

    with pytest.raises(AttributeError):
        warmer.check({NODE: "127.0.0.1:1"})


class Clock:
    """time.monotonic() for the warmer, moved by the test."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def scripted_warmer(per_node: int = 2, settle_s: float = 5.0) -> tuple[Warmer, ScriptedRaylet, Clock]:
    raylet = ScriptedRaylet()
    clock = Clock()
    args = WarmWorkersArgs(per_node=per_node, settle_s=settle_s)
    warmer = Warmer(JOB_ID, args, RecordingMetrics(), lambda address: raylet, clock)  # type: ignore[arg-type,return-value]
    return warmer, raylet, clock


def test_workers_are_asked_for_one_at_a_time_and_kept() -> None:
    """A raylet drops a prestart while its startup limit of workers (min(CPUs, cpu_count)) are starting."""
    warmer, raylet, _ = scripted_warmer(per_node=2)
    raylet.pids = {100: False}  # a replica's worker, there before the app: not taken from it
    warmer.check({NODE: "raylet"})
    warmer.check({NODE: "raylet"})
    assert raylet.prestarts == [1], "a second asked for while the first starts"

    raylet.pids[101] = True
    warmer.check({NODE: "raylet"})
    assert raylet.prestarts == [1, 1]
    raylet.pids[102] = True
    warmer.check({NODE: "raylet"})
    warmer.check({NODE: "raylet"})

    assert warmer.fresh_workers() == {NODE: [101, 102]}
    assert raylet.prestarts == [1, 1]


def test_a_worker_that_never_comes_is_asked_for_again_after_the_startup_timeout() -> None:
    warmer, raylet, clock = scripted_warmer(per_node=1)
    warmer.check({NODE: "raylet"})  # dropped by the raylet: nothing comes
    clock.now += STARTUP_TIMEOUT_S
    warmer.check({NODE: "raylet"})
    assert raylet.prestarts == [1]

    clock.now += 0.1
    warmer.check({NODE: "raylet"})
    assert raylet.prestarts == [1, 1]


def warm_node(warmer: Warmer, raylet: ScriptedRaylet, pids: list[int]) -> None:
    """Let the warmer fill the node with `pids`, one per check as it asks."""
    for pid in pids:
        warmer.check({NODE: "raylet"})
        raylet.pids[pid] = True
    warmer.check({NODE: "raylet"})
    assert warmer.fresh_workers() == {NODE: pids}


def test_taken_workers_are_replaced_once_none_was_taken_for_settle_s() -> None:
    """Replacements wait while a new app's replicas construct in the workers just taken."""
    warmer, raylet, clock = scripted_warmer(per_node=3, settle_s=5)
    warm_node(warmer, raylet, [101, 102, 103])
    asked = len(raylet.prestarts)
    raylet.pids[101] = False  # the new app's build task took one
    warmer.check({NODE: "raylet"})
    clock.now += 2
    raylet.pids |= {102: False, 103: False}  # its two replicas took the others
    warmer.check({NODE: "raylet"})
    clock.now += 4.9
    warmer.check({NODE: "raylet"})
    assert len(raylet.prestarts) == asked, "replaced while the replicas start"

    clock.now += 0.1
    warmer.check({NODE: "raylet"})
    assert raylet.prestarts[asked:] == [1]


def test_a_new_busy_worker_holds_the_replacements_back() -> None:
    """A worker Ray started for a replica that found none warm is a take too: the node is busy starting."""
    warmer, raylet, clock = scripted_warmer(per_node=1, settle_s=5)
    warm_node(warmer, raylet, [101])
    raylet.pids |= {101: False, 102: False}  # a rollout took it, and Ray started another for the next replica
    warmer.check({NODE: "raylet"})
    clock.now += 4
    raylet.pids[103] = False  # and one more
    warmer.check({NODE: "raylet"})
    clock.now += 4
    warmer.check({NODE: "raylet"})
    assert raylet.prestarts == [1]

    clock.now += 1
    warmer.check({NODE: "raylet"})
    assert raylet.prestarts == [1, 1]


def test_a_worker_taken_before_the_next_check_is_asked_for_again() -> None:
    """Serve hands a worker that just came up to a replica waiting for one; the app never sees it fresh."""
    warmer, raylet, clock = scripted_warmer(per_node=2, settle_s=0)
    warm_node(warmer, raylet, [101, 102])
    raylet.pids[101] = False  # a new app's replica took one
    warmer.check({NODE: "raylet"})
    assert raylet.prestarts == [1, 1, 1]

    raylet.pids[103] = False  # the one asked for came up and a second replica took it at once
    clock.now += 1
    warmer.check({NODE: "raylet"})

    assert raylet.prestarts == [1, 1, 1, 1], "the node stays one worker short until the startup timeout"
    assert warmer.fresh_workers() == {NODE: [102]}
