"""Run an environment's rendered Serve config on a local Ray: `python -m localrun.serve <env>` (`nox -s serve`).

The config comes from the same plan `render` writes into serveConfigV2, so what runs here is what the
cluster runs; only the proxy binds to 127.0.0.1 instead of 0.0.0.0. Predictions are logged to
$PREDICTION_DB_URL, else to a SQLite file of this checkout (LOCAL_PREDICTION_LOG under --root).
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import shlex
import socket
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from render.plan import EnvPlan

LOCAL_HOST = "127.0.0.1"
# Per checkout: one file per user (the replicas' default, in the model cache) mixed every clone's and run's
# predictions into /stats. build/ is ignored by git.
LOCAL_PREDICTION_LOG = Path("build", "serve", "predictions.sqlite")


class DeployError(Exception):
    """A Serve application did not reach RUNNING; the message carries Serve's own reason."""


@dataclass(frozen=True)
class LocalServe:
    """A Serve config running locally: its base URL and how long each app took from deploy to RUNNING."""

    url: str
    seconds_to_running: dict[str, float]


def env_plan(root: Path, env: str) -> EnvPlan:
    """The plan of one environment, the one render builds from; raises SpecError."""
    from render.plan import plan_env
    from render.spec.load import load_clusters, load_specs

    spec = load_specs(root, [env])[env]
    return plan_env(spec, load_clusters(root))


def env_serve_config(root: Path, env: str) -> dict[str, Any]:
    """The Serve config of one environment, as render puts it into serveConfigV2; raises SpecError."""
    return env_plan(root, env).serve_config()


def local_ray_env(plan: EnvPlan) -> dict[str, str]:
    """`plan`'s Ray variables (`EnvPlan.ray_env`) for a Ray on this machine: the CPUs this process may run on are
    what a local Ray's processes share, as a container's CPUs are shared by its Ray's."""
    return plan.ray_env(len(os.sched_getaffinity(0)))


def apply_ray_env(variables: Mapping[str, str]) -> None:
    """Put an environment's Ray variables (`EnvPlan.ray_env`) into os.environ, as its containers get them.

    Call it before ray.init: Ray reads them when each of its processes starts, and the raylet and every worker
    inherit this process's environment at ray.init.
    """
    import ray

    if variables and ray.is_initialized():
        raise RuntimeError(f"set {', '.join(sorted(variables))} before ray.init: a running Ray would ignore them")
    os.environ.update(variables)


def cpus_at_max_replicas(config: dict[str, Any]) -> float:
    """The logical CPUs the config's deployments reserve at their max replicas."""
    needed = 0.0
    for app in config["applications"]:
        for deployment in app["deployments"]:
            replicas = deployment.get("autoscaling_config", {}).get("max_replicas") or deployment.get("num_replicas", 1)
            needed += replicas * deployment.get("ray_actor_options", {}).get("num_cpus", 1)
    return needed


def logical_cpus(config: dict[str, Any]) -> int:
    """CPUs to give a local Ray so every deployment can reach its max replicas (logical, may exceed the cores)."""
    return max(math.ceil(cpus_at_max_replicas(config)), os.cpu_count() or 1)


def deploy(config: dict[str, Any], port: int, timeout_s: float = 300) -> LocalServe:
    """Deploy a Serve config on the connected Ray and wait until every app runs; raise DeployError if one fails."""
    started = time.monotonic()
    seconds = wait_running(submit(config, port), started, timeout_s)
    return LocalServe(url=f"http://{LOCAL_HOST}:{port}", seconds_to_running=seconds)


def submit(config: dict[str, Any], port: int) -> list[str]:
    """Send a Serve config to the connected Ray without waiting for it; the names of its applications.

    Not from two threads at once, nor beside serve.status() in another thread: both build Ray's AutoscalingConfig,
    whose policy serialisation registers and unregisters its module in a process-wide set (Ray 2.60), and two at
    once raise "not registered for pickle by value".
    """
    import ray
    from ray import serve
    from ray.serve import context as serve_context
    from ray.serve._private import api as serve_api
    from ray.serve.schema import ServeDeploySchema

    # serve_start reuses a running Serve with its own HTTP port and ignores ours: one left on another port (an
    # earlier deploy, a test module before) is shut down first, so the apps answer where the caller expects.
    # On the same port the running Serve stays, and its old replicas serve until the new ones are up.
    running = serve_context._get_global_client(raise_if_no_controller_running=False)
    if running is not None and ray.get(running._controller.get_http_config.remote()).port != port:
        serve.shutdown()
    schema = ServeDeploySchema.model_validate(
        {**config, "http_options": {**config.get("http_options", {}), "host": LOCAL_HOST, "port": port}}
    )
    client = serve_api.serve_start(http_options=schema.http_options.model_dump(), proxy_location=schema.proxy_location)
    client.deploy_apps(schema, _blocking=False)
    return [application.name for application in schema.applications]


def wait_running(names: list[str], started: float, timeout_s: float) -> dict[str, float]:
    """Poll Serve until each named app is RUNNING; return seconds from `started` per app."""
    from ray import serve

    seconds: dict[str, float] = {}
    while len(seconds) < len(names):
        applications = serve.status().applications
        for name in names:
            status = applications.get(name)
            if status is None or name in seconds:
                continue
            if status.status == "RUNNING":
                seconds[name] = time.monotonic() - started
            elif status.status in ("DEPLOY_FAILED", "UNHEALTHY"):
                # The app's own message is generic; the deployments' messages carry the reason (e.g. a sha256 mismatch).
                reasons = [status.message, *(d.message for d in status.deployments.values() if d.message)]
                raise DeployError(f"{name}: {status.status}: " + "\n".join(reasons))
        if time.monotonic() - started > timeout_s:
            pending = sorted(set(names) - set(seconds))
            raise DeployError(f"not RUNNING after {timeout_s:.0f} s: {', '.join(pending)}")
        time.sleep(0.2)
    return seconds


def prediction_log_url(root: Path) -> str:
    """$PREDICTION_DB_URL if set, else the SQLite file of the checkout at `root` (its folder made here)."""
    from serve_apps.common.prediction_log import DB_URL_ENV

    if configured := os.environ.get(DB_URL_ENV):
        return configured
    path = (root / LOCAL_PREDICTION_LOG).resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


def dashboard_access(url: str) -> list[str]:
    """Lines telling how to open the dashboard at `url` and query its API with Ray's token.

    Ray 2.60 turns token auth on for a local ray.init unless RAY_AUTH_MODE says otherwise, and takes the token from
    $RAY_AUTH_TOKEN, else the file $RAY_AUTH_TOKEN_PATH names, else ~/.ray/auth_token, which the first ray.init
    writes (ray/_private/authentication/authentication_token_setup.py; the order is the C++ token loader's). The
    dashboard takes it as `Authorization: Bearer <token>` (or X-Ray-Authorization), and its page asks for it once.
    """
    if os.environ.get("RAY_AUTH_MODE", "token").lower() != "token":
        return [f"dashboard: {url} (RAY_AUTH_MODE={os.environ['RAY_AUTH_MODE']}: no token)"]
    if os.environ.get("RAY_AUTH_TOKEN"):
        where, token = "$RAY_AUTH_TOKEN", "$RAY_AUTH_TOKEN"
    else:
        path = Path(os.environ.get("RAY_AUTH_TOKEN_PATH") or Path.home() / ".ray" / "auth_token")
        where, token = str(path), f"$(cat {shlex.quote(str(path))})"
    return [
        f"dashboard: {url} (Ray's token auth: paste the token from {where} when it asks)",
        f'  its API: curl -H "Authorization: Bearer {token}" {url}/api/serve/applications/',
    ]


def _port(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 65535:
        raise ValueError(text)
    return value


_port.__name__ = "port (1-65535)"  # argparse names the type in its error message


def port_taken(port: int) -> str | None:
    """Why LOCAL_HOST:`port` cannot be listened on (in use, not allowed), or None when it can."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # As a server binds: a port whose last connections linger in TIME_WAIT is free to it.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((LOCAL_HOST, port))
        except OSError as error:
            return error.strerror or str(error)
    return None


def main(argv: list[str] | None = None) -> int:
    """Start Ray with the dashboard, deploy the env's Serve config, print the URLs, stay up until Ctrl-C."""
    parser = argparse.ArgumentParser(prog="python -m localrun.serve", description=__doc__)
    parser.add_argument("env", help="environment name under deployments/")
    parser.add_argument("--root", default=".", help="repository root")
    parser.add_argument("--port", type=_port, default=8000, help="HTTP port of the Serve proxy")
    parser.add_argument("--dashboard-port", type=_port, default=8265)
    parser.add_argument(
        "--ray-logs", action="store_true", help="print Ray's own log lines here too (always in its session's logs/)"
    )
    args = parser.parse_args(argv)

    from render.errors import SpecError

    try:
        plan = env_plan(Path(args.root), args.env)
    except SpecError as error:
        print(error, file=sys.stderr)
        return 1
    config = plan.serve_config()
    # Checked before Ray starts: Serve would find out only once deployed, and the dashboard not at all.
    for option, port in (("--port", args.port), ("--dashboard-port", args.dashboard_port)):
        if (problem := port_taken(port)) is not None:
            hint = f"pass {option} <free port>"
            print(f"error: {LOCAL_HOST}:{port} cannot be listened on ({problem}). Hint: {hint}", file=sys.stderr)
            return 1

    from localrun.stop import local_ray, stop_on_signals
    from serve_apps.common.prediction_log import DB_URL_ENV

    stop_on_signals()  # a SIGTERM while Ray starts unwinds as Ctrl-C does
    ray_env = local_ray_env(plan)
    apply_ray_env(ray_env)
    # Before ray.init: every Ray worker, the replicas' included, inherits this process's environment.
    os.environ[DB_URL_ENV] = prediction_log_url(Path(args.root))
    cpus = logical_cpus(config)
    print(f"starting Ray ({cpus} logical CPUs)")
    for name, value in sorted(ray_env.items()):
        print(f"  {name}={value} (env.serve of {args.env})")
    try:
        if not args.ray_logs:
            # The driver's Serve client logs its steps at INFO, and Serve resets its logger's level when it starts: a
            # filter stays. The terminal keeps to the toolkit's lines and Ray's warnings.
            logging.getLogger("ray.serve").addFilter(lambda record: record.levelno >= logging.WARNING)
        with local_ray(
            address="local",  # a new Ray, even when `ray start` left one running on this machine
            num_cpus=cpus,
            include_dashboard=True,
            dashboard_host=LOCAL_HOST,
            dashboard_port=args.dashboard_port,
            # Workers' and the proxy's lines (endpoint tables, several per second at start-up) reach the terminal only
            # when asked for; they are always written to the session's log directory, printed below.
            log_to_driver=args.ray_logs,
            logging_level=logging.INFO if args.ray_logs else logging.WARNING,
        ) as context:
            try:
                served = deploy(config, args.port)
            except DeployError as error:
                print(f"deploy failed: {error}", file=sys.stderr)
                return 1
            for app in config["applications"]:
                up = f"up in {served.seconds_to_running[app['name']]:.1f} s"
                if app["route_prefix"] is None:  # the toolkit's own apps (env.serve.warm_workers) take no requests
                    print(f"  {app['name']:<12} (no route, {up})")
                    continue
                url = served.url + app["route_prefix"]
                print(f"  {app['name']:<12} {url}  (docs: {url}/docs, {up})")
            print(f"prediction log: {_shown(os.environ[DB_URL_ENV])} (${DB_URL_ENV} sets another)")
            print("\n".join(dashboard_access(f"http://{LOCAL_HOST}:{args.dashboard_port}")))
            logs = Path(context.address_info["session_dir"], "logs")
            print(f"Ray's logs: {logs}" + ("" if args.ray_logs else " (--ray-logs prints them here too)"))
            print("serving; Ctrl-C stops", flush=True)
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        print("stopped")
    return 0


def _shown(db_url: str) -> str:
    from sqlalchemy import make_url

    return make_url(db_url).render_as_string(hide_password=True)


if __name__ == "__main__":
    sys.exit(main())
