"""KubeRay target: one RayService per environment on an EKS cluster, plus what it needs around it."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

import yaml
from pydantic import Field, PrivateAttr, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from render import alerts, dashboard
from render.spec.base import K8sName, StrictModel
from render.spec.nodes import NodeSettings, NodeType, accelerator_selector
from render.spec.rules import rule_error
from render.spec.secrets import SecretRef
from render.targets import aws_iam, streaming
from render.targets.base import Honour, TargetConfigBase, TargetOutput, exact, refused, secret_parity, target_of
from render.targets.node_fit import node_errors

if TYPE_CHECKING:
    from collections.abc import Iterator

    from render.plan import EnvPlan
    from render.spec.models import HeadGroup, Spec, WorkerGroup

PART_OF = "app.kubernetes.io/part-of"
MANAGED_BY = {"app.kubernetes.io/managed-by": "serving-toolkit"}
METRICS_PORT = 8080
INSTANCE_TYPE = "node.kubernetes.io/instance-type"
SYNC_WAVE = "argocd.argoproj.io/sync-wave"


class ServiceAccountConfig(StrictModel):
    """The Kubernetes service account of the Ray worker pods (where replicas load models), bound to an IAM role
    through IRSA."""

    name: Annotated[K8sName, Field(default="serving", description="Service account name of the worker pods.")]
    iam_role_arn: Annotated[
        str,
        Field(
            pattern=aws_iam.ROLE_ARN_PATTERN,
            description="IAM role the worker pods assume (IRSA). On eks the toolkit renders it (ACK IAM): read on the"
            " model prefixes only, trusted by this service account alone.",
        ),
    ]


class GcsFaultTolerance(StrictModel):
    """KubeRay's GCS fault tolerance: the head keeps the cluster's state in an external Redis, so a new head takes
    over the running workers and apps instead of every node restarting with it."""

    redis_address: Annotated[
        str,
        Field(
            pattern=r"^(rediss?://)?[A-Za-z0-9.-]+:\d{1,5}$",
            description="host:port of the Redis (e.g. an ElastiCache primary endpoint); rediss:// for TLS.",
        ),
    ]
    redis_password: Annotated[
        SecretRef | None,
        Field(default=None, description="Secret holding the Redis password (AUTH token); a reference, never a value."),
    ]
    external_storage_namespace: Annotated[
        str | None,
        Field(
            default=None,
            pattern=r"^[A-Za-z0-9_-]{1,64}$",
            description="Key prefix in Redis; unset, KubeRay uses the RayCluster's UID, so each new cluster of an"
            " upgrade starts with its own state.",
        ),
    ]


class KubeRayTargetConfig(TargetConfigBase):
    """Run the environment as a KubeRay RayService on a Kubernetes cluster."""

    secret_store_kind: ClassVar[str] = "aws_secrets_manager"  # noqa: S105 - a store name, not a secret
    cluster_kinds: ClassVar[tuple[str, ...]] = ("eks", "gke")

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
    service_account: Annotated[
        ServiceAccountConfig, Field(description="Identity of the worker pods (replicas): S3 models through IRSA.")
    ]
    head_service_account: Annotated[
        K8sName,
        Field(
            default="serving-head",
            description="Service account of the head pod, with no AWS role (the head runs no replica). KubeRay binds"
            " its autoscaler Role (patch pods and RayClusters) to this account, so no worker shares it.",
        ),
    ]
    gcs_fault_tolerance: Annotated[
        GcsFaultTolerance | None,
        Field(
            default=None,
            description="External Redis for the head's state (rayClusterConfig.gcsFaultToleranceOptions); required"
            " in prod: without it, losing the head restarts every worker and every app.",
        ),
    ]
    secret_store: Annotated[
        K8sName,
        Field(
            default="aws-secrets-manager",
            description="external-secrets ClusterSecretStore that reads AWS Secrets Manager.",
        ),
    ]

    # The cluster's node settings and the node table, kept from the validation context for spec_errors().
    _nodes: NodeSettings | None = PrivateAttr(default=None)
    _node_types: dict[str, NodeType] = PrivateAttr(default_factory=dict)

    @field_validator("service_account")
    @classmethod
    def role_in_cluster_account(cls, value: ServiceAccountConfig, info: ValidationInfo) -> ServiceAccountConfig:
        aws_iam.check_role_account(value.iam_role_arn, info, "iam_role_arn")
        return value

    @model_validator(mode="after")
    def keep_node_facts(self, info: ValidationInfo) -> KubeRayTargetConfig:
        context = info.context or {}
        cluster = context.get("clusters", {}).get(self.cluster)
        if cluster is not None:
            self._nodes = cluster.nodes
            self._node_types = context.get("node_types", {})
        return self

    @model_validator(mode="after")
    def head_and_workers_have_their_own_accounts(self) -> KubeRayTargetConfig:
        # KubeRay binds its Role (patch pods, patch RayClusters) to the head pod's service account
        # (ray-project/kuberay ray-operator/controllers/ray/common/rbac.go BuildRoleBinding, subject from
        # utils.GetHeadGroupServiceAccountName): a worker sharing it could patch the cluster from any replica.
        if self.head_service_account == self.service_account.name:
            raise rule_error(
                "head_and_workers_have_their_own_accounts",
                field="head_service_account",
                got=self.head_service_account,
                rule="the head's service account carries KubeRay's RBAC and must not be the workers' one",
                hint="give service_account.name and head_service_account different names",
                related=("service_account.name",),
            )
        return self

    def spec_errors(self, spec: Spec) -> Iterator[PydanticCustomError]:
        """Replicas that fit a worker node; on eks, pods that fit their nodes' allocatable and select nodes by
        labels something sets; GCS fault tolerance in prod."""
        yield from replica_fit_errors(spec)
        yield from capacity_errors(spec)
        if self._nodes is not None:
            yield from node_errors(spec, self._nodes, self._node_types)
        password = None if self.gcs_fault_tolerance is None else self.gcs_fault_tolerance.redis_password
        if password is not None and password.aws_secrets_manager is None:
            yield rule_error(
                "secrets_match_target_store",
                field="env.target.gcs_fault_tolerance.redis_password",
                got=password.model_dump(exclude_none=True),
                rule="a kuberay target reads secrets from aws_secrets_manager",
                hint="reference the secret with aws_secrets_manager",
            )
        if spec.env.tier == "prod" and self.gcs_fault_tolerance is None:
            yield rule_error(
                "gcs_fault_tolerance_in_prod",
                field="env.target.gcs_fault_tolerance",
                got=None,
                rule="a prod RayService needs GCS fault tolerance: without it, losing the head pod restarts every"
                " worker and takes every app down with it",
                hint="set env.target.gcs_fault_tolerance.redis_address (an external Redis, e.g. ElastiCache) and"
                " redis_password",
                related=("env.tier",),
            )


def replica_fit_errors(spec: Spec) -> Iterator[PydanticCustomError]:
    """A replica no worker node can hold: Ray never places it, the deployment never leaves DEPLOYING and the
    RayService never becomes ready, whatever the autoscaler does.

    A worker's Ray resources are its container's limits: KubeRay starts Ray with `--num-cpus` and `--memory` taken
    from them when rayStartParams do not say otherwise (ray-project/kuberay ray-operator/controllers/ray/common/
    pod.go, generateRayStartCommand), and render sets those limits to the group's num_cpus and memory_gib with no
    such rayStartParams. A GPU replica fits only GPU groups (their GPUs are checked by gpu_packing_fits); a CPU
    replica may go to any group.
    """
    for i, app in enumerate(spec.apps):
        for j, deployment in enumerate(app.deployments):
            options = deployment.ray_actor_options
            groups = [g for g in spec.worker_groups if g.num_gpus or not options.num_gpus]
            memory = options.memory_gib or 0.0
            if not groups or any(g.num_cpus >= options.num_cpus and g.memory_gib >= memory for g in groups):
                continue  # no GPU group at all is gpu_needs_gpu_worker_group's to report
            short = "num_cpus" if all(g.num_cpus < options.num_cpus for g in groups) else "memory_gib"
            offered = "; ".join(f"{g.name}: {g.num_cpus:g} CPU / {g.memory_gib:g} GiB" for g in groups)
            wanted = f"{options.num_cpus:g} CPU" + (f" / {memory:g} GiB" if memory else "")
            yield rule_error(
                "replica_fits_a_worker_node",
                field=f"apps.{i}.deployments.{j}.ray_actor_options.{short}",
                got=getattr(options, short),
                rule=f"one replica of {deployment.name} needs {wanted} and no worker node"
                f"{' with a GPU' if options.num_gpus else ''} offers that ({offered}), so Ray would never place it",
                hint=f"lower ray_actor_options.{short}, or raise a worker group's {short} (its node_type must hold it)",
            )


def capacity_errors(spec: Spec) -> Iterator[PydanticCustomError]:
    """Minimum replicas that need more CPUs or memory than every worker group at its max_replicas offers: some of
    them never start, so their deployments never leave DEPLOYING and the RayService never becomes ready. Summed,
    not packed: a necessary condition, so that this never refuses a spec Ray could place (resources as
    replica_fit_errors says; the head runs no replicas, `num-cpus: "0"`)."""
    minimum = [(d, d.min_replicas) for a in spec.apps for d in a.deployments]
    # Whichever file last set a replica count or a group's size is the one to blame.
    related = tuple(
        f"apps.{i}.deployments.{j}.{'autoscaling_config.min_replicas' if d.autoscaling_config else 'num_replicas'}"
        for i, a in enumerate(spec.apps)
        for j, d in enumerate(a.deployments)
    ) + tuple(f"worker_groups.{k}.max_replicas" for k in range(len(spec.worker_groups)))
    for resource, unit, per_replica, per_node in (
        ("num_cpus", "CPU", lambda d: d.ray_actor_options.num_cpus, lambda g: g.num_cpus),
        ("memory_gib", "GiB", lambda d: d.ray_actor_options.memory_gib or 0.0, lambda g: g.memory_gib),
    ):
        needed = sum(count * per_replica(d) for d, count in minimum)
        offered = sum(g.max_replicas * per_node(g) for g in spec.worker_groups)
        if needed <= offered + 1e-9:
            continue
        groups = ", ".join(f"{g.name} {g.max_replicas} x {per_node(g):g}" for g in spec.worker_groups)
        yield rule_error(
            "min_replicas_fit_the_workers",
            field="worker_groups",
            got=f"{offered:g} {unit} at max_replicas ({groups})",
            rule=f"the deployments' minimum replicas need {needed:g} {unit} ({resource} x min_replicas or"
            " num_replicas), more than the workers can ever offer, so some never start and the RayService never"
            " becomes ready",
            hint=f"raise a worker group's max_replicas or {resource}, or"
            f" lower the replicas' {resource} or their min_replicas / num_replicas",
            related=related,
        )


def secret_object_name(env_var: str) -> str:
    """Kubernetes Secret name for an environment variable: DB_URL → db-url."""
    return re.sub(r"_+", "-", env_var.lower()).strip("-")


def _quantity_gib(gib: float) -> str:
    mib = round(gib * 1024)
    return f"{mib // 1024}Gi" if mib % 1024 == 0 else f"{mib}Mi"


def _cpu(num: float) -> str:
    return str(int(num)) if float(num).is_integer() else f"{round(num * 1000)}m"


def _metadata(plan: EnvPlan, name: str, wave: int, **extra: Any) -> dict[str, Any]:
    target = target_of(plan, KubeRayTargetConfig)
    return {
        "name": name,
        "namespace": target.namespace,
        "labels": {PART_OF: target.rayservice_name, **MANAGED_BY, "serving.toolkit/env": plan.name},
        "annotations": {SYNC_WAVE: str(wave)},
        **extra,
    }


def _env(plan: EnvPlan, cpus: float) -> list[dict[str, Any]]:
    # Head and workers alike: the Serve controller (head) and the replicas (workers) read Ray's Serve modes at start,
    # and a replica may run on either; HAProxy runs on each, sized to its container's CPUs.
    return [{"name": var, "value": value} for var, value in sorted(plan.ray_env(cpus).items())] + [
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
    env = _env(plan, cpus)
    if env:
        container["env"] = env
    return container


def _head_group(plan: EnvPlan, head: HeadGroup) -> dict[str, Any]:
    target = target_of(plan, KubeRayTargetConfig)
    ports = [
        {"containerPort": 6379, "name": "gcs-server"},
        {"containerPort": 8265, "name": "dashboard"},
        {"containerPort": 10001, "name": "client"},
        {"containerPort": 8000, "name": "serve"},
        {"containerPort": METRICS_PORT, "name": "metrics"},
    ]
    pod_spec: dict[str, Any] = {
        "serviceAccountName": target.head_service_account,
        "containers": [_container(plan, "ray-head", head.num_cpus, head.memory_gib, 0, ports)],
    }
    node_selector = {} if head.node_type is None else {INSTANCE_TYPE: head.node_type}
    node_selector.update(head.node_selector)
    if node_selector:
        pod_spec["nodeSelector"] = node_selector
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
    target = target_of(plan, KubeRayTargetConfig)
    ports = [{"containerPort": METRICS_PORT, "name": "metrics"}]
    node_selector = {INSTANCE_TYPE: group.node_type}
    tolerations = [t.model_dump(exclude_none=True) for t in group.tolerations]
    if group.accelerator is not None:
        # Only a label the provisioner sets: the instance type alone picks the GPU on managed node groups.
        if plan.cluster.nodes is not None:
            node_selector.update(accelerator_selector(plan.cluster.nodes, group.accelerator))
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
    fault_tolerance = target_of(plan, KubeRayTargetConfig).gcs_fault_tolerance
    if fault_tolerance is not None:
        cluster_config["gcsFaultToleranceOptions"] = _gcs_fault_tolerance(fault_tolerance)
    return {
        "apiVersion": "ray.io/v1",
        "kind": "RayService",
        "metadata": _metadata(plan, target_of(plan, KubeRayTargetConfig).rayservice_name, wave=1),
        "spec": {
            "upgradeStrategy": {"type": "NewCluster"},
            "serveConfigV2": serve_config_v2(plan),
            "rayClusterConfig": cluster_config,
        },
    }


# The Secret KubeRay reads the Redis password from (gcsFaultToleranceOptions.redisPassword.valueFrom).
REDIS_PASSWORD_SECRET_VAR = "RAY_GCS_REDIS_PASSWORD"  # noqa: S105 - a variable name, not a secret


def _gcs_fault_tolerance(options: GcsFaultTolerance) -> dict[str, Any]:
    # KubeRay sets RAY_REDIS_ADDRESS, RAY_external_storage_namespace and the password on the head, and a longer GCS
    # reconnect timeout on the workers (ray-project/kuberay ray-operator/controllers/ray/common/pod.go,
    # configureGCSFaultTolerance), so the workers wait for a new head instead of exiting with the old one.
    out: dict[str, Any] = {"redisAddress": options.redis_address}
    if options.redis_password is not None:
        name = secret_object_name(REDIS_PASSWORD_SECRET_VAR)
        out["redisPassword"] = {"valueFrom": {"secretKeyRef": {"name": name, "key": "value"}}}
    if options.external_storage_namespace is not None:
        out["externalStorageNamespace"] = options.external_storage_namespace
    return out


def service_accounts(plan: EnvPlan) -> list[dict[str, Any]]:
    """The workers' ServiceAccount with the IRSA role annotation, and the head's, with no AWS role."""
    target = target_of(plan, KubeRayTargetConfig)
    account = target.service_account
    irsa = {SYNC_WAVE: "0", "eks.amazonaws.com/role-arn": account.iam_role_arn}
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _metadata(plan, account.name, 0, annotations=irsa)},
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _metadata(plan, target.head_service_account, 0)},
    ]


def iam_role(plan: EnvPlan) -> list[dict[str, Any]]:
    """On EKS, the service account's IAM role and its model-read policy (render/targets/aws_iam.py)."""
    if plan.cluster.kind != "eks":
        return []
    target = target_of(plan, KubeRayTargetConfig)
    account = target.service_account
    return aws_iam.role_objects(
        plan,
        account.iam_role_arn,
        lambda account_id, partition: aws_iam.irsa_trust(
            plan.cluster, account_id, partition, target.namespace, account.name
        ),
        lambda name, wave: _metadata(plan, name, wave),
    )


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
            "secretStoreRef": {"kind": "ClusterSecretStore", "name": target_of(plan, KubeRayTargetConfig).secret_store},
            "target": {"name": name, "creationPolicy": "Owner"},
            "data": [{"secretKey": "value", "remoteRef": remote}],
        },
    }


def pod_monitor(plan: EnvPlan) -> dict[str, Any]:
    """A Prometheus PodMonitor scraping Ray's and Serve's metrics from every Ray pod."""
    name = target_of(plan, KubeRayTargetConfig).rayservice_name
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PodMonitor",
        "metadata": _metadata(plan, f"{name}-ray", wave=2),
        "spec": {
            "selector": {"matchLabels": {PART_OF: name}},
            "podMetricsEndpoints": [{"port": "metrics", "interval": "15s"}],
        },
    }


def monitoring(plan: EnvPlan) -> list[dict[str, Any]]:
    """The SLO alerts (render/alerts.py) and the Grafana dashboard (render/dashboard.py), after the PodMonitor."""
    name = target_of(plan, KubeRayTargetConfig).rayservice_name
    return [
        alerts.prometheus_rule(plan, _metadata(plan, f"{name}-slo", wave=2)),
        dashboard.config_map(plan, _metadata(plan, f"{name}-dashboard", wave=2)),
    ]


def _parity() -> dict[str, Honour]:
    ray = "in the Serve config Ray reads"
    node = "the Ray node pool of the RayService (workerGroupSpecs)"
    return {
        **secret_parity(
            aws=exact("ExternalSecret remoteRef.key → Kubernetes Secret → container env"),
            gcp=refused("by secrets_match_target_store: this target reads AWS Secrets Manager"),
            key=exact("ExternalSecret remoteRef.property"),
        ),
        "env.ray_version": exact("RayService rayClusterConfig.rayVersion"),
        "env.serve.throughput_optimized": exact(
            "RAY_SERVE_THROUGHPUT_OPTIMIZED=1 and RAY_SERVE_ENABLE_HA_PROXY=1 in the head and worker containers:"
            " HAProxy answers the serve Service's port 8000 on every pod and forwards to the ingress replicas' own"
            " ports (30000-31000, reached pod to pod), with RAY_SERVE_HAPROXY_NBTHREAD one thread per two of the"
            " container's CPUs"
        ),
        "env.serve.warm_workers": exact(
            "args.per_node of the Serve application _warm_workers (no route, 0 CPUs) in serveConfigV2, which keeps"
            " that many fresh Ray workers on every node, head included"
        ),
        "head_group.num_cpus": exact("head pod CPU request and limit; the head runs no replicas (num-cpus 0)"),
        "head_group.memory_gib": exact("head pod memory request and limit"),
        "head_group.node_type": exact("head pod nodeSelector node.kubernetes.io/instance-type"),
        "head_group.node_selector": exact("head pod nodeSelector"),
        **{
            f"worker_groups[].{name}": exact(f"{node}: {what}")
            for name, what in {
                "name": "groupName",
                "node_type": "nodeSelector node.kubernetes.io/instance-type",
                "accelerator": "a GPU toleration, and on Karpenter nodeSelector karpenter.k8s.aws/instance-gpu-name",
                "min_replicas": "minReplicas (and the initial replicas)",
                "max_replicas": "maxReplicas, scaled by the Ray autoscaler",
                "num_cpus": "pod CPU request and limit",
                "memory_gib": "pod memory request and limit",
                "num_gpus": "pod nvidia.com/gpu limit",
                "node_selector": "extra pod nodeSelector labels",
                "tolerations[].key": "pod tolerations",
                "tolerations[].operator": "pod tolerations",
                "tolerations[].value": "pod tolerations",
                "tolerations[].effect": "pod tolerations",
            }.items()
        },
        "apps[].slo.p95_ms": exact(
            f"threshold of the PrometheusRule's {alerts.LATENCY_ALERT} alert and the SLO line of the dashboard's"
            " latency panel; read by load tests and benchmarks"
        ),
        "apps[].slo.error_rate": exact(
            "error budget of the PrometheusRule's burn-rate alerts"
            f" ({', '.join(b.alert for b in alerts.BURN_RATES)}) and the SLO line of the dashboard's errors panel;"
            " read by load tests and benchmarks"
        ),
        "apps[].slo.ttft_p95_ms": exact(
            f"threshold of the PrometheusRule's {alerts.TTFT_ALERT} alert, from the app's own time-to-first-token"
            " histogram, and the SLO line of the dashboard's time-to-first-token panel; read by load tests; only an"
            " app that streams tokens may set it (ttft_slo_needs_streaming_app)"
        ),
        "apps[].deployments[].num_replicas": exact(f"num_replicas {ray}"),
        **{
            f"apps[].deployments[].autoscaling_config.{name}": exact(f"autoscaling_config.{name} {ray}")
            for name in (
                "min_replicas",
                "max_replicas",
                "target_ongoing_requests",
                "upscale_delay_s",
                "downscale_delay_s",
            )
        },
        "apps[].deployments[].ray_actor_options.num_cpus": exact(f"ray_actor_options.num_cpus {ray}"),
        "apps[].deployments[].ray_actor_options.num_gpus": exact(f"ray_actor_options.num_gpus {ray}; fractions share"),
        "apps[].deployments[].ray_actor_options.memory_gib": exact(f"ray_actor_options.memory (bytes) {ray}"),
    }


def _streaming(plan: EnvPlan) -> list[str]:
    lines = []
    for app_plan in streaming.streaming_apps(plan):
        app = app_plan.app
        lines.append(streaming.proxy_line(plan, app_plan))
        lines.append(
            f"{app.name}: what reaches the proxy from outside the cluster (an Ingress or a load balancer in front"
            " of the serve Service: not rendered) must pass the stream on unbuffered, and its own idle and request"
            " timeouts bound the stream too"
        )
        for deployment in app.deployments:
            scaling = deployment.autoscaling_config
            held = (
                f"Serve's autoscaler counts it as ongoing until it ends and aims at target_ongoing_requests"
                f" {scaling.target_ongoing_requests:g} per replica"
                if scaling is not None
                else f"num_replicas {deployment.num_replicas} is fixed"
            )
            lines.append(
                f"{app.name}: a stream holds a slot of a {deployment.name} replica (max_ongoing_requests"
                f" {deployment.max_ongoing_requests}) for its whole length; {held}"
            )
        lines.append(streaming.drain_line(app_plan, "a replica", None))
    return lines


def build(plan: EnvPlan) -> TargetOutput:
    """All KubeRay-target manifests of one environment."""
    service = rayservice(plan)
    manifests = [*iam_role(plan), *service_accounts(plan), service, pod_monitor(plan), *monitoring(plan)]
    manifests += [external_secret(plan, var, ref) for var, ref in plan.secrets.items()]
    fault_tolerance = target_of(plan, KubeRayTargetConfig).gcs_fault_tolerance
    if fault_tolerance is not None and fault_tolerance.redis_password is not None:
        manifests.append(external_secret(plan, REDIS_PASSWORD_SECRET_VAR, fault_tolerance.redis_password))
    # No ignoreDifferences on worker replicas: the Ray autoscaler patches the RayCluster KubeRay made, never the
    # RayService, and KubeRay hashes the RayService's cluster spec without replicas, min and max replicas when it
    # decides whether a change needs a new cluster (ray-project/kuberay ray-operator/controllers/ray/utils/util.go,
    # GenerateHashWithoutReplicasAndWorkersToDelete), so a sync never resets the autoscaler's counts.
    return TargetOutput(
        manifests=manifests,
        serve_configs={
            f"RayService/{service['metadata']['name']}: spec.serveConfigV2": service["spec"]["serveConfigV2"]
        },
        parity=_parity(),
        streaming=_streaming(plan),
    )
