"""KubeRay target: one RayService per environment on an EKS cluster, plus what it needs around it."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

import yaml
from pydantic import Field, ValidationInfo, field_validator

from render.spec.base import K8sName, StrictModel
from render.spec.rules import rule_error

if TYPE_CHECKING:
    from render.plan import EnvPlan
    from render.spec.models import HeadGroup, SecretRef, WorkerGroup

PART_OF = "app.kubernetes.io/part-of"
MANAGED_BY = {"app.kubernetes.io/managed-by": "serving-toolkit"}
METRICS_PORT = 8080
SYNC_WAVE = "argocd.argoproj.io/sync-wave"


class ServiceAccountConfig(StrictModel):
    """The Kubernetes service account of the Ray pods, bound to an IAM role through IRSA."""

    name: Annotated[K8sName, Field(default="serving", description="Service account name.")]
    iam_role_arn: Annotated[
        str,
        Field(
            pattern=r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+$",
            description="IAM role the pods assume (IRSA); grants read on the model prefix and the secrets.",
        ),
    ]


class KubeRayTargetConfig(StrictModel):
    """Run the environment as a KubeRay RayService on a Kubernetes cluster."""

    secret_store_kind: ClassVar[str] = "aws_secrets_manager"  # noqa: S105 - a store name, not a secret

    kind: Annotated[Literal["kuberay"], Field(description="Target discriminator.")]
    cluster: Annotated[str, Field(description="Cluster name from clusters/clusters.yaml (kind eks or gke).")]
    namespace: Annotated[K8sName, Field(description="Namespace the RayService and its objects live in.")]
    rayservice_name: Annotated[
        K8sName,
        Field(
            default="serving",
            max_length=47,
            description="RayService name; KubeRay appends suffixes, so at most 47 characters.",
        ),
    ]
    service_account: Annotated[ServiceAccountConfig, Field(description="Pod identity for S3 and secrets.")]
    secret_store: Annotated[
        K8sName,
        Field(
            default="aws-secrets-manager",
            description="external-secrets ClusterSecretStore that reads AWS Secrets Manager.",
        ),
    ]

    @field_validator("cluster")
    @classmethod
    def cluster_is_known(cls, value: str, info: ValidationInfo) -> str:
        clusters = (info.context or {}).get("clusters")
        if clusters is None:
            return value
        if value not in clusters:
            raise rule_error(
                "cluster_is_known",
                field="",
                got=value,
                rule="the cluster is not listed in clusters/clusters.yaml",
                hint=f"use one of: {', '.join(sorted(clusters)) or '(none listed)'}",
            )
        if clusters[value].kind not in ("eks", "gke"):
            raise rule_error(
                "cluster_runs_kubernetes",
                field="",
                got=value,
                rule=f"a kuberay target needs a Kubernetes cluster, and {value!r} is of kind {clusters[value].kind}",
                hint="name an eks or gke cluster",
            )
        return value


def secret_object_name(env_var: str) -> str:
    """Kubernetes Secret name for an environment variable: DB_URL → db-url."""
    return re.sub(r"_+", "-", env_var.lower()).strip("-")


def _quantity_gib(gib: float) -> str:
    mib = round(gib * 1024)
    return f"{mib // 1024}Gi" if mib % 1024 == 0 else f"{mib}Mi"


def _cpu(num: float) -> str:
    return str(int(num)) if float(num).is_integer() else f"{round(num * 1000)}m"


def _metadata(plan: EnvPlan, name: str, wave: int, **extra: Any) -> dict[str, Any]:
    target = plan.spec.env.target
    return {
        "name": name,
        "namespace": target.namespace,
        "labels": {PART_OF: target.rayservice_name, **MANAGED_BY, "serving.toolkit/env": plan.name},
        "annotations": {SYNC_WAVE: str(wave)},
        **extra,
    }


def _secret_env(plan: EnvPlan) -> list[dict[str, Any]]:
    return [
        {"name": var, "valueFrom": {"secretKeyRef": {"name": secret_object_name(var), "key": "value"}}}
        for var in plan.secrets
    ]


def _container(
    plan: EnvPlan, name: str, cpus: float, memory_gib: float, gpus: int, ports: list[dict[str, Any]]
) -> dict[str, Any]:
    limits = {"cpu": _cpu(cpus), "memory": _quantity_gib(memory_gib)}
    if gpus:
        limits["nvidia.com/gpu"] = str(gpus)
    container: dict[str, Any] = {
        "name": name,
        "image": plan.spec.env.image,
        "resources": {"limits": limits, "requests": dict(limits)},
        "ports": ports,
    }
    env = _secret_env(plan)
    if env:
        container["env"] = env
    return container


def _head_group(plan: EnvPlan, head: HeadGroup) -> dict[str, Any]:
    target = plan.spec.env.target
    ports = [
        {"containerPort": 6379, "name": "gcs-server"},
        {"containerPort": 8265, "name": "dashboard"},
        {"containerPort": 10001, "name": "client"},
        {"containerPort": 8000, "name": "serve"},
        {"containerPort": METRICS_PORT, "name": "metrics"},
    ]
    pod_spec: dict[str, Any] = {
        "serviceAccountName": target.service_account.name,
        "containers": [_container(plan, "ray-head", head.num_cpus, head.memory_gib, 0, ports)],
    }
    if head.node_selector:
        pod_spec["nodeSelector"] = dict(head.node_selector)
    return {
        # User work never lands on the head: it keeps GCS and the Serve controller responsive.
        "rayStartParams": {
            "num-cpus": "0",
            # Reachable inside the pod network only: the head Service is ClusterIP and nothing exposes it further.
            "dashboard-host": "0.0.0.0",  # noqa: S104
            "metrics-export-port": str(METRICS_PORT),
        },
        "serviceType": "ClusterIP",
        "template": {"metadata": {"labels": {PART_OF: target.rayservice_name}}, "spec": pod_spec},
    }


def _worker_group(plan: EnvPlan, group: WorkerGroup) -> dict[str, Any]:
    target = plan.spec.env.target
    ports = [{"containerPort": METRICS_PORT, "name": "metrics"}]
    node_selector = {"node.kubernetes.io/instance-type": group.node_type}
    tolerations = [t.model_dump(exclude_none=True) for t in group.tolerations]
    if group.accelerator is not None:
        node_selector["k8s.amazonaws.com/accelerator"] = group.accelerator
        if not any(t["key"] == "nvidia.com/gpu" for t in tolerations):
            tolerations.append({"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"})
    node_selector.update(group.node_selector)
    pod_spec: dict[str, Any] = {
        "serviceAccountName": target.service_account.name,
        "containers": [_container(plan, "ray-worker", group.num_cpus, group.memory_gib, group.num_gpus, ports)],
        "nodeSelector": node_selector,
    }
    if tolerations:
        pod_spec["tolerations"] = tolerations
    return {
        "groupName": group.name,
        "replicas": group.min_replicas,
        "minReplicas": group.min_replicas,
        "maxReplicas": group.max_replicas,
        "rayStartParams": {"metrics-export-port": str(METRICS_PORT)},
        "template": {"metadata": {"labels": {PART_OF: target.rayservice_name}}, "spec": pod_spec},
    }


def serve_config_v2(plan: EnvPlan) -> str:
    """The RayService's serveConfigV2: a YAML string dumped from the plan's Serve config, never pasted text."""
    return yaml.dump(plan.serve_config(), Dumper=yaml.CSafeDumper, sort_keys=True, default_flow_style=False)


def rayservice(plan: EnvPlan) -> dict[str, Any]:
    """The RayService holding every app of the environment."""
    spec = plan.spec
    cluster_config: dict[str, Any] = {
        "rayVersion": spec.env.ray_version,
        "enableInTreeAutoscaling": plan.autoscaling,
        "authOptions": {"mode": "token"},
        "headGroupSpec": _head_group(plan, spec.head_group),
        "workerGroupSpecs": [_worker_group(plan, g) for g in spec.worker_groups],
    }
    if plan.autoscaling:
        cluster_config["autoscalerOptions"] = {"upscalingMode": "Default", "idleTimeoutSeconds": 60}
    return {
        "apiVersion": "ray.io/v1",
        "kind": "RayService",
        "metadata": _metadata(plan, spec.env.target.rayservice_name, wave=1),
        "spec": {
            "upgradeStrategy": {"type": "NewCluster"},
            "serveConfigV2": serve_config_v2(plan),
            "rayClusterConfig": cluster_config,
        },
    }


def service_account(plan: EnvPlan) -> dict[str, Any]:
    """The pods' ServiceAccount with the IRSA role annotation."""
    account = plan.spec.env.target.service_account
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": _metadata(
            plan, account.name, wave=0, annotations={SYNC_WAVE: "0", "eks.amazonaws.com/role-arn": account.iam_role_arn}
        ),
    }


def external_secret(plan: EnvPlan, env_var: str, ref: SecretRef) -> dict[str, Any]:
    """An ExternalSecret that copies one AWS Secrets Manager secret into a Kubernetes Secret."""
    remote: dict[str, Any] = {"key": ref.aws_secrets_manager}
    if ref.key is not None:
        remote["property"] = ref.key
    name = secret_object_name(env_var)
    return {
        "apiVersion": "external-secrets.io/v1",
        "kind": "ExternalSecret",
        "metadata": _metadata(plan, name, wave=0),
        "spec": {
            "refreshInterval": "1h",
            "secretStoreRef": {"kind": "ClusterSecretStore", "name": plan.spec.env.target.secret_store},
            "target": {"name": name, "creationPolicy": "Owner"},
            "data": [{"secretKey": "value", "remoteRef": remote}],
        },
    }


def pod_monitor(plan: EnvPlan) -> dict[str, Any]:
    """A Prometheus PodMonitor scraping Ray's and Serve's metrics from every Ray pod."""
    name = plan.spec.env.target.rayservice_name
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PodMonitor",
        "metadata": _metadata(plan, f"{name}-ray", wave=2),
        "spec": {
            "selector": {"matchLabels": {PART_OF: name}},
            "podMetricsEndpoints": [{"port": "metrics", "interval": "15s"}],
        },
    }


def build(plan: EnvPlan) -> list[dict[str, Any]]:
    """All KubeRay-target manifests of one environment."""
    manifests = [service_account(plan), rayservice(plan), pod_monitor(plan)]
    manifests += [external_secret(plan, var, ref) for var, ref in plan.secrets.items()]
    return manifests
