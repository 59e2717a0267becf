"""What rendered manifests ask for: Ray clusters, Serve replicas, ECS tasks and Cloud Run instances.

The diff and the cost estimate read *rendered* manifests, not the typed spec: the old side of a diff exists only as
rendered files (committed, or produced by an older renderer), and pricing both sides with one reader keeps a cost
delta honest. Objects are recognised by apiVersion and kind alone, so targets need not be imported here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import yaml

from render.manifests import group_kind

RAY_SERVICE = ("ray.io", "RayService")
ECS_TASK_DEFINITION = ("ecs.services.k8s.aws", "TaskDefinition")
ECS_SERVICE = ("ecs.services.k8s.aws", "Service")
SCALABLE_TARGET = ("applicationautoscaling.services.k8s.aws", "ScalableTarget")
CLOUD_RUN_SERVICE = ("run.cnrm.cloud.google.com", "RunService")

INSTANCE_TYPE_LABELS = ("node.kubernetes.io/instance-type", "beta.kubernetes.io/instance-type")
ACCELERATOR_LABELS = ("k8s.amazonaws.com/accelerator", "cloud.google.com/gke-accelerator")
GPU_RESOURCE = "nvidia.com/gpu"
# What the APIs assume when a field is left out: KubeRay's maxReplicas, Cloud Run's maxInstanceCount.
KUBERAY_MAX_REPLICAS = 2_147_483_647
CLOUD_RUN_MAX_INSTANCES = 100
MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_ECS_INSTANCE_TYPE = re.compile(r"attribute:ecs\.instance-type\s*(?:==|=~)\s*([A-Za-z0-9.\-]+)")
_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}
_DECIMAL = {"k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}


def is_applied(path: str) -> bool:
    """Whether Argo CD applies a file of rendered/: a manifest directly in an environment's directory (its
    Applications do not recurse, so native/ bodies and reports such as PARITY.md are not deployed)."""
    return path.count("/") == 1 and path.endswith(MANIFEST_SUFFIXES)


def load_manifest(text: str) -> dict[str, Any]:
    """One rendered manifest's text, parsed."""
    manifest = yaml.load(text, Loader=_LOADER)  # noqa: S506 - a safe loader
    return manifest if isinstance(manifest, dict) else {}


def applied_manifests(files: dict[str, str], directory: str) -> list[dict[str, Any]]:
    """The objects Argo CD applies from rendered/<directory>/, parsed."""
    return [
        load_manifest(text)
        for path, text in sorted(files.items())
        if path.startswith(f"{directory}/") and is_applied(path)
    ]


def cpu_count(quantity: Any) -> float:
    """A Kubernetes CPU quantity (`2`, `"500m"`) in CPUs."""
    text = str(quantity)
    return float(text[:-1]) / 1000 if text.endswith("m") else float(text)


def memory_gib(quantity: Any) -> float:
    """A Kubernetes memory quantity (`"16Gi"`, `"512Mi"`, `"1G"`, bytes) in GiB."""
    text = str(quantity)
    for suffix, factor in {**_BINARY, **_DECIMAL}.items():
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * factor / 2**30
    return float(text) / 2**30


@dataclass(frozen=True)
class PodGroup:
    """Identical Ray pods, one per node for workers: the head, or one worker group."""

    name: str
    node_type: str | None
    accelerator: str | None
    cpus: float
    memory_gib: float
    gpus: int
    replicas: int
    min_replicas: int
    max_replicas: int


@dataclass(frozen=True)
class RayCluster:
    """The Ray cluster a RayService asks for."""

    head: PodGroup
    workers: tuple[PodGroup, ...]


@dataclass(frozen=True)
class ServeReplicas:
    """One Serve deployment's replicas and what each reserves."""

    app: str
    deployment: str
    cpus: float
    gpus: float
    min_replicas: int
    max_replicas: int


def _pod_requests(pod_spec: dict[str, Any]) -> dict[str, Any]:
    """Summed resource requests (limits where no request is given) of a pod's containers."""
    totals: dict[str, float] = {"cpu": 0.0, "memory": 0.0, GPU_RESOURCE: 0.0}
    for container in pod_spec.get("containers", []):
        resources = container.get("resources", {})
        wanted = {**resources.get("limits", {}), **resources.get("requests", {})}
        totals["cpu"] += cpu_count(wanted.get("cpu", 0))
        totals["memory"] += memory_gib(wanted.get("memory", 0))
        totals[GPU_RESOURCE] += float(wanted.get(GPU_RESOURCE, 0))
    return totals


def _pod_group(name: str, template: dict[str, Any], replicas: int, min_replicas: int, max_replicas: int) -> PodGroup:
    pod_spec = template.get("spec", {})
    selector = pod_spec.get("nodeSelector", {})
    requests = _pod_requests(pod_spec)
    return PodGroup(
        name=name,
        node_type=next((selector[k] for k in INSTANCE_TYPE_LABELS if k in selector), None),
        accelerator=next((selector[k] for k in ACCELERATOR_LABELS if k in selector), None),
        cpus=requests["cpu"],
        memory_gib=requests["memory"],
        gpus=int(requests[GPU_RESOURCE]),
        replicas=replicas,
        min_replicas=min_replicas,
        max_replicas=max_replicas,
    )


def ray_cluster(rayservice: dict[str, Any]) -> RayCluster:
    """The head and worker groups of a RayService's rayClusterConfig."""
    config = rayservice["spec"]["rayClusterConfig"]
    head = _pod_group("head", config["headGroupSpec"]["template"], 1, 1, 1)
    workers = []
    for group in config.get("workerGroupSpecs", []):
        low = int(group.get("minReplicas", 0))
        workers.append(
            _pod_group(
                group["groupName"],
                group["template"],
                int(group.get("replicas", low)),
                low,
                int(group.get("maxReplicas", KUBERAY_MAX_REPLICAS)),
            )
        )
    return RayCluster(head=head, workers=tuple(workers))


def serve_config(rayservice: dict[str, Any]) -> dict[str, Any]:
    """The RayService's serveConfigV2, parsed."""
    parsed = yaml.safe_load(rayservice["spec"].get("serveConfigV2") or "") or {}
    return parsed if isinstance(parsed, dict) else {}


def serve_replicas(rayservice: dict[str, Any]) -> list[ServeReplicas]:
    """Every Serve deployment of a RayService with its replica range, Ray's defaults filled in."""
    found = []
    for app in serve_config(rayservice).get("applications", []):
        for deployment in app.get("deployments", []):
            options = deployment.get("ray_actor_options") or {}
            autoscaling = deployment.get("autoscaling_config")
            if autoscaling:
                low, high = int(autoscaling.get("min_replicas", 1)), int(autoscaling.get("max_replicas", 1))
            else:
                low = high = int(deployment.get("num_replicas", 1))
            found.append(
                ServeReplicas(
                    app=app["name"],
                    deployment=deployment["name"],
                    cpus=float(options.get("num_cpus", 1)),
                    gpus=float(options.get("num_gpus", 0)),
                    min_replicas=low,
                    max_replicas=high,
                )
            )
    return found


@dataclass(frozen=True)
class Task:
    """One ECS service's task, or one Cloud Run service's instance, and how many run."""

    kind: str
    name: str
    cpus: float
    memory_gib: float
    gpus: int
    min_count: int
    max_count: int
    launch: str
    instance_type: str | None


def _of_kind(manifests: list[dict[str, Any]], kind: tuple[str, str]) -> list[dict[str, Any]]:
    return [m for m in manifests if group_kind(m) == kind]


def ecs_tasks(manifests: list[dict[str, Any]]) -> list[Task]:
    """Each ACK ECS Service with its task size, launch type and task count range (from its ScalableTarget)."""
    definitions: dict[str, dict[str, Any]] = {}
    for definition in _of_kind(manifests, ECS_TASK_DEFINITION):
        definitions[definition["metadata"]["name"]] = definition
        definitions.setdefault(str(definition["spec"].get("family")), definition)
    bounds = {
        str(t["spec"].get("resourceID", "")).rsplit("/", 1)[-1]: (
            int(t["spec"]["minCapacity"]),
            int(t["spec"]["maxCapacity"]),
        )
        for t in _of_kind(manifests, SCALABLE_TARGET)
        if t["spec"].get("serviceNamespace") == "ecs"
    }
    tasks = []
    for service in _of_kind(manifests, ECS_SERVICE):
        spec = service["spec"]
        name = str(spec.get("name") or service["metadata"]["name"])
        reference = (spec.get("taskDefinitionRef") or {}).get("from", {}).get("name") or spec.get("taskDefinition", "")
        # A reference names the object, or (a native-style ARN or family:revision) the family.
        family = str(reference).split(":")[0].rsplit("/", 1)[-1]
        definition = definitions.get(str(reference)) or definitions.get(family) or {}
        task_spec = definition.get("spec", {})
        containers = task_spec.get("containerDefinitions", [])
        cpu_units = task_spec.get("cpu") or sum(int(c.get("cpu", 0)) for c in containers)
        memory_mib = task_spec.get("memory") or sum(
            int(c.get("memory") or c.get("memoryReservation") or 0) for c in containers
        )
        gpus = sum(
            int(r["value"]) for c in containers for r in c.get("resourceRequirements", []) if r.get("type") == "GPU"
        )
        strategy = " ".join(str(s.get("capacityProvider", "")) for s in spec.get("capacityProviderStrategy", []))
        compatible = task_spec.get("requiresCompatibilities", [])
        fargate = spec.get("launchType") == "FARGATE" or "FARGATE" in strategy or compatible == ["FARGATE"]
        constraints = [*task_spec.get("placementConstraints", []), *spec.get("placementConstraints", [])]
        instance_type = next(
            (m.group(1) for c in constraints if (m := _ECS_INSTANCE_TYPE.search(str(c.get("expression", ""))))), None
        )
        desired = int(spec.get("desiredCount", 1))
        low, high = bounds.get(name, (desired, desired))
        tasks.append(
            Task(
                kind="ecs",
                name=name,
                cpus=int(cpu_units) / 1024,
                memory_gib=int(memory_mib) / 1024,
                gpus=gpus,
                min_count=low,
                max_count=high,
                launch="FARGATE" if fargate else "EC2",
                instance_type=instance_type,
            )
        )
    return tasks


def cloud_run_instances(manifests: list[dict[str, Any]]) -> list[Task]:
    """Each Config Connector RunService with its instance size and instance count range."""
    tasks = []
    for service in _of_kind(manifests, CLOUD_RUN_SERVICE):
        template = service["spec"].get("template", {})
        # Cloud Run's defaults: 1 CPU and 512 MiB per container when no limit is given.
        limits = [c.get("resources", {}).get("limits", {}) for c in template.get("containers", [])]
        scaling = template.get("scaling", {})
        tasks.append(
            Task(
                kind="cloudrun",
                name=service["metadata"]["name"],
                cpus=sum(cpu_count(limit.get("cpu", 1)) for limit in limits),
                memory_gib=sum(memory_gib(limit.get("memory", "512Mi")) for limit in limits),
                gpus=sum(int(limit.get(GPU_RESOURCE, 0)) for limit in limits),
                min_count=int(scaling.get("minInstanceCount", 0)),
                max_count=int(scaling.get("maxInstanceCount", CLOUD_RUN_MAX_INSTANCES)),
                launch="CLOUD_RUN",
                instance_type=None,
            )
        )
    return tasks
