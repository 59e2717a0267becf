"""Ray Serve app with no route: keeps fresh Ray workers started on every node for the next app build or replica.

Ray starts a worker process for each new replica when Serve asks for it: Python, Ray and the preloaded modules, about
0.9 s of every cold start here, before the replica's constructor runs. Ray reuses an idle worker instead, but only
one that never ran anything (a worker that ran a task never hosts an actor) and of the same job, and it starts none
ahead of demand for Serve. This app belongs to the Serve controller's job like every app, so every `period_s` it
asks the raylet of each node for as many such workers as that node lacks of `per_node`, counting only those it
started; Serve's next build task or replica there takes one.

It speaks the raylet's own gRPC API (ray.core.generated, pinned with Ray), which Ray exposes to no Python API:
PrestartWorkers and GetNodeStats (the dashboard's source of per-worker stats). The integration test
(tests/integration/test_warm_workers.py) fails if a Ray upgrade changes either.
"""

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import grpc
import ray
from pydantic import BaseModel, ConfigDict, Field
from ray import serve
from ray.serve import Application

logger = logging.getLogger("ray.serve")

# A prestarted worker is kept this long even where Ray would kill idle workers (a node whose CPUs are all taken
# keeps none); after it, this app starts a new one if the node then lacks it. A keep-alive cannot be renewed: on a
# full node each warm worker is started again every 10 minutes (about 1 CPU-second), and after the app is removed
# its last workers stay up to 10 minutes.
KEEP_ALIVE_S = 600
# A requested worker counts as on its way until a new fresh worker shows on its node, or for this long.
STARTUP_TIMEOUT_S = 30.0
RPC_TIMEOUT_S = 10.0


class WarmWorkersArgs(BaseModel):
    """Arguments of the warm-workers app (the `args` of its Serve application)."""

    model_config = ConfigDict(extra="forbid")

    per_node: int = Field(ge=1, le=16, description="Fresh idle workers kept on every node.")
    period_s: float = Field(default=2.0, gt=0, le=60, description="Seconds between two checks of every node.")


class Raylet:
    """One node's raylet, reached over its gRPC port with Ray's own channel (token auth, TLS as configured)."""

    def __init__(self, address: str) -> None:
        from ray._private.grpc_utils import init_grpc_channel
        from ray.core.generated import node_manager_pb2_grpc

        self._stub = node_manager_pb2_grpc.NodeManagerServiceStub(init_grpc_channel(address))

    def fresh_workers(self, job_id: str) -> list[int]:
        """PIDs of the node's Python workers of `job_id` that never ran a task or an actor."""
        # The generated protobuf modules have no type stubs: mypy sees none of their messages or enums.
        from ray.core.generated import common_pb2, node_manager_pb2

        reply = self._stub.GetNodeStats(node_manager_pb2.GetNodeStatsRequest(), timeout=RPC_TIMEOUT_S)  # type: ignore[attr-defined]
        return [
            stats.pid
            for stats in reply.core_workers_stats
            if stats.worker_type == common_pb2.WORKER  # type: ignore[attr-defined]
            and stats.job_id.hex() == job_id
            and ray.ActorID(stats.actor_id).is_nil()
            and stats.num_executed_tasks == 0
            and stats.num_running_tasks == 0
        ]

    def prestart(self, job_id: str, count: int) -> None:
        """Ask for `count` more Python workers of `job_id` with no runtime env, kept alive KEEP_ALIVE_S."""
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
    """What the app knows of one node: its raylet, the fresh workers it started there, those still starting.

    Only workers it started count: a node can hold other fresh workers that Serve's next replica cannot take, e.g.
    ones Ray started for a task with a runtime_env, which the raylet's stats do not show.
    """

    raylet: Raylet
    ours: set[int] = field(default_factory=set)
    seen: set[int] = field(default_factory=set)
    starting: int = 0
    requested_at: float = 0.0

    def top_up(self, job_id: str, per_node: int) -> None:
        """Claim the workers that came up since the last request, then ask for those the node lacks."""
        fresh = set(self.raylet.fresh_workers(job_id))
        claimed = sorted(fresh - self.seen - self.ours)[: self.starting]
        self.ours = (self.ours | set(claimed)) & fresh  # one that ran something is no longer fresh
        self.seen = fresh
        self.starting -= len(claimed)
        if self.starting and time.monotonic() - self.requested_at > STARTUP_TIMEOUT_S:
            self.starting = 0  # never registered (failed to start): asked for again below
        missing = per_node - len(self.ours) - self.starting
        if missing > 0:
            self.raylet.prestart(job_id, missing)
            self.starting += missing
            self.requested_at = time.monotonic()


@serve.deployment(num_replicas=1, ray_actor_options={"num_cpus": 0})
class WarmWorkers:
    """Checks every alive node each `period_s` seconds, in a thread of its own, and tops its fresh workers up."""

    def __init__(self, args: WarmWorkersArgs) -> None:
        self._args = args
        self._job_id = ray.get_runtime_context().get_job_id()
        self._nodes: dict[str, NodeWarmth] = {}
        self._error: BaseException | None = None
        self._stop = threading.Event()
        threading.Thread(target=self._run, name="warm-workers", daemon=True).start()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                alive = {n["NodeID"]: n for n in ray.nodes() if n["Alive"]}
                for node_id, node in alive.items():
                    if node_id not in self._nodes:
                        address = f"{node['NodeManagerAddress']}:{node['NodeManagerPort']}"
                        self._nodes[node_id] = NodeWarmth(Raylet(address))
                    try:
                        self._nodes[node_id].top_up(self._job_id, self._args.per_node)
                    except grpc.RpcError as error:  # e.g. a node going away before the GCS marks it dead
                        logger.warning("warm-workers: node %s did not answer: %s", node_id, error.code())
                        del self._nodes[node_id]
                for gone in set(self._nodes) - set(alive):
                    del self._nodes[gone]
                self._stop.wait(self._args.period_s)
        except Exception as error:  # kept for check_health, which makes Serve replace the replica
            logger.exception("warm-workers stopped")
            self._error = error

    def fresh_workers(self) -> dict[str, list[int]]:
        """The fresh workers this app started and found idle at the last check, by node ID."""
        return {node_id: sorted(node.ours) for node_id, node in list(self._nodes.items())}

    def check_health(self) -> None:
        """Unhealthy once a check failed: Serve then starts a new replica, and with it a new thread."""
        if self._error is not None:
            raise RuntimeError(f"warm-workers check failed: {self._error!r}")

    def __del__(self) -> None:
        self._stop.set()


def app_builder(args: dict[str, Any]) -> Application:
    """Serve's entry point for the app (import_path serve_apps.warm_workers:app_builder)."""
    return WarmWorkers.bind(WarmWorkersArgs.model_validate(args))  # type: ignore[attr-defined]
