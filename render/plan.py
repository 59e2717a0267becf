"""Spec → plan: every default resolved, per environment and app, ready for any target to build from."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from render.spec.builders import app_args_type, streams_tokens
from render.spec.clusters import Cluster
from render.spec.load import app_args
from render.spec.models import App, Deployment, SecretRef, Spec

SERVE_PORT = 8000
GIB = 1024**3
# The apps read it when a replica starts (serve_apps/common/api.py). It is in every Ray container's environment, not in
# each application's runtime_env: an application with a runtime_env needs worker processes of its own, so its build
# task and each new replica start a fresh process instead of taking an idle one (about 0.5 s of every cold start).
MAX_REQUEST_BODY_BYTES_ENV = "MAX_REQUEST_BODY_BYTES"
# What env.serve.throughput_optimized turns on. Ray reads these once, when each of its processes starts
# (ray/serve/_private/constants.py), so every Ray container gets them. THROUGHPUT_OPTIMIZED alone keeps one
# Python proxy, on the head only, that every request to port 8000 still passes through; with HA_PROXY, HAProxy answers
# port 8000 on every node and forwards to the ingress replicas' own ports (30000-31000, gRPC 40000-41000).
THROUGHPUT_OPTIMIZED_ENV = {"RAY_SERVE_THROUGHPUT_OPTIMIZED": "1", "RAY_SERVE_ENABLE_HA_PROXY": "1"}
# Ray Serve starts that HAProxy with 4 threads on every node, whatever its CPUs (RAY_SERVE_HAPROXY_NBTHREAD in
# ray-project/ray python/ray/serve/_private/constants.py, the `nbthread` line of haproxy_templates.py, Ray 2.60). In a
# small container they take turns on the cores the replicas need: on 2 cores at about 900 req/s, HAProxy used 0.05
# cores with 1 thread, 0.06 with 2 and 0.07 with 4, and the app answered 3-5 % more with 1 (`nox -s bench -- --only
# served`, docs/benchmarks.md). So one thread per two CPUs of the container, up to Ray's 4.
HAPROXY_THREADS_ENV = "RAY_SERVE_HAPROXY_NBTHREAD"
RAY_HAPROXY_THREADS = 4
# What env.serve.preload_modules sets: the raylet passes the list to every Python worker it starts, which imports
# it before taking work. Ray Serve's replica module brings FastAPI, uvicorn and the rest of Serve (0.45-0.65 s of a
# warm start here); the apps' modules are light at import by design. A module that fails to import is logged by the
# worker, which then starts as usual.
PRELOAD_MODULES_ENV = "RAY_preload_python_modules"
SERVE_REPLICA_MODULE = "ray.serve._private.replica"
# What every model replica's constructor imports whatever its app (serve_apps/common/replica.py): boto3 to fetch an
# s3:// artifact, the prediction log with SQLAlchemy. About 0.2 s of a replica's start on a warm worker (AMD EPYC,
# 2026-12-05), 20 MiB more in each worker. Not imported by the apps' modules, which render imports.
REPLICA_IMPORTS = ("boto3", "serve_apps.common.prediction_log")
# What env.serve.warm_workers adds to a cluster's Serve config: an application of the toolkit's, not of the spec,
# named so no spec app can take its name (an app name is a Kubernetes name, and those have no underscore).
WARM_WORKERS_APP = "_warm_workers"
WARM_WORKERS_IMPORT_PATH = "serve_apps.warm_workers:app_builder"


@dataclass(frozen=True)
class AppPlan:
    """One app with its Serve application config (the shape of Ray's ServeApplicationSchema), and whether it streams
    tokens (its Args model says so: render/spec/builders.py)."""

    app: App
    serve_application: dict[str, Any]
    secrets: dict[str, SecretRef]
    streams_tokens: bool


@dataclass(frozen=True)
class EnvPlan:
    """One environment: its spec, its cluster and its apps, resolved."""

    spec: Spec
    cluster: Cluster
    apps: tuple[AppPlan, ...]

    @property
    def name(self) -> str:
        """The environment name."""
        return self.spec.env.name

    @property
    def secrets(self) -> dict[str, SecretRef]:
        """Every secret any app of the environment needs, by environment variable name."""
        merged: dict[str, SecretRef] = {}
        for app in self.apps:
            merged.update(app.secrets)
        return dict(sorted(merged.items()))

    @property
    def autoscaling(self) -> bool:
        """Whether anything scales by itself: Serve replicas or worker nodes."""
        return any(d.autoscaling_config for a in self.spec.apps for d in a.deployments) or any(
            g.min_replicas != g.max_replicas for g in self.spec.worker_groups
        )

    def ray_env(self, cpus: float) -> dict[str, str]:
        """Environment variables every Ray process of a container (or machine) of `cpus` CPUs starts with, in a
        cluster serving all the environment's apps."""
        return self.ray_env_of(self.apps, cpus)

    def ray_env_of(self, apps: tuple[AppPlan, ...], cpus: float) -> dict[str, str]:
        """Environment variables every Ray process of a container (or machine) of `cpus` CPUs starts with, in a
        cluster serving `apps`: the apps' body limit, the Serve modes Ray reads at start (with HAProxy's threads
        for those CPUs) and the modules its workers preload."""
        serve = self.spec.env.serve
        throughput = (
            {**THROUGHPUT_OPTIMIZED_ENV, HAPROXY_THREADS_ENV: str(haproxy_threads(cpus))}
            if serve.throughput_optimized
            else {}
        )
        preload = {PRELOAD_MODULES_ENV: ",".join(preload_modules(apps))} if serve.preload_modules else {}
        return {MAX_REQUEST_BODY_BYTES_ENV: str(serve.max_request_body_bytes), **throughput, **preload}

    def serve_config(self, apps: tuple[AppPlan, ...] | None = None, *, cluster: bool = True) -> dict[str, Any]:
        """The Serve config (shape of Ray's ServeDeploySchema) for these apps, all of them by default; with
        `cluster` (a Ray cluster that deploys apps and replicas over time, not a single-node task) also the
        warm-workers application when env.serve.warm_workers asks for it."""
        serve = self.spec.env.serve
        http_options: dict[str, Any] = {
            "host": "0.0.0.0",  # noqa: S104 - inside the pod; exposure is decided by the Kubernetes Service
            "port": SERVE_PORT,
            "keep_alive_timeout_s": serve.keep_alive_timeout_s,
        }
        if serve.request_timeout_s is not None:
            http_options["request_timeout_s"] = serve.request_timeout_s
        return {
            "proxy_location": "EveryNode",
            "http_options": http_options,
            "applications": [
                *(a.serve_application for a in (self.apps if apps is None else apps)),
                *([warm_workers_application(serve.warm_workers)] if cluster and serve.warm_workers else []),
            ],
        }


def haproxy_threads(cpus: float) -> int:
    """HAProxy's threads in a Ray container (or machine) of `cpus` CPUs: one per two CPUs, from 1 to Ray's 4."""
    return max(1, min(RAY_HAPROXY_THREADS, int(cpus // 2)))


def warm_workers_application(per_node: int) -> dict[str, Any]:
    """The Serve application that keeps `per_node` fresh Ray workers on every node (serve_apps/warm_workers.py)."""
    return {
        "name": WARM_WORKERS_APP,
        "import_path": WARM_WORKERS_IMPORT_PATH,
        "route_prefix": None,
        "args": {"per_node": per_node},
        "deployments": [{"name": "WarmWorkers", "num_replicas": 1, "ray_actor_options": {"num_cpus": 0.0}}],
    }


def preload_modules(apps: tuple[AppPlan, ...]) -> tuple[str, ...]:
    """What the workers of a cluster serving `apps` preload: Ray Serve's replica module, what every model replica
    imports when it starts, then the module of each app's import_path (sorted, once each)."""
    return (SERVE_REPLICA_MODULE, *REPLICA_IMPORTS, *sorted({a.app.import_path.split(":")[0] for a in apps}))


def deployment_config(deployment: Deployment) -> dict[str, Any]:
    """One deployment's options in Ray's DeploymentSchema shape; batching travels inside user_config."""
    options = deployment.ray_actor_options
    actor_options: dict[str, Any] = {"num_cpus": options.num_cpus, "num_gpus": options.num_gpus}
    if options.memory_gib is not None:
        actor_options["memory"] = int(options.memory_gib * GIB)
    config: dict[str, Any] = {
        "name": deployment.name,
        "max_ongoing_requests": deployment.max_ongoing_requests,
        "health_check_period_s": deployment.health_check_period_s,
        "max_surge_percent": deployment.max_surge_percent,
        "ray_actor_options": actor_options,
    }
    if deployment.autoscaling_config is not None:
        config["autoscaling_config"] = deployment.autoscaling_config.model_dump()
    else:
        config["num_replicas"] = deployment.num_replicas
    user_config = dict(deployment.user_config)
    if deployment.batching is not None:
        user_config["batching"] = deployment.batching.model_dump()
    if user_config:
        config["user_config"] = user_config
    return config


def plan_app(spec: Spec, app: App) -> AppPlan:
    """Resolve one app: builder args with defaults, deployment options, secrets."""
    serve_application = {
        "name": app.name,
        "import_path": app.import_path,
        "route_prefix": app.route_prefix,
        "args": app_args(app),
        "deployments": [deployment_config(d) for d in app.deployments],
        "logging_config": {"enable_access_log": spec.env.serve.access_log},
    }
    return AppPlan(
        app=app,
        serve_application=serve_application,
        secrets={**spec.env.secrets, **app.secrets},
        streams_tokens=streams_tokens(app_args_type(app.import_path)),
    )


def plan_env(spec: Spec, clusters: dict[str, Cluster]) -> EnvPlan:
    """Resolve one environment; `clusters` must hold the cluster its target names."""
    return EnvPlan(
        spec=spec,
        cluster=clusters[spec.env.target.cluster],
        apps=tuple(plan_app(spec, a) for a in spec.apps),
    )
