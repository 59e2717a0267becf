"""The warm-workers app with every node's raylet address replaced by the GCS's: a real Ray gRPC server that does not
serve the raylet's API, so each raylet call fails as after a Ray upgrade that changed it. It also tells its
replica's PID, and Serve checks its health every second (import path
tests.integration.misdirected_warm_workers:app_builder)."""

import os
from typing import Any

import ray
from ray import serve
from ray.serve import Application

from serve_apps.warm_workers import WarmWorkers, WarmWorkersArgs

HEALTH_CHECK_PERIOD_S = 1.0


class MisdirectedWarmWorkers(WarmWorkers.func_or_class):  # type: ignore[name-defined]
    def raylet_addresses(self) -> dict[str, str]:
        gcs = ray.get_runtime_context().gcs_address
        return dict.fromkeys(super().raylet_addresses(), gcs)

    def pid(self) -> int:
        return os.getpid()


def app_builder(args: dict[str, Any]) -> Application:
    deployment = serve.deployment(
        num_replicas=1, ray_actor_options={"num_cpus": 0}, health_check_period_s=HEALTH_CHECK_PERIOD_S
    )(MisdirectedWarmWorkers)
    return deployment.bind(WarmWorkersArgs.model_validate(args))
