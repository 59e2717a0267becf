"""One app as a single-node Ray: what the ECS and Cloud Run targets share.

Each task (ECS) or instance (Cloud Run) runs a Ray head and the app's Serve config in one process
(serve_apps/entrypoint.py), with one replica of every deployment of the app; the platform scales the number of
tasks, and the process drains its requests on SIGTERM within the platform's grace period. So:
- size: one replica of each deployment plus Ray's own processes (GCS, raylet, dashboard, Serve controller, proxy);
- count: per deployment the replica range, per app the widest of them (one task holds one replica of each).
"""

from __future__ import annotations

import math
import shlex
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import yaml

from render.targets.base import Honour, not_deployed

if TYPE_CHECKING:
    from render.plan import AppPlan, EnvPlan
    from render.spec.models import App, Deployment, Spec, WorkerGroup

# Ray's head processes beside the replicas, measured on an idle Ray 2.60 head: ~0.3 CPU and ~0.9 GiB.
RAY_OVERHEAD_CPUS = 0.5
RAY_OVERHEAD_MEMORY_GIB = 1.0
# Pinned rather than Ray's default (30 % of memory): the task's memory budget stays what is computed here.
OBJECT_STORE_GIB = 0.5
SERVE_CONFIG_ENV = "SERVE_CONFIG"
SERVE_CONFIG_FILE = "/tmp/serve-config.yaml"  # noqa: S108 - inside the container, written at start
_EPS = 1e-4
GIB = 1024**3


@dataclass(frozen=True)
class ReplicaSize:
    """One replica of one deployment: what it reserves, and how its memory was decided."""

    deployment: str
    cpus: float
    memory_gib: float
    gpus: float
    memory_from: str | None  # None when memory_gib is stated; else the worker group its memory follows


@dataclass(frozen=True)
class AppSize:
    """What one task or instance of an app must hold: a replica of each deployment plus Ray itself."""

    app: str
    replicas: tuple[ReplicaSize, ...]

    @property
    def replica_cpus(self) -> float:
        """CPUs the replicas reserve."""
        return sum(r.cpus for r in self.replicas)

    @property
    def replica_memory_gib(self) -> float:
        """Memory the replicas reserve, in GiB."""
        return sum(r.memory_gib for r in self.replicas)

    @property
    def gpus(self) -> float:
        """GPUs the replicas reserve, fractions included."""
        return sum(r.gpus for r in self.replicas)

    @property
    def whole_gpus(self) -> int:
        """GPUs a task must hold: the platforms hand out whole GPUs only."""
        return math.ceil(self.gpus - _EPS)

    @property
    def cpus(self) -> float:
        """CPUs the task needs: replicas plus Ray's processes."""
        return self.replica_cpus + RAY_OVERHEAD_CPUS

    @property
    def memory_gib(self) -> float:
        """Memory the task needs, in GiB: replicas, Ray's processes and the object store."""
        return self.replica_memory_gib + RAY_OVERHEAD_MEMORY_GIB + OBJECT_STORE_GIB

    def explain(self) -> str:
        """How the size was added up, for the parity report."""
        parts = []
        for r in self.replicas:
            memory = f"{r.memory_gib:g} GiB" + (f" (memory_gib unset: {r.memory_from})" if r.memory_from else "")
            gpu = f", {r.gpus:g} GPU" if r.gpus else ""
            parts.append(f"{r.deployment} {r.cpus:g} CPU / {memory}{gpu}")
        return (
            f"one replica each of {'; '.join(parts)}; plus Ray {RAY_OVERHEAD_CPUS:g} CPU / "
            f"{RAY_OVERHEAD_MEMORY_GIB + OBJECT_STORE_GIB:g} GiB (head processes and a {OBJECT_STORE_GIB:g} GiB object"
            f" store) = {self.cpus:g} CPU / {self.memory_gib:g} GiB"
        )


def worker_group_for(spec: Spec, deployment: Deployment) -> WorkerGroup:
    """The worker group a replica of `deployment` would land on under KubeRay: a GPU group for GPU replicas,
    else the first CPU group (else the first group)."""
    wants_gpu = deployment.ray_actor_options.num_gpus > 0
    matching = [g for g in spec.worker_groups if (g.num_gpus > 0) == wants_gpu]
    return (matching or list(spec.worker_groups))[0]


def replica_size(spec: Spec, deployment: Deployment) -> ReplicaSize:
    """A replica's reservation; unset memory follows the memory per CPU of the worker group it would run on."""
    options = deployment.ray_actor_options
    if options.memory_gib is not None:
        return ReplicaSize(deployment.name, options.num_cpus, options.memory_gib, options.num_gpus, None)
    group = worker_group_for(spec, deployment)
    per_cpu = group.memory_gib / group.num_cpus
    memory = options.num_cpus * per_cpu
    return ReplicaSize(
        deployment.name,
        options.num_cpus,
        memory,
        options.num_gpus,
        f"{options.num_cpus:g} CPU x {per_cpu:g} GiB per CPU of worker group {group.name}",
    )


def app_size(spec: Spec, app: App) -> AppSize:
    """The size of one task or instance of `app`."""
    return AppSize(app.name, tuple(replica_size(spec, d) for d in app.deployments))


def replica_range(deployment: Deployment) -> tuple[int, int]:
    """(fewest, most) replicas of one deployment."""
    if deployment.autoscaling_config is not None:
        return deployment.autoscaling_config.min_replicas, deployment.autoscaling_config.max_replicas
    assert deployment.num_replicas is not None
    return deployment.num_replicas, deployment.num_replicas


def task_count(app: App) -> tuple[int, int]:
    """(fewest, most) tasks of an app: each task holds one replica of every deployment, so the widest range wins."""
    ranges = [replica_range(d) for d in app.deployments]
    return max(low for low, _ in ranges), max(high for _, high in ranges)


def count_explanation(app: App) -> str:
    """How the app's task count was derived, for the parity report."""
    low, high = task_count(app)
    ranges = ", ".join(f"{d.name} {a}..{b}" for d in app.deployments for a, b in [replica_range(d)])
    return f"{low}..{high} (replicas per deployment: {ranges})"


def scaling_delays(app: App) -> tuple[float, float] | None:
    """(scale-out, scale-in) delays for the app's task count: the quickest upscale and the slowest downscale of
    its autoscaled deployments; None when nothing autoscales."""
    configs = [d.autoscaling_config for d in app.deployments if d.autoscaling_config is not None]
    if not configs:
        return None
    return min(c.upscale_delay_s for c in configs), max(c.downscale_delay_s for c in configs)


def task_serve_config(plan: EnvPlan, app_plan: AppPlan) -> dict[str, Any]:
    """The Serve config one task runs: the app with one fixed replica per deployment (the platform scales tasks)."""
    deployments = []
    for deployment in app_plan.serve_application["deployments"]:
        one = {k: v for k, v in deployment.items() if k not in ("autoscaling_config", "num_replicas")}
        deployments.append({**one, "num_replicas": 1})
    single = replace(app_plan, serve_application={**app_plan.serve_application, "deployments": deployments})
    return plan.serve_config(apps=(single,), cluster=False)


def serve_config_text(plan: EnvPlan, app_plan: AppPlan) -> str:
    """The task's Serve config as YAML, carried in the SERVE_CONFIG environment variable."""
    return yaml.safe_dump(task_serve_config(plan, app_plan), sort_keys=True, default_flow_style=False)


THROUGHPUT_PARITY = (
    "RAY_SERVE_THROUGHPUT_OPTIMIZED=1 and RAY_SERVE_ENABLE_HA_PROXY=1 in the container: HAProxy answers the serve"
    " port and forwards to the replica's own port inside the task, with RAY_SERVE_HAPROXY_NBTHREAD one thread per two"
    " of the container's CPUs"
)


WARM_WORKERS_PARITY = (
    "not rendered: a task deploys its one app once, when it starts, and the platform scales tasks, not replicas;"
    " nothing later would take a warm worker"
)


def slo_alerts_parity(follow_up: str, ttft_follow_up: str) -> dict[str, Honour]:
    """How a single-node target honours the SLOs the KubeRay target turns into alerts: the toolkit reads them, no
    alert is rendered yet; `follow_up` says what would carry them on this platform, `ttft_follow_up` what would carry
    the time to first token, which only the app itself measures. Information, not a warning: there is nothing for
    the environment to change."""
    how = (
        "read by load tests and benchmarks; production alerts not rendered for this target (follow-up:"
        f" {follow_up}; the KubeRay target renders a PrometheusRule)"
    )
    ttft = (
        "read by load tests (their TTFT gate); production alerts not rendered for this target: the platform sees"
        " requests, not tokens, and the app's serving_generation_ttft_ms histogram is on Ray's metrics port, which"
        f" nothing scrapes here (follow-up: {ttft_follow_up}); only an app that streams tokens may set it"
        " (ttft_slo_needs_streaming_app)"
    )
    return {
        "apps[].slo.p95_ms": not_deployed(how),
        "apps[].slo.error_rate": not_deployed(how),
        "apps[].slo.ttft_p95_ms": not_deployed(ttft),
    }


def container_env(plan: EnvPlan, app_plan: AppPlan, cpus: float) -> list[dict[str, str]]:
    """The plain environment of a container of `cpus` CPUs: the Serve config, then the Ray variables of a cluster
    serving its one app."""
    return [{"name": SERVE_CONFIG_ENV, "value": serve_config_text(plan, app_plan)}] + [
        {"name": var, "value": value} for var, value in sorted(plan.ray_env_of((app_plan,), cpus).items())
    ]


def start_script(size: AppSize, grace_period_s: int) -> str:
    """Shell script a task runs: write the Serve config to a file, then exec the entry point that starts a Ray head
    sized like the task, serves the config and, on SIGTERM, drains within `grace_period_s` (the platform's time
    between SIGTERM and SIGKILL) and exits."""
    entrypoint = [
        "python",
        "-m",
        "serve_apps.entrypoint",
        f"--grace-period-s={grace_period_s}",
        f"--num-cpus={math.ceil(size.replica_cpus - _EPS)}",
        f"--num-gpus={size.whole_gpus}",
        f"--memory={math.ceil(size.replica_memory_gib * GIB)}",
        f"--object-store-memory={int(OBJECT_STORE_GIB * GIB)}",
        SERVE_CONFIG_FILE,
    ]
    # exec: the entry point is the container's main process, the one the platform's SIGTERM reaches.
    write_config = f"printf '%s\\n' \"${SERVE_CONFIG_ENV}\" > {SERVE_CONFIG_FILE}"
    return f"{write_config} && exec {shlex.join(entrypoint)}"


def health_path(app: App) -> str:
    """The app's health endpoint: every serve app answers GET <route_prefix>/healthz."""
    return f"{app.route_prefix.rstrip('/')}/healthz"


def serve_port(plan: EnvPlan) -> int:
    """The port Serve's proxy listens on inside the task."""
    return int(plan.serve_config(apps=())["http_options"]["port"])


def health_url(plan: EnvPlan, app: App) -> str:
    """The health endpoint as seen from inside the task."""
    return f"http://127.0.0.1:{serve_port(plan)}{health_path(app)}"
