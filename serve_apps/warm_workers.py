"""Ray Serve app with no route: keeps fresh Ray workers started on every node for the next app build or replica.

Ray starts a worker process for each new replica when Serve asks for it: Python, Ray and the preloaded modules, about
0.9 s of every cold start here, before the replica's constructor runs. Ray reuses an idle worker instead, but only
one that never ran anything (a worker that ran a task never hosts an actor) and of the same job, and it starts none
ahead of demand for Serve. This app belongs to the Serve controller's job like every app, so every `period_s` it
asks the raylet of each node for as many such workers as that node lacks of `per_node`, counting only those it
started; Serve's next build task or replica there takes one. It waits until no worker was taken on a node for
`settle_s` before it starts replacements there, so they do not compete for the CPU with the replicas starting in
the workers just taken (about 1 CPU-second per new worker), and it starts them one at a time: a raylet starts at
most min(CPUs, cpu_count) workers at once and drops a prestart beyond that without an error (ray-project/ray
`python/ray/_private/services.py`, `maximum_startup_concurrency`; `src/ray/raylet/worker_pool.cc`,
`StartWorkerProcess` answers TooManyStartingWorkerProcesses), which left a node a worker short until
STARTUP_TIMEOUT_S when three were asked for at once on two cores.

It speaks the raylet's own gRPC API (ray.core.generated, pinned with Ray), which Ray exposes to no Python API:
PrestartWorkers and GetNodeStats (the dashboard's source of per-worker stats). The integration test
(tests/integration/test_warm_workers.py) fails if a Ray upgrade changes either. In a cluster, such a change (or a
raylet that does not answer) only degrades the app: it leaves that node alone for a while, logs one warning and
sets the `serving_warm_workers_degraded` gauge; its replica stays healthy, since a new one would fail the same way.
"""

import contextlib
import logging
import math
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import grpc
import ray
from pydantic import BaseModel, ConfigDict, Field
from ray import serve
from ray.serve import Application
from ray.util.metrics import Counter, Gauge

logger = logging.getLogger("ray.serve")

# A prestarted worker is kept this long even where Ray would kill idle workers (a node whose CPUs are all taken
# keeps none); after it, this app starts a new one if the node then lacks it. A keep-alive cannot be renewed: on a
# full node each warm worker is started again every 10 minutes (about 1 CPU-second), and after the app is removed
# its last workers stay up to 10 minutes.
KEEP_ALIVE_S = 600
# A requested worker counts as on its way until a new worker of the job shows on its node, or for this long: a worker
# starts in 1-2 s, but the raylet drops a prestart silently while as many workers as its startup limit are starting
# (below).
STARTUP_TIMEOUT_S = 10.0
RPC_TIMEOUT_S = 10.0
# A node whose raylet call failed is tried again after period_s, doubled on each failure in a row, at most this long.
MAX_BACKOFF_S = 300.0


class WarmWorkersArgs(BaseModel):
    """Arguments of the warm-workers app (the `args` of its Serve application)."""

    model_config = ConfigDict(extra="forbid")

    per_node: int = Field(ge=1, le=16, description="Fresh idle workers kept on every node.")
    period_s: float = Field(default=2.0, gt=0, le=60, description="Seconds between two checks of every node.")
    settle_s: float = Field(
        default=5.0,
        ge=0,
        le=600,
        description="Seconds without a worker taken on a node before its missing workers are started: a new app's"
        " replicas construct first (on two cores, three replacements starting beside them took a cold start from"
        " 1.1-1.2 s to 2.1-2.3 s; docs/benchmarks.md).",
    )


class RayletError(Exception):
    """A raylet call failed: its node is going away, or its API is no longer the one this module speaks."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@contextlib.contextmanager
def raylet_api() -> Iterator[None]:
    """Raise any failure of the block as a RayletError whose `reason` (ASCII, a metric tag) is the gRPC status code
    or the exception's type, chained to the failure so that its traceback is logged."""
    try:
        yield
    except grpc.RpcError as error:
        code = error.code() if isinstance(error, grpc.Call) else None
        raise RayletError(code.name if code is not None else "RpcError") from error
    except Exception as error:  # the block only speaks the raylet's API, any part of which a Ray upgrade can change
        raise RayletError(type(error).__name__) from error


class Raylet:
    """One node's raylet, reached over its gRPC port with Ray's own channel (token auth, TLS as configured).

    Every call raises RayletError if it fails, whatever the cause: a missing generated module, message or field, an
    RPC error (UNIMPLEMENTED from a raylet of another Ray version, UNAVAILABLE from one going away).
    """

    def __init__(self, address: str) -> None:
        with raylet_api():
            from ray._private.grpc_utils import init_grpc_channel
            from ray.core.generated import node_manager_pb2_grpc

            self._stub = node_manager_pb2_grpc.NodeManagerServiceStub(init_grpc_channel(address))

    def workers(self, job_id: str) -> dict[int, bool]:
        """The node's Python workers of `job_id`: PID -> whether it is fresh (never ran a task or an actor)."""
        with raylet_api():
            # The generated protobuf modules have no type stubs: mypy sees none of their messages or enums.
            from ray.core.generated import common_pb2, node_manager_pb2

            reply = self._stub.GetNodeStats(node_manager_pb2.GetNodeStatsRequest(), timeout=RPC_TIMEOUT_S)  # type: ignore[attr-defined]
            return {
                stats.pid: ray.ActorID(stats.actor_id).is_nil()
                and stats.num_executed_tasks == 0
                and stats.num_running_tasks == 0
                for stats in reply.core_workers_stats
                if stats.worker_type == common_pb2.WORKER  # type: ignore[attr-defined]
                and stats.job_id.hex() == job_id
            }

    def prestart(self, job_id: str, count: int) -> None:
        """Ask for `count` more Python workers of `job_id` with no runtime env, kept alive KEEP_ALIVE_S."""
        with raylet_api():
            from ray.core.generated import common_pb2, node_manager_pb2, runtime_environment_pb2

            request = node_manager_pb2.PrestartWorkersRequest(  # type: ignore[attr-defined]
                language=common_pb2.PYTHON,  # type: ignore[attr-defined]
                job_id=bytes.fromhex(job_id),
                runtime_env_info=runtime_environment_pb2.RuntimeEnvInfo(serialized_runtime_env="{}"),  # type: ignore[attr-defined]
                keep_alive_duration_secs=KEEP_ALIVE_S,
                num_workers=count,
            )
            self._stub.PrestartWorkers(request, timeout=RPC_TIMEOUT_S)


@dataclass
class NodeWarmth:
    """What the app knows of one node: its raylet, the fresh workers it started there, whether the one it asked for
    last is still starting.

    Only workers it started count: a node can hold other fresh workers that Serve's next replica cannot take, e.g.
    ones Ray started for a task with a runtime_env, which the raylet's stats do not show.
    """

    raylet: Raylet
    ours: set[int] = field(default_factory=set)
    known: set[int] | None = None  # the job's workers at the last check; None before the first
    starting: bool = False
    requested_at: float = 0.0
    taken_at: float = -math.inf

    def top_up(self, job_id: str, args: WarmWorkersArgs, now: float) -> None:
        """Claim the workers that came up since the last request, then ask for those the node lacks, once no worker
        was taken there for `args.settle_s` (`now`: time.monotonic())."""
        workers = self.raylet.workers(job_id)
        fresh = {pid for pid, is_fresh in workers.items() if is_fresh}
        arrived = sorted(set(workers) - (self.known or set()))
        # Taken: one of ours that ran something since, or a new worker of the job already busy (one of ours handed
        # to a replica before this check saw it, or one Ray started for a replica that found none warm). The busy
        # workers of the first check were there before this app.
        new_busy = self.known is not None and any(pid not in fresh for pid in arrived)
        if new_busy or any(pid in workers and pid not in fresh for pid in self.ours):
            self.taken_at = now
        self.known = set(workers)
        claimed = [pid for pid in arrived if pid in fresh][:1] if self.starting else []
        self.ours = (self.ours | set(claimed)) & fresh  # one that ran something is no longer fresh
        # Any new worker of the job counts as the one asked for, taken or not: Serve hands a worker that just came up
        # to the replica waiting for one, often before this check sees it fresh, and counted as still starting it
        # left the node short until STARTUP_TIMEOUT_S (30 s without a warm worker between two cold starts in the
        # bench). A new worker that Ray started itself counts too; then one is asked for before ours came up.
        if arrived:
            self.starting = False
        if self.starting and now - self.requested_at > STARTUP_TIMEOUT_S:
            self.starting = False  # never registered (failed to start): asked for again below
        settled = now - self.taken_at >= args.settle_s
        if not self.starting and len(self.ours) < args.per_node and settled:
            self.raylet.prestart(job_id, 1)  # one at a time (the module's docstring says why)
            self.starting = True
            self.requested_at = now


class WarmWorkersMetrics:
    """The app's metric handles (Ray's metrics agent exports them; outside a Ray worker they record nowhere)."""

    def __init__(self) -> None:
        self._degraded = Gauge(
            "serving_warm_workers_degraded",
            description="1 while the warm-workers app leaves a node alone because its raylet calls fail, else 0.",
        )
        self._raylet_failures = Counter(
            "serving_warm_workers_raylet_failures",
            description="Failed raylet calls of the warm-workers app, per reason: a gRPC status code (UNIMPLEMENTED"
            " after a Ray upgrade changed the API, UNAVAILABLE from a node going away) or an exception type.",
            tag_keys=("reason",),
        )

    def degraded(self, degraded: bool) -> None:
        """Set whether some node is left alone."""
        self._degraded.set(int(degraded))

    def raylet_failed(self, reason: str) -> None:
        """Count one failed raylet call."""
        self._raylet_failures.inc(1, tags={"reason": reason})


@dataclass
class Failing:
    """A node whose last raylet call failed: why, how many times in a row, when to try it again (monotonic s)."""

    reason: str
    failures: int
    retry_at: float


class Warmer:
    """Tops every node given to `check` up with fresh workers; a node whose raylet fails is left alone a while.

    Such a node is tried again after period_s, doubled on each failure in a row up to MAX_BACKOFF_S. Each failure
    is counted in the metrics, and each reason is logged once until every node answers again: a Ray upgrade that
    breaks the raylet API gives one warning and a degraded gauge, not a warning every period_s.
    """

    def __init__(
        self,
        job_id: str,
        args: WarmWorkersArgs,
        metrics: WarmWorkersMetrics,
        connect: Callable[[str], Raylet] = Raylet,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._job_id = job_id
        self._args = args
        self._metrics = metrics
        self._connect = connect
        self._clock = clock
        self._nodes: dict[str, NodeWarmth] = {}
        self._failing: dict[str, Failing] = {}
        self._warned: set[str] = set()
        metrics.degraded(False)

    def check(self, raylets: dict[str, str]) -> None:
        """Top up each node of `raylets` (node ID -> raylet address, host:port) not left alone, forget the others."""
        now = self._clock()
        for node_id, address in raylets.items():
            failing = self._failing.get(node_id)
            if failing is not None and now < failing.retry_at:
                continue
            try:
                if node_id not in self._nodes:
                    self._nodes[node_id] = NodeWarmth(self._connect(address))
                self._nodes[node_id].top_up(self._job_id, self._args, now)
            except RayletError as error:
                self._failed(node_id, error)
            else:
                self._failing.pop(node_id, None)
        for gone in set(self._nodes) - set(raylets):
            del self._nodes[gone]
        for gone in set(self._failing) - set(raylets):
            del self._failing[gone]
        if self._warned and not self._failing:
            logger.info("warm-workers: every node's raylet answers again")
            self._warned.clear()
        self._metrics.degraded(bool(self._failing))

    def _failed(self, node_id: str, error: RayletError) -> None:
        self._nodes.pop(node_id, None)  # a new channel, and a new count of its workers, once it answers again
        previous = self._failing.get(node_id)
        failures = previous.failures + 1 if previous else 1
        delay_s = min(self._args.period_s * 2 ** min(failures, 16), MAX_BACKOFF_S)
        self._failing[node_id] = Failing(error.reason, failures, self._clock() + delay_s)
        self._metrics.raylet_failed(error.reason)
        if error.reason not in self._warned:
            self._warned.add(error.reason)
            logger.warning(
                "warm-workers: the raylet of node %s failed (%s); no workers are kept warm there, and it is tried"
                " again after up to %.0f s. If every node fails so after a Ray upgrade, the raylet's API"
                " (PrestartWorkers, GetNodeStats) changed: see serve_apps/warm_workers.py",
                node_id,
                error.reason,
                MAX_BACKOFF_S,
                exc_info=error,
            )

    def fresh_workers(self) -> dict[str, list[int]]:
        """The fresh workers this app started and found idle at the last check, by node ID."""
        return {node_id: sorted(node.ours) for node_id, node in list(self._nodes.items())}

    def failing(self) -> dict[str, str]:
        """The nodes left alone because their last raylet call failed, with its reason, by node ID."""
        return {node_id: failing.reason for node_id, failing in list(self._failing.items())}


@serve.deployment(num_replicas=1, ray_actor_options={"num_cpus": 0})
class WarmWorkers:
    """Checks every alive node each `period_s` seconds, in a thread of its own, and tops its fresh workers up."""

    def __init__(self, args: WarmWorkersArgs) -> None:
        self._args = args
        self._warmer = Warmer(ray.get_runtime_context().get_job_id(), args, WarmWorkersMetrics())
        self._error: BaseException | None = None
        self._stop = threading.Event()
        threading.Thread(target=self._run, name="warm-workers", daemon=True).start()

    def raylet_addresses(self) -> dict[str, str]:
        """The raylet address (host:port) of every alive node, by node ID."""
        return {n["NodeID"]: f"{n['NodeManagerAddress']}:{n['NodeManagerPort']}" for n in ray.nodes() if n["Alive"]}

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self._warmer.check(self.raylet_addresses())
                self._stop.wait(self._args.period_s)
        except Exception as error:  # not a raylet's failure (the warmer absorbs those) but a bug: kept for check_health
            logger.exception("warm-workers stopped")
            self._error = error

    def fresh_workers(self) -> dict[str, list[int]]:
        """The fresh workers this app started and found idle at the last check, by node ID."""
        return self._warmer.fresh_workers()

    def failing_raylets(self) -> dict[str, str]:
        """The nodes left alone because their last raylet call failed, with its reason, by node ID."""
        return self._warmer.failing()

    def check_health(self) -> None:
        """Unhealthy once the thread stopped on an error of its own, not a raylet's: Serve then starts a new replica,
        and with it a new thread. Failing raylets leave it healthy, since a new replica would meet the same ones."""
        if self._error is not None:
            raise RuntimeError(f"warm-workers check failed: {self._error!r}")

    def __del__(self) -> None:
        self._stop.set()


def app_builder(args: dict[str, Any]) -> Application:
    """Serve's entry point for the app (import_path serve_apps.warm_workers:app_builder)."""
    return WarmWorkers.bind(WarmWorkersArgs.model_validate(args))  # type: ignore[attr-defined]
