"""A task's main process on ECS and Cloud Run: run a single-node Ray Serve of one config, and drain it on SIGTERM.

`python -m serve_apps.entrypoint --grace-period-s=30 --num-cpus=1 ... /tmp/serve-config.yaml` (rendered by
render/targets/single_node.py) starts a Ray head sized like the task, deploys the Serve config and waits. On SIGTERM
(a deploy or a scale-in) it drains instead of dying with its in-flight requests, as `serve run` did (ray.init installs
a SIGTERM handler that exits at once, ray-project/ray python/ray/_private/worker.py `init`):

1. stop taking new requests: every application is deleted, so the proxy drops its routes (a new request gets 404 and
   the health path fails) while each replica finishes what it holds before it stops (Serve's graceful replica
   shutdown: ray-project/ray python/ray/serve/_private/replica.py `_perform_graceful_shutdown` and
   `_drain_ongoing_requests`, bounded by the deployment's graceful_shutdown_timeout_s);
2. wait until Serve reports no application left, or until the grace period minus STOP_RESERVE_S has passed;
3. shut Serve down, then the Ray processes this process started, and exit 0, all before the platform's SIGKILL.

`serve.shutdown()` alone would not do: the controller kills the proxies on its first shutdown tick, with their
requests (ray-project/ray python/ray/serve/_private/controller.py `shutdown`, proxy_state.py `ProxyState.shutdown`).

This process starts Ray itself (`ray.init`, not `ray start`): the processes it started are the ones `ray.shutdown()`
stops, where `ray stop` would stop every Ray of the machine, and no `--address=auto` can find another node's Ray.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

# Seconds kept back from the grace period to stop Serve and Ray after the drain (about 2 s on an idle head).
STOP_RESERVE_S = 4.0
POLL_S = 0.2

logger = logging.getLogger("serve_apps.entrypoint")


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The task's Ray size (as `ray start` takes it), its grace period and its Serve config file."""
    parser = argparse.ArgumentParser(prog="python -m serve_apps.entrypoint", description=__doc__.splitlines()[0])
    parser.add_argument("config", type=Path, help="Serve config file (ServeDeploySchema YAML).")
    parser.add_argument(
        "--grace-period-s",
        type=float,
        required=True,
        help="Seconds between SIGTERM and the platform's SIGKILL (ECS stopTimeout; 10 on Cloud Run).",
    )
    parser.add_argument("--num-cpus", type=int, required=True, help="Logical CPUs of the Ray head.")
    parser.add_argument("--num-gpus", type=int, required=True, help="GPUs of the Ray head.")
    parser.add_argument("--memory", type=int, required=True, help="Memory for replicas, in bytes.")
    parser.add_argument("--object-store-memory", type=int, required=True, help="Object store size, in bytes.")
    args = parser.parse_args(argv)
    if args.grace_period_s <= STOP_RESERVE_S:
        parser.error(f"--grace-period-s must exceed the {STOP_RESERVE_S:g} s kept to stop Serve and Ray")
    return args


def deploy(config: dict[str, Any]) -> None:
    """Start Serve with the config's proxy options and submit its applications, as `serve run <config>` does
    (ray-project/ray python/ray/serve/scripts.py `run`: `serve_start`, then `deploy_apps`)."""
    from ray.serve._private import api as serve_api
    from ray.serve.schema import ServeDeploySchema

    schema = ServeDeploySchema.model_validate(config)
    client = serve_api.serve_start(
        http_options=schema.http_options.model_dump(),
        grpc_options=schema.grpc_options.model_dump(),
        controller_options=schema.controller_options,
        proxy_location=schema.proxy_location,
    )
    client.deploy_apps(schema, _blocking=False)


def drain(deadline: float) -> None:
    """Delete every application and wait, until `deadline` (time.monotonic()), for Serve to report none left."""
    from ray import serve

    names = list(serve.status().applications)
    logger.info("SIGTERM: draining %s", ", ".join(names) or "no application")
    for name in names:
        serve.delete(name, _blocking=False)
    while serve.status().applications:
        if time.monotonic() >= deadline:
            logger.warning("grace period spent with %s still draining", ", ".join(serve.status().applications))
            return
        time.sleep(POLL_S)


def main(argv: list[str]) -> int:
    """Run until SIGTERM (or SIGINT), then drain and stop; 0 once everything this process started has stopped."""
    import ray
    import yaml
    from ray import serve

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    args = parse_args(argv)
    config = yaml.safe_load(args.config.read_text())
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    ray.init(
        address="local",
        num_cpus=args.num_cpus,
        num_gpus=args.num_gpus,
        object_store_memory=args.object_store_memory,
        _memory=args.memory,
        # Nothing outside the task can reach a dashboard: the task maps only the Serve port.
        include_dashboard=False,
    )
    stop = threading.Event()
    signalled_at: list[float] = []

    def on_signal(signum: int, _frame: object) -> None:
        if not signalled_at:
            signalled_at.append(time.monotonic())
        stop.set()

    # After ray.init, which installs its own SIGTERM handler.
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        deploy(config)
        logger.info("Serve config %s submitted", args.config)
        stop.wait()
        drain(signalled_at[0] + args.grace_period_s - STOP_RESERVE_S)
        serve.shutdown()
    finally:
        ray.shutdown()
    logger.info("stopped %.1f s after the signal", time.monotonic() - signalled_at[0])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
