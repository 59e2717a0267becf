"""What a change to one rendered object does to what runs: its impact label, and the details a reviewer needs.

Labels, with the exact rule behind each (first match wins):
- `Argo CD wiring`: an argoproj.io object, argocd-cm, or a change of `argocd.argoproj.io/*` annotations only.
- `new RayCluster`: a RayService is created, or its rayClusterConfig changes in anything KubeRay hashes, i.e.
  anything but the workers' replicas/minReplicas/maxReplicas, and not just worker groups appended at the end
  (KubeRay's `isClusterSpecHashEqual`). KubeRay starts a second RayCluster and deletes the old one once the new
  one serves: the details state the extra capacity for that time, from the new config (head pod, workers at
  replicas/minReplicas).
- `RayCluster updated in place`: only worker groups appended (and worker counts changed): KubeRay adds them.
- `in-place Serve update`: otherwise, serveConfigV2 changed in a way the running Serve applies. Each field says
  whether Ray reconfigures replicas in place or restarts them (Ray's own update types of DeploymentConfig; a
  changed import_path, args or runtime_env redeploys the app's replicas).
- `deferred until the next new RayCluster`: the only changes are ones the running cluster ignores: worker
  replicas/minReplicas/maxReplicas (KubeRay does not copy them to a running RayCluster: kuberay#2331, #4568) and
  Serve's http_options/proxy_location/grpc_options/controller_options (a running Serve keeps the ones it started
  with). They take effect when something else starts a new RayCluster.
- `new ECS task definition revision (rolling)`: an ACK TaskDefinition created or changed, or a Service pointed at
  another one: ECS registers a revision and replaces the tasks in a rolling deployment.
- `ECS rolling deployment`: other Service settings that ECS applies by replacing tasks (network, load balancers,
  placement, launch type, ...); desiredCount and deploymentConfiguration alone are an `in-place update`.
- `new Cloud Run revision`: a RunService created, or its spec.template changed.
- `no effect`: only metadata.labels / metadata.annotations changed, and none that anything reads at run time:
  not `argocd.argoproj.io/*` (Argo CD wiring), not `eks.amazonaws.com/role-arn` (IRSA), not the labels of a
  monitoring.coreos.com object (Prometheus selects those by label).
- `not deployed`: a file of rendered/ that Argo CD does not apply (see `render.review.resources.is_applied`).
- `in-place update`: any other change; `created` and `deleted` for other objects that appear or go.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from typing import Any

from ray.serve._private.config import DeploymentConfig

from render.errors import SpecError
from render.manifests import group_kind
from render.review.cost import Pricing, head_node
from render.review.resources import (
    CLOUD_RUN_SERVICE,
    ECS_SERVICE,
    ECS_TASK_DEFINITION,
    RAY_SERVICE,
    PodGroup,
    ray_cluster,
    serve_config,
)


@dataclass(frozen=True)
class Label:
    """An impact label and what it means, for the report's legend."""

    name: str
    meaning: str


NEW_RAYCLUSTER = Label(
    "new RayCluster",
    "KubeRay starts a second RayCluster from the new config, moves traffic once it serves, then deletes the old one;"
    " both run (and are paid for) meanwhile",
)
RAYCLUSTER_UPDATED = Label(
    "RayCluster updated in place", "worker groups appended at the end: KubeRay adds them to the running RayCluster"
)
IN_PLACE_SERVE = Label(
    "in-place Serve update",
    "the RayCluster stays; the running Serve applies the new config (each field says whether replicas are"
    " reconfigured in place or restarted, rolling)",
)
DEFERRED = Label(
    "deferred until the next new RayCluster",
    "the running cluster ignores it: KubeRay does not copy worker replicas/minReplicas/maxReplicas to a running"
    " RayCluster (kuberay#2331, #4568) and a running Serve keeps its http_options/proxy_location; it takes effect"
    " when another change starts a new RayCluster",
)
ECS_REVISION = Label(
    "new ECS task definition revision (rolling)",
    "ECS registers a new task definition revision and the service replaces its tasks in a rolling deployment",
)
ECS_ROLLING = Label("ECS rolling deployment", "ECS applies the service change by replacing its tasks, rolling")
CLOUD_RUN_REVISION = Label(
    "new Cloud Run revision", "Cloud Run creates a revision from spec.template and moves traffic to it"
)
ARGOCD = Label("Argo CD wiring", "how Argo CD syncs and checks the environments; no workload changes")
IN_PLACE = Label("in-place update", "the object is updated in place; nothing restarts")
CREATED = Label("created", "a new object")
DELETED = Label("deleted", "Argo CD prunes the object")
NOT_DEPLOYED = Label(
    "not deployed",
    "a file Argo CD does not apply (a report such as PARITY.md, or native/ API bodies for your own pipeline)",
)
NO_EFFECT = Label("no effect", "only labels or annotations that nothing reads at run time")

RUNTIME_ANNOTATIONS = ("eks.amazonaws.com/role-arn",)
LABEL_SELECTED_GROUPS = ("monitoring.coreos.com",)
ARGOCD_ANNOTATION_PREFIX = "argocd.argoproj.io/"
WORKER_COUNT_KEYS = ("replicas", "minReplicas", "maxReplicas")
SERVE_START_OPTIONS = ("http_options", "proxy_location", "grpc_options", "controller_options")
APP_CODE_KEYS = ("import_path", "args", "runtime_env")
ECS_SERVICE_IN_PLACE_KEYS = ("desiredCount", "deploymentConfiguration", "healthCheckGracePeriodSeconds", "tags")
ECS_SERVICE_REVISION_KEYS = ("taskDefinition", "taskDefinitionRef")

IN_PLACE_EFFECT = "in place"
RESTART_EFFECT = "replicas restart (rolling)"
REDEPLOY_EFFECT = "app redeployed: its replicas restart (rolling)"
IGNORED_EFFECT = "ignored by the running Serve until a new RayCluster"
# Ray's DeploymentConfig tags each option with how a change is applied; only HeavyWeight restarts replicas.
# Options outside DeploymentConfig (ray_actor_options, placement groups, ...) always restart them.
_RECONFIGURED = {
    name
    for name, info in DeploymentConfig.model_fields.items()
    if isinstance(info.json_schema_extra, dict)
    and info.json_schema_extra.get("update_type") not in (None, "HeavyWeight")
}

Path = tuple[str, ...]


@dataclass(frozen=True)
class Impact:
    """The label of one object's change and the lines that explain it."""

    label: Label
    details: tuple[str, ...] = ()


@dataclass(frozen=True)
class ServeChange:
    """One field of serveConfigV2 that differs: `zero-shot / Classifier / autoscaling_config.max_replicas`."""

    where: str
    old: str
    new: str
    effect: str

    def __str__(self) -> str:
        return f"`{self.where}`: {self.old} → {self.new} ({self.effect})"


def changed_paths(old: Any, new: Any, path: Path = ()) -> list[Path]:
    """Key paths whose values differ between two documents; lists compare whole."""
    if isinstance(old, dict) and isinstance(new, dict):
        found: list[Path] = []
        for key in sorted(set(old) | set(new), key=str):
            found += changed_paths(old.get(key), new.get(key), (*path, str(key)))
        return found
    return [] if old == new else [path]


def _show(value: Any) -> str:
    if value is None:
        return "(unset)"
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def _leaves(value: Any, path: str = "") -> dict[str, Any]:
    if isinstance(value, dict) and value:
        found: dict[str, Any] = {}
        for key, child in value.items():
            found.update(_leaves(child, f"{path}.{key}" if path else str(key)))
        return found
    return {path: value}


def _field_changes(where: str, old: dict[str, Any], new: dict[str, Any], effect_of: Any) -> list[ServeChange]:
    """Leaf-by-leaf differences of two mappings; `effect_of(top-level key)` names each one's effect."""
    old_leaves, new_leaves = _leaves(old), _leaves(new)
    return [
        ServeChange(
            f"{where}{key}", _show(old_leaves.get(key)), _show(new_leaves.get(key)), effect_of(key.split(".")[0])
        )
        for key in sorted(set(old_leaves) | set(new_leaves))
        if old_leaves.get(key) != new_leaves.get(key)
    ]


def _by_name(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {str(item.get("name")): item for item in items}


def serve_changes(old: dict[str, Any], new: dict[str, Any]) -> list[ServeChange]:
    """serveConfigV2 compared per app, per deployment, per field, each change with its effect."""

    def top_effect(key: str) -> str:
        return IGNORED_EFFECT if key in SERVE_START_OPTIONS else IN_PLACE_EFFECT

    def app_effect(key: str) -> str:
        return REDEPLOY_EFFECT if key in APP_CODE_KEYS else IN_PLACE_EFFECT

    def deployment_effect(key: str) -> str:
        return IN_PLACE_EFFECT if key in _RECONFIGURED else RESTART_EFFECT

    changes = _field_changes(
        "",
        {k: v for k, v in old.items() if k != "applications"},
        {k: v for k, v in new.items() if k != "applications"},
        top_effect,
    )
    old_apps, new_apps = _by_name(old.get("applications", [])), _by_name(new.get("applications", []))
    for name in sorted(set(old_apps) | set(new_apps)):
        if name not in new_apps:
            changes.append(ServeChange(name, "app", "(removed)", "Serve deletes the app"))
            continue
        if name not in old_apps:
            changes.append(ServeChange(name, "(none)", "app", "Serve deploys the app"))
            continue
        old_app, new_app = old_apps[name], new_apps[name]
        changes += _field_changes(
            f"{name} / ",
            {k: v for k, v in old_app.items() if k != "deployments"},
            {k: v for k, v in new_app.items() if k != "deployments"},
            app_effect,
        )
        old_deps, new_deps = _by_name(old_app.get("deployments", [])), _by_name(new_app.get("deployments", []))
        for dep in sorted(set(old_deps) | set(new_deps)):
            where = f"{name} / {dep} / "
            if dep not in new_deps or dep not in old_deps:
                gone = dep not in new_deps
                changes.append(
                    ServeChange(
                        f"{name} / {dep}",
                        "deployment" if gone else "(none)",
                        "(removed)" if gone else "deployment",
                        RESTART_EFFECT,
                    )
                )
                continue
            changes += _field_changes(where, old_deps[dep], new_deps[dep], deployment_effect)
    return changes


def _hash_view(cluster_config: dict[str, Any], groups: int | None = None) -> dict[str, Any]:
    """rayClusterConfig as KubeRay hashes it: without the workers' replica counts (optionally only the first groups)."""
    view = copy.deepcopy(cluster_config)
    workers = view.get("workerGroupSpecs", [])[:groups]
    for group in workers:
        for key in WORKER_COUNT_KEYS:
            group.pop(key, None)
        group.get("scaleStrategy", {}).pop("workersToDelete", None)
    view["workerGroupSpecs"] = workers
    return view


def cluster_change(old: dict[str, Any], new: dict[str, Any]) -> str:
    """How KubeRay treats a rayClusterConfig change: `same`, `counts`, `appended` or `new`."""
    if old == new:
        return "same"
    if _hash_view(old) == _hash_view(new):
        return "counts"
    old_groups = len(old.get("workerGroupSpecs", []))
    if len(new.get("workerGroupSpecs", [])) > old_groups and _hash_view(new, old_groups) == _hash_view(old):
        return "appended"
    return "new"


def _count_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    old_groups = _by_group(old.get("workerGroupSpecs", []))
    lines = []
    for name, group in _by_group(new.get("workerGroupSpecs", [])).items():
        before = old_groups.get(name, {})
        moved = [
            f"{key} {before.get(key)} → {group.get(key)}"
            for key in WORKER_COUNT_KEYS
            if before and before.get(key) != group.get(key)
        ]
        if moved:
            lines.append(f"worker group `{name}`: {', '.join(moved)}")
    return lines


def _by_group(groups: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {str(g.get("groupName")): g for g in groups}


def _pod(group: PodGroup) -> str:
    gpus = f", {group.gpus} × {group.accelerator or 'GPU'}" if group.gpus else ""
    return f"{group.cpus:g} CPU, {group.memory_gib:g} GiB{gpus}"


def extra_capacity(rayservice: dict[str, Any], pricing: Pricing | None) -> str:
    """What a second RayCluster from this RayService needs while both run: head pod plus workers at replicas,
    priced at the environment's region when `pricing` is given."""
    cluster = ray_cluster(rayservice)
    lines = [f"head pod: {_pod(cluster.head)}"]
    cpus, memory, nodes = cluster.head.cpus, cluster.head.memory_gib, 0
    gpus: dict[str, int] = {}
    hourly, unpriced = 0.0, []
    if pricing is not None:
        try:
            hourly += head_node(cluster.head, pricing, "the head pod").usd_per_hour
        except SpecError:
            unpriced.append("head pod")
    for group in cluster.workers:
        if not group.replicas:
            continue
        nodes += group.replicas
        cpus += group.replicas * group.cpus
        memory += group.replicas * group.memory_gib
        if group.gpus:
            kind = group.accelerator or "GPU"
            gpus[kind] = gpus.get(kind, 0) + group.replicas * group.gpus
        lines.append(
            f"worker group `{group.name}`: {group.replicas} × {group.node_type or 'node'} ({_pod(group)} each)"
        )
        if pricing is not None:
            try:
                hourly += group.replicas * pricing.node(group.node_type, group.name).usd_per_hour
            except SpecError:
                unpriced.append(str(group.node_type))
    gpu_text = ", ".join(f"{count} × {kind}" for kind, count in sorted(gpus.items())) or "none"
    total = f"total: head pod + {nodes} worker node(s), {cpus:g} CPU, {memory:g} GiB, GPUs: {gpu_text}"
    if pricing is not None:
        total += f"; about ${hourly:,.2f}/h at {pricing.region} list prices" + (
            f" (no price for {', '.join(unpriced)})" if unpriced else ""
        )
    lines.append(total)
    heading = (
        "extra capacity while both RayClusters run (at least: the new cluster adds workers until every Serve"
        " replica is placed):"
    )
    return "\n".join([heading, *(f"  - {line}" for line in lines)])


def _is_argocd(manifest: dict[str, Any]) -> bool:
    group, kind = group_kind(manifest)
    return group == "argoproj.io" or (kind == "ConfigMap" and manifest.get("metadata", {}).get("name") == "argocd-cm")


def _metadata_impact(manifest: dict[str, Any], paths: list[Path]) -> Impact:
    """The impact of a change confined to metadata.labels / metadata.annotations."""
    group, _ = group_kind(manifest)
    keys = [(p[1], p[2] if len(p) > 2 else "") for p in paths]
    runtime = [
        k
        for section, k in keys
        if (section == "annotations" and k in RUNTIME_ANNOTATIONS)
        or (section == "labels" and group in LABEL_SELECTED_GROUPS)
    ]
    if runtime:
        return Impact(IN_PLACE, tuple(f"`{k}` is read at run time" for k in runtime))
    if any(section == "annotations" and k.startswith(ARGOCD_ANNOTATION_PREFIX) for section, k in keys):
        return Impact(ARGOCD)
    return Impact(NO_EFFECT, tuple(f"metadata.{section}.{k}" for section, k in keys))


def _rayservice_impact(old: dict[str, Any], new: dict[str, Any], pricing: Pricing | None) -> Impact | None:
    changes = serve_changes(serve_config(old), serve_config(new))
    lines = [str(c) for c in changes]
    old_cluster, new_cluster = old["spec"].get("rayClusterConfig", {}), new["spec"].get("rayClusterConfig", {})
    how = cluster_change(old_cluster, new_cluster)
    if how == "new":
        return Impact(NEW_RAYCLUSTER, (extra_capacity(new, pricing), *lines))
    counts = [f"{line} (not applied to the running RayCluster)" for line in _count_changes(old_cluster, new_cluster)]
    if counts:
        counts.append(
            "to apply the counts now, also scale the live RayCluster (`kubectl ray scale cluster`), or ship them with"
            " a change that starts a new RayCluster"
        )
    if how == "appended":
        return Impact(RAYCLUSTER_UPDATED, tuple(lines + counts))
    if any(c.effect != IGNORED_EFFECT for c in changes):
        return Impact(IN_PLACE_SERVE, tuple(lines + counts))
    if changes or counts:
        return Impact(DEFERRED, tuple(lines + counts))
    return None


def classify(old: dict[str, Any] | None, new: dict[str, Any] | None, pricing: Pricing | None) -> Impact:
    """The impact of one object going from `old` to `new` (None: absent on that side), with the extra capacity of
    a new RayCluster priced at `pricing` when given."""
    manifest = new if new is not None else old
    assert manifest is not None
    kind = group_kind(manifest)
    if _is_argocd(manifest):
        return Impact(ARGOCD)
    if new is None:
        return Impact(
            DELETED, ("Serve stops: the RayService and its RayCluster are deleted",) if kind == RAY_SERVICE else ()
        )
    if old is None:
        if kind == RAY_SERVICE:
            return Impact(NEW_RAYCLUSTER, (extra_capacity(new, pricing),))
        return Impact({ECS_TASK_DEFINITION: ECS_REVISION, CLOUD_RUN_SERVICE: CLOUD_RUN_REVISION}.get(kind, CREATED))
    paths = changed_paths(old, new)
    if all(p[:2] in (("metadata", "labels"), ("metadata", "annotations")) for p in paths):
        return _metadata_impact(new, paths)
    spec_paths = [p[1:] for p in paths if p[:1] == ("spec",)]
    if kind == RAY_SERVICE:
        impact = _rayservice_impact(old, new, pricing)
        if impact is not None:
            return impact
    if kind == ECS_TASK_DEFINITION:
        return Impact(ECS_REVISION)
    if kind == ECS_SERVICE:
        if any(p[0] in ECS_SERVICE_REVISION_KEYS for p in spec_paths):
            return Impact(ECS_REVISION)
        if any(p[0] not in ECS_SERVICE_IN_PLACE_KEYS for p in spec_paths):
            return Impact(ECS_ROLLING, tuple(sorted({f"spec.{p[0]}" for p in spec_paths})))
    if kind == CLOUD_RUN_SERVICE and any(p[0] == "template" for p in spec_paths):
        return Impact(CLOUD_RUN_REVISION)
    return Impact(IN_PLACE, tuple(".".join(p) for p in paths))
