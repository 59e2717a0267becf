"""The served app with Ray Serve's defaults: what the toolkit's settings buy is the difference from this row.

Same code, same model, same replicas and replica resources as the served app (as many as it starts with); everything
the toolkit tunes is left to Ray: Ray's Python HTTP proxy (no throughput-optimized mode, no HAProxy), access log
on, max_ongoing_requests at Serve's default, the app's built-in batching (no user_config: batches of up to 16,
5 ms wait, one batch at a time), ONNX Runtime threads = the replica's CPUs, no health-check or rollout settings,
no warm workers or preloaded modules.

Run by the bench in a child process with none of the toolkit's Ray variables in its environment, so that this Ray
is started as a user's would be: `python -m benchmarks.ray_defaults --env bench --port 8123` deploys and serves
until SIGTERM.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path
from typing import Any

APP = "zero-shot"
ROUTE = f"/{APP}"
OBJECT_STORE_BYTES = 200 * 1024**2  # as the bench's own Ray: Serve passes small objects only
READY_TIMEOUT_S = 300


def out_of_the_box(app: dict[str, Any]) -> dict[str, Any]:
    """The zero-shot application of a rendered Serve config, stripped of everything the toolkit tunes (module
    docstring): import path, args but num_threads, and the deployment's name, replica count (the fixed
    num_replicas, or the replicas autoscaling starts with, at least one: a fixed count of 0 would never answer) and
    ray_actor_options remain."""
    (deployment,) = app["deployments"]
    replicas = deployment.get("num_replicas") or max(1, deployment.get("autoscaling_config", {}).get("min_replicas", 1))
    return {
        "name": app["name"],
        "import_path": app["import_path"],
        "route_prefix": app["route_prefix"],
        "args": {key: value for key, value in app["args"].items() if key != "num_threads"},
        "deployments": [
            {"name": deployment["name"], "num_replicas": replicas, "ray_actor_options": deployment["ray_actor_options"]}
        ],
    }


def config(root: Path, env: str) -> dict[str, Any]:
    """The Serve config this module deploys: <env>'s zero-shot application, out of the box."""
    from localrun.serve import env_plan

    app = next(a for a in env_plan(root, env).serve_config()["applications"] if a["name"] == APP)
    return {"applications": [out_of_the_box(app)]}


def main(argv: list[str] | None = None) -> int:
    """Start a new local Ray with default settings, deploy, serve until SIGTERM, shut down."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ray_defaults", description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="bench", help="environment whose zero-shot app is served")
    parser.add_argument("--port", type=int, required=True, help="HTTP port of Ray's proxy")
    args = parser.parse_args(argv)
    served = config(Path.cwd(), args.env)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())

    import ray
    from ray import serve

    from localrun.serve import deploy, logical_cpus

    ray.init(
        address="local",  # a Ray of its own, beside the bench's
        num_cpus=logical_cpus(served),
        include_dashboard=False,
        log_to_driver=False,
        logging_level=logging.WARNING,
        object_store_memory=OBJECT_STORE_BYTES,
    )
    try:
        deploy(served, args.port, READY_TIMEOUT_S)
        print(f"serving {APP} with Ray's defaults on port {args.port}", flush=True)
        stop.wait()
    finally:
        serve.shutdown()
        ray.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
