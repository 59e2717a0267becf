"""Cloud Run target: each app is one Cloud Run service whose instances each run a single-node Ray Serve of it.

From one plan it renders, per app:
1. the `serving.knative.dev/v1` Service that `gcloud run services replace` takes (native/<app>/run.v1.Service.yaml);
2. the Cloud Run Admin API v2 Service body (native/<app>/run.v2.Service.json), validated against the protos;
3. for Argo CD, Config Connector objects: a RunService (unless `run_service: native`), and per environment an
   IAMServiceAccount with one IAMPolicyMember per secret granting roles/secretmanager.secretAccessor;
4. with `aws_role_arn`, the AWS role the services assume to read s3:// models, as ACK IAM objects
   (render/targets/aws_iam.py) trusting only the service account's Google-issued ID tokens. The container is told
   the role and the token audience (AWS_ROLE_ARN, AWS_ROLE_SESSION_NAME, GOOGLE_ID_TOKEN_AUDIENCE) and
   serve_apps/common/web_identity.py exchanges a metadata-server ID token for short-lived keys: no AWS key is stored.

Config Connector's RunService (v1.155) has no node selector, so a GPU service exists only in the native forms.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from render.spec.base import K8sName
from render.spec.rules import rule_error
from render.targets import aws_iam, single_node, streaming
from render.targets.base import (
    Honour,
    NativeBody,
    TargetConfigBase,
    TargetOutput,
    approximated,
    exact,
    ignored,
    refused,
    secret_parity,
    size_related,
    target_of,
)
from render.validate.cloudrun import CPU_VALUES, GPU_MINIMUMS, MAX_CONCURRENCY, MEMORY_MAX_MIB, MEMORY_MIN_MIB
from serve_apps.common.web_identity import AUDIENCE_ENV, ROLE_ARN_ENV, SESSION_NAME_ENV
from serve_apps.entrypoint import STOP_RESERVE_S

if TYPE_CHECKING:
    from render.plan import AppPlan, EnvPlan
    from render.spec.models import App, SecretRef, Spec

SERVICE_NAME = re.compile(r"^[a-z]([-a-z0-9]{0,47}[a-z0-9])?$")
SECRET_ACCESSOR = "roles/secretmanager.secretAccessor"  # noqa: S105 - an IAM role name
SYNC_WAVE = "argocd.argoproj.io/sync-wave"
MANAGED_BY = {"app.kubernetes.io/managed-by": "serving-toolkit"}
CONTAINER = "serve"
# Cloud Run's limit for failureThreshold x periodSeconds: the startup window for Ray start and model load.
PROBE_PERIOD_S = 10
PROBE_FAILURES = 24
PROBE_TIMEOUT_S = 5
MEMORY_STEP_MIB = 256
# Cloud Run sends SIGTERM, then SIGKILL 10 s later; the period is fixed by the platform
# (https://cloud.google.com/run/docs/container-contract, "Instance shutdown"; https://cloud.google.com/blog/topics/
# developers-practitioners/graceful-shutdowns-cloud-run-deep-dive).
SHUTDOWN_GRACE_S = 10
# https://cloud.google.com/run/docs/configuring/request-timeout: a service must answer within its request timeout, 300 s
# unless set, at most 3600 s; past it Cloud Run closes the connection (a 504 when nothing was sent yet).
DEFAULT_REQUEST_TIMEOUT_S = 300
MAX_REQUEST_TIMEOUT_S = 3600
_EPS = 1e-4
# The audience the services ask the metadata server to put in their ID tokens, and the trust pins (`oaud`). The same
# value as the EKS trust's `aud` (aws_iam.irsa_trust): the token is meant for AWS STS and nothing else.
ID_TOKEN_AUDIENCE = "sts.amazonaws.com"  # noqa: S105 - an audience, not a secret


class CloudRunTargetConfig(TargetConfigBase):
    """Run each app as a Cloud Run service, through Config Connector on a management cluster or natively."""

    secret_store_kind: ClassVar[str] = "gcp_secret_manager"  # noqa: S105 - a store name, not a secret
    cluster_kinds: ClassVar[tuple[str, ...]] = ("cloudrun",)
    aws_identity_hint: ClassVar[str] = "set env.target.aws_role_arn and remove the keys"

    kind: Annotated[Literal["cloudrun"], Field(description="Target discriminator.")]
    cluster: Annotated[
        str,
        Field(
            description="Cluster name from clusters/clusters.yaml (kind cloudrun): region and project (account) of"
            " the services; its argocd_destination is the management cluster running Config Connector."
        ),
    ]
    namespace: Annotated[K8sName, Field(description="Namespace of the Config Connector objects.")]
    service_account: Annotated[
        str,
        Field(
            pattern=r"^[a-z]([-a-z0-9]{4,28}[a-z0-9])$",
            description="Account id of the services' IAM service account (created here, granted the secrets).",
        ),
    ]
    run_service: Annotated[
        Literal["config-connector", "native"],
        Field(
            default="config-connector",
            description="config-connector: Argo CD applies RunService objects; native: only the native bodies are"
            " rendered for `gcloud run services replace` or the Admin API (GPU services need it).",
        ),
    ]
    aws_role_arn: Annotated[
        str | None,
        Field(
            default=None,
            pattern=aws_iam.ROLE_ARN_PATTERN,
            description="AWS IAM role the services assume with their service account's Google-issued ID token"
            " (AssumeRoleWithWebIdentity) to read the s3:// models; rendered as ACK IAM objects trusting only that"
            " service account. Required outside dev when an app loads an s3:// model.",
        ),
    ]
    service_account_unique_id: Annotated[
        str | None,
        Field(
            default=None,
            pattern=r"^[0-9]{10,32}$",
            description="Numeric unique id of the service account (`gcloud iam service-accounts describe <email>"
            " --format='value(uniqueId)'`, or the IAMServiceAccount's status.uniqueId once it exists): the subject"
            " the AWS role trusts. Required with aws_role_arn.",
        ),
    ]

    @field_validator("cluster")
    @classmethod
    def cluster_names_project(cls, value: str, info: ValidationInfo) -> str:
        clusters = (info.context or {}).get("clusters") or {}
        if value in clusters and clusters[value].account is None:
            raise rule_error(
                "cloudrun_cluster_names_project",
                field="",
                got=value,
                rule="a cloudrun cluster needs its GCP project id as `account` in clusters/clusters.yaml",
                hint=f"add `account: <project-id>` to the {value} entry",
            )
        return value

    @model_validator(mode="after")
    def aws_role_trusts_one_service_account(self) -> CloudRunTargetConfig:
        # Every Google service account can get an ID token for any audience, so a trust on the audience alone would
        # let any of them assume the role: it must also pin the subject, which only the account's unique id names.
        if self.aws_role_arn is not None and self.service_account_unique_id is None:
            raise rule_error(
                "aws_role_trusts_one_service_account",
                field="service_account_unique_id",
                got=None,
                rule="the AWS role's trust must name the one Google service account that may assume it, by unique id",
                hint=f"set service_account_unique_id to the output of `gcloud iam service-accounts describe"
                f" {self.service_account}@<project>.iam.gserviceaccount.com --format='value(uniqueId)'`",
                related=("aws_role_arn",),
            )
        return self

    def spec_errors(self, spec: Spec) -> Iterator[PydanticCustomError]:
        """The Cloud Run rules: AWS identity, service names, secrets, GPUs, instance sizes."""
        yield from _s3_models_need_aws_role(self, spec)
        yield from _service_names_fit(spec)
        yield from _secrets_without_key(spec)
        yield from _gpu_rules(self, spec)
        yield from _instances_fit(spec)


def service_name(spec_env: str, app: App) -> str:
    """The Cloud Run service of an app: `<env>-<app>`."""
    return f"{spec_env}-{app.name}"


def _s3_models_need_aws_role(target: CloudRunTargetConfig, spec: Spec) -> Iterator[PydanticCustomError]:
    # Cloud Run has no AWS identity of its own: without a role to assume, the only way to S3 is a stored key pair,
    # which no_static_aws_keys_outside_dev refuses outside dev.
    if spec.env.tier == "dev" or target.aws_role_arn is not None:
        return
    for i, app in enumerate(spec.apps):
        if app.model is not None and app.model.uri.startswith("s3://"):
            yield rule_error(
                "cloudrun_s3_models_need_aws_role",
                field="env.target.aws_role_arn",
                got=None,
                rule=f"app {app.name} loads {app.model.uri}, and a {spec.env.tier} Cloud Run service reaches S3 only"
                " by assuming an AWS role with its Google identity",
                hint="set env.target.aws_role_arn (and service_account_unique_id), or serve the model from the image"
                " (file://)",
                related=(f"apps.{i}.model.uri", "env.tier"),
            )
            return


def _service_names_fit(spec: Spec) -> Iterator[PydanticCustomError]:
    for i, app in enumerate(spec.apps):
        name = service_name(spec.env.name, app)
        if not SERVICE_NAME.match(name):
            yield rule_error(
                "cloudrun_service_name_fits",
                field=f"apps.{i}.name",
                got=name,
                rule="a Cloud Run service name (`<env>-<app>`) starts with a letter and has at most 49 characters",
                hint="shorten the app or environment name",
            )


def _secrets_without_key(spec: Spec) -> Iterator[PydanticCustomError]:
    scopes = [("env.secrets", spec.env.secrets)] + [(f"apps.{i}.secrets", a.secrets) for i, a in enumerate(spec.apps)]
    for scope, secrets in scopes:
        for var, ref in secrets.items():
            if ref.key is not None:
                yield rule_error(
                    "cloudrun_secret_without_key",
                    field=f"{scope}.{var}.key",
                    got=ref.key,
                    rule="Cloud Run injects a whole secret version and cannot pick a JSON key",
                    hint="store the value as its own secret and drop `key`",
                )


def _gpu_rules(target: CloudRunTargetConfig, spec: Spec) -> Iterator[PydanticCustomError]:
    for i, app in enumerate(spec.apps):
        gpu_indices = [j for j, d in enumerate(app.deployments) if d.ray_actor_options.num_gpus > 0]
        if not gpu_indices:
            continue
        first = f"apps.{i}.deployments.{gpu_indices[0]}.ray_actor_options.num_gpus"
        size = single_node.app_size(spec, app)
        if size.gpus > 1 + _EPS:
            yield rule_error(
                "cloudrun_one_gpu_per_instance",
                field=first,
                got=app.deployments[gpu_indices[0]].ray_actor_options.num_gpus,
                rule=f"a Cloud Run instance has at most one GPU, and one replica of each deployment of {app.name}"
                f" wants {size.gpus:g}",
                hint="use GPU fractions that add up to at most 1 per app, or split the app",
            )
        gpu_groups = [(k, g) for k, g in enumerate(spec.worker_groups) if g.num_gpus > 0]
        if not gpu_groups:
            continue  # the spec rule gpu_needs_gpu_worker_group reports it
        group_index, group = gpu_groups[0]
        if group.accelerator not in GPU_MINIMUMS:
            yield rule_error(
                "cloudrun_gpu_is_supported",
                field=f"worker_groups.{group_index}.accelerator",
                got=group.accelerator,
                rule=f"Cloud Run offers only {', '.join(GPU_MINIMUMS)}",
                hint="set the GPU worker group's accelerator to nvidia-l4",
            )
        else:
            min_cpu, min_mib = GPU_MINIMUMS[str(group.accelerator)]
            if group.num_cpus < int(min_cpu):
                yield rule_error(
                    "cloudrun_gpu_needs_cpus",
                    field=f"worker_groups.{group_index}.num_cpus",
                    got=group.num_cpus,
                    rule=f"a Cloud Run instance with {group.accelerator} needs at least {min_cpu} CPUs, and GPU"
                    " instances take the GPU worker group's shape",
                    hint=f"set num_cpus: {min_cpu} or more on worker group {group.name}",
                )
            if group.memory_gib * 1024 < min_mib:
                yield rule_error(
                    "cloudrun_gpu_needs_memory",
                    field=f"worker_groups.{group_index}.memory_gib",
                    got=group.memory_gib,
                    rule=f"a Cloud Run instance with {group.accelerator} needs at least {min_mib // 1024} GiB, and"
                    " GPU instances take the GPU worker group's shape",
                    hint=f"set memory_gib: {min_mib // 1024} or more on worker group {group.name}",
                )
        if target.run_service == "config-connector":
            yield rule_error(
                "cloudrun_gpu_needs_native",
                field="env.target.run_service",
                got=target.run_service,
                rule=f"app {app.name} uses a GPU, and Config Connector's RunService (v1.155) has no node selector,"
                " so it cannot express a GPU Cloud Run service",
                hint=f"set env.target.run_service: native and deploy rendered/{spec.env.name}/native/{app.name}/"
                "run.v1.Service.yaml with `gcloud run services replace` (or send run.v2.Service.json to the Admin API)",
                related=(first,),
            )


def _instances_fit(spec: Spec) -> Iterator[PydanticCustomError]:
    for i, app in enumerate(spec.apps):
        try:
            instance_shape(spec, app)
        except ValueError as problem:
            yield rule_error(
                "cloudrun_instance_fits",
                field=f"apps.{i}.deployments",
                got=str(problem),
                rule=f"one instance ({single_node.app_size(spec, app).explain()}) exceeds Cloud Run's largest,"
                f" {CPU_VALUES[-1]} CPU / {MEMORY_MAX_MIB[CPU_VALUES[-1]] // 1024} GiB",
                hint="lower the replicas' num_cpus or memory_gib, or split the app",
                related=size_related(i, len(app.deployments)),
            )


@dataclass(frozen=True)
class InstanceShape:
    """CPU and memory limits of one Cloud Run instance, and how they were chosen."""

    cpu: str
    memory_mib: int
    gpu: str | None
    how: str

    @property
    def memory(self) -> str:
        """The memory limit as a quantity."""
        return f"{self.memory_mib // 1024}Gi" if self.memory_mib % 1024 == 0 else f"{self.memory_mib}Mi"


def instance_shape(spec: Spec, app: App) -> InstanceShape:
    """The instance of an app: a GPU app takes the GPU worker group's shape; a CPU app the smallest Cloud Run
    size that holds one replica of each deployment plus Ray. Raises ValueError when nothing holds it."""
    size = single_node.app_size(spec, app)
    need_cpu, need_mib = size.cpus, math.ceil(size.memory_gib * 1024)
    how = size.explain()
    gpu = None
    if size.gpus:
        group = single_node.worker_group_for(spec, next(d for d in app.deployments if d.ray_actor_options.num_gpus))
        gpu = group.accelerator
        need_cpu, need_mib = max(need_cpu, group.num_cpus), max(need_mib, math.ceil(group.memory_gib * 1024))
        how += f"; at least the GPU worker group {group.name}'s {group.num_cpus} CPU / {group.memory_gib:g} GiB"
    for cpu in CPU_VALUES:
        if int(cpu) + _EPS < need_cpu:
            continue
        memory = max(MEMORY_MIN_MIB[cpu], math.ceil(need_mib / MEMORY_STEP_MIB) * MEMORY_STEP_MIB)
        if memory <= MEMORY_MAX_MIB[cpu]:
            return InstanceShape(cpu, memory, gpu, how)
    raise ValueError(f"{need_cpu:g} CPU / {need_mib} MiB")


def _secret(ref: SecretRef, project: str) -> tuple[str, str, str]:
    """(project, secret name, version) of a Secret Manager reference; a bare name is in the services' project."""
    assert ref.gcp_secret_manager is not None
    path, _, version = ref.gcp_secret_manager.partition("/versions/")
    name = path.rsplit("/", 1)[-1]
    owner = path.split("/")[1] if path.startswith("projects/") else project
    return owner, name, version or "latest"


def _concurrency(app: App) -> int:
    # Requests enter through the app's deployments; the tightest max_ongoing_requests bounds an instance.
    return min(MAX_CONCURRENCY, min(d.max_ongoing_requests for d in app.deployments))


def service_account_email(plan: EnvPlan) -> str:
    """The services' IAM service account."""
    target = target_of(plan, CloudRunTargetConfig)
    return f"{target.service_account}@{plan.cluster.account}.iam.gserviceaccount.com"


def _command(plan: EnvPlan, app_plan: AppPlan) -> list[str]:
    size = single_node.app_size(plan.spec, app_plan.app)
    return ["/bin/sh", "-c", single_node.start_script(size, SHUTDOWN_GRACE_S)]


def _aws_role_env(plan: EnvPlan, app: App) -> list[dict[str, str]]:
    """What tells the container to assume the AWS role with an ID token (serve_apps/common/web_identity.py); the
    session name is the service, so CloudTrail shows which service read a model."""
    target = target_of(plan, CloudRunTargetConfig)
    if target.aws_role_arn is None:
        return []
    values = {
        ROLE_ARN_ENV: target.aws_role_arn,
        SESSION_NAME_ENV: service_name(plan.name, app),
        AUDIENCE_ENV: ID_TOKEN_AUDIENCE,
    }
    return [{"name": var, "value": value} for var, value in sorted(values.items())]


def run_v2_service(plan: EnvPlan, app_plan: AppPlan) -> dict[str, Any]:
    """The Cloud Run Admin API v2 Service body (JSON names) of one app."""
    app = app_plan.app
    project = str(plan.cluster.account)
    shape = instance_shape(plan.spec, app)
    low, high = single_node.task_count(app)
    command = _command(plan, app_plan)
    port = single_node.serve_port(plan)
    env: list[dict[str, Any]] = [*single_node.container_env(plan, app_plan, int(shape.cpu)), *_aws_role_env(plan, app)]
    for var, ref in sorted(app_plan.secrets.items()):
        owner, name, version = _secret(ref, project)
        secret = name if owner == project else f"projects/{owner}/secrets/{name}"
        env.append({"name": var, "valueSource": {"secretKeyRef": {"secret": secret, "version": version}}})
    limits = {"cpu": shape.cpu, "memory": shape.memory}
    if shape.gpu:
        limits["nvidia.com/gpu"] = "1"
    container = {
        "name": CONTAINER,
        "image": plan.spec.env.image,
        "command": command[:2],
        "args": command[2:],
        "env": env,
        "ports": [{"name": "http1", "containerPort": port}],
        # Ray's GCS, raylet and Serve controller work between requests: CPU is always allocated, GPU or not.
        "resources": {"limits": limits, "cpuIdle": False, "startupCpuBoost": True},
        "startupProbe": {
            "httpGet": {"path": single_node.health_path(app), "port": port},
            "periodSeconds": PROBE_PERIOD_S,
            "failureThreshold": PROBE_FAILURES,
            "timeoutSeconds": PROBE_TIMEOUT_S,
        },
    }
    template: dict[str, Any] = {
        "labels": _labels(plan, app),
        "scaling": {"minInstanceCount": low, "maxInstanceCount": high},
        "serviceAccount": service_account_email(plan),
        "containers": [container],
        "executionEnvironment": "EXECUTION_ENVIRONMENT_GEN2",
        "maxInstanceRequestConcurrency": _concurrency(app),
    }
    if plan.spec.env.serve.request_timeout_s is not None:
        template["timeout"] = f"{math.ceil(plan.spec.env.serve.request_timeout_s)}s"
    if shape.gpu:
        template["nodeSelector"] = {"accelerator": shape.gpu}
    return {
        "name": f"projects/{project}/locations/{plan.cluster.region}/services/{service_name(plan.name, app)}",
        "labels": _labels(plan, app),
        "template": template,
    }


def _labels(plan: EnvPlan, app: App) -> dict[str, str]:
    return {"serving-toolkit-app": app.name, "serving-toolkit-env": plan.name}


def knative_service(plan: EnvPlan, app_plan: AppPlan) -> dict[str, Any]:
    """The `serving.knative.dev/v1` Service of one app, as `gcloud run services replace` takes it."""
    v2 = run_v2_service(plan, app_plan)
    template, container = v2["template"], v2["template"]["containers"][0]
    project = str(plan.cluster.account)
    annotations = {
        "autoscaling.knative.dev/minScale": str(template["scaling"]["minInstanceCount"]),
        "autoscaling.knative.dev/maxScale": str(template["scaling"]["maxInstanceCount"]),
        "run.googleapis.com/cpu-throttling": "false",
        "run.googleapis.com/startup-cpu-boost": "true",
        "run.googleapis.com/execution-environment": "gen2",
    }
    env: list[dict[str, Any]] = [entry for entry in container["env"] if "value" in entry]
    aliases = []
    for var, ref in sorted(app_plan.secrets.items()):
        owner, name, version = _secret(ref, project)
        if owner != project:
            # v1 names a secret of another project through an alias declared on the revision.
            aliases.append(f"{name}:projects/{owner}/secrets/{name}")
        env.append({"name": var, "valueFrom": {"secretKeyRef": {"name": name, "key": version}}})
    if aliases:
        annotations["run.googleapis.com/secrets"] = ",".join(aliases)
    spec: dict[str, Any] = {
        "containerConcurrency": template["maxInstanceRequestConcurrency"],
        "serviceAccountName": template["serviceAccount"],
        "containers": [
            {
                "name": CONTAINER,
                "image": container["image"],
                "command": container["command"],
                "args": container["args"],
                "env": env,
                "ports": [{"name": "http1", "containerPort": container["ports"][0]["containerPort"]}],
                "resources": {"limits": container["resources"]["limits"]},
                "startupProbe": container["startupProbe"],
            }
        ],
    }
    if "timeout" in template:
        spec["timeoutSeconds"] = int(template["timeout"].removesuffix("s"))
    if "nodeSelector" in template:
        spec["nodeSelector"] = {"run.googleapis.com/accelerator": template["nodeSelector"]["accelerator"]}
    return {
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Service",
        "metadata": {
            "name": service_name(plan.name, app_plan.app),
            "namespace": project,
            "labels": {**_labels(plan, app_plan.app), "cloud.googleapis.com/location": plan.cluster.region},
        },
        "spec": {"template": {"metadata": {"annotations": annotations}, "spec": spec}},
    }


def _metadata(plan: EnvPlan, name: str, wave: int) -> dict[str, Any]:
    target = target_of(plan, CloudRunTargetConfig)
    return {
        "name": name,
        "namespace": target.namespace,
        "labels": {**MANAGED_BY, "serving.toolkit/env": plan.name},
        "annotations": {SYNC_WAVE: str(wave)},
    }


def _kcc(plan: EnvPlan, api_version: str, kind: str, name: str, wave: int, spec: dict[str, Any]) -> dict[str, Any]:
    metadata = _metadata(plan, name, wave)
    metadata["annotations"]["cnrm.cloud.google.com/project-id"] = str(plan.cluster.account)
    return {"apiVersion": api_version, "kind": kind, "metadata": metadata, "spec": spec}


def run_service(plan: EnvPlan, app_plan: AppPlan) -> dict[str, Any]:
    """The Config Connector RunService of one CPU app, from the same v2 body (KCC spells refs its own way)."""
    v2 = run_v2_service(plan, app_plan)
    template = dict(v2["template"])
    container = dict(template["containers"][0])
    project = str(plan.cluster.account)
    env = []
    for entry in container["env"]:
        ref = entry.get("valueSource", {}).get("secretKeyRef")
        if ref is None:
            env.append(entry)
        else:
            key_ref = {"secretRef": {"external": ref["secret"]}, "versionRef": {"external": ref["version"]}}
            env.append({"name": entry["name"], "valueSource": {"secretKeyRef": key_ref}})
    container["env"] = env
    template["containers"] = [container]
    template["serviceAccountRef"] = {"external": template.pop("serviceAccount")}
    return _kcc(
        plan,
        "run.cnrm.cloud.google.com/v1beta1",
        "RunService",
        service_name(plan.name, app_plan.app),
        wave=1,
        spec={
            "resourceID": service_name(plan.name, app_plan.app),
            "location": plan.cluster.region,
            "projectRef": {"external": project},
            "template": template,
        },
    )


def iam_objects(plan: EnvPlan) -> list[dict[str, Any]]:
    """The services' IAMServiceAccount and, per secret, an IAMPolicyMember granting it the secret accessor role."""
    target = target_of(plan, CloudRunTargetConfig)
    project = str(plan.cluster.account)
    account = _kcc(
        plan,
        "iam.cnrm.cloud.google.com/v1beta1",
        "IAMServiceAccount",
        target.service_account,
        wave=0,
        spec={"resourceID": target.service_account, "displayName": f"Ray Serve apps of {plan.name}"},
    )
    members = []
    for owner, name in sorted({_secret(ref, project)[:2] for ref in plan.secrets.values()}):
        members.append(
            _kcc(
                plan,
                "iam.cnrm.cloud.google.com/v1beta1",
                "IAMPolicyMember",
                f"{target.service_account}-{name.lower().replace('_', '-')}"[:63].rstrip("-"),
                wave=0,
                spec={
                    "memberFrom": {"serviceAccountRef": {"name": target.service_account}},
                    "role": SECRET_ACCESSOR,
                    "resourceRef": {
                        "apiVersion": "secretmanager.cnrm.cloud.google.com/v1beta1",
                        "kind": "SecretManagerSecret",
                        "external": f"projects/{owner}/secrets/{name}",
                    },
                },
            )
        )
    return [account, *members]


def aws_role_objects(plan: EnvPlan) -> list[dict[str, Any]]:
    """With aws_role_arn, the role the services assume and its model-read policy, as ACK IAM objects beside the
    Config Connector ones (same namespace and Argo CD Application, wave -1), trusting only the service account."""
    target = target_of(plan, CloudRunTargetConfig)
    if target.aws_role_arn is None:
        return []
    unique_id = target.service_account_unique_id
    assert unique_id is not None  # aws_role_trusts_one_service_account
    return aws_iam.role_objects(
        plan,
        target.aws_role_arn,
        lambda account, partition: aws_iam.google_trust(unique_id, ID_TOKEN_AUDIENCE),
        lambda name, wave: _metadata(plan, name, wave),
    )


def _sizing(plan: EnvPlan, app: App) -> list[str]:
    shape = instance_shape(plan.spec, app)
    gpu = f" + 1 {shape.gpu}" if shape.gpu else ""
    lines = [
        f"{app.name}: instance {shape.cpu} CPU / {shape.memory}{gpu}: {shape.how}",
        f"{app.name}: instances {single_node.count_explanation(app)}",
    ]
    ongoing = sorted({d.max_ongoing_requests for d in app.deployments})
    if len(ongoing) > 1 or ongoing[0] > MAX_CONCURRENCY:
        lines.append(
            f"{app.name}: containerConcurrency {_concurrency(app)} from max_ongoing_requests {ongoing}"
            f" (the smallest, at most {MAX_CONCURRENCY})"
        )
    return lines


def _streaming(plan: EnvPlan) -> list[str]:
    timeout = plan.spec.env.serve.request_timeout_s
    bound = (
        f"the service's request timeout, {math.ceil(timeout)} s (env.serve.request_timeout_s rounded up)"
        if timeout is not None
        else f"Cloud Run's default request timeout, {DEFAULT_REQUEST_TIMEOUT_S} s (env.serve.request_timeout_s is"
        f" unset; it takes up to {MAX_REQUEST_TIMEOUT_S} s)"
    )
    lines = []
    for app_plan in streaming.streaming_apps(plan):
        app = app_plan.app
        lines.append(streaming.proxy_line(plan, app_plan))
        # Cloud Run streams a response as the container writes it, server-sent events included, and a streamed
        # response is not held to the 32 MiB of a buffered HTTP/1 one (Google Cloud blog, "Introducing HTTP/gRPC
        # server streaming for Cloud Run"; https://cloud.google.com/run/quotas).
        lines.append(
            f"{app.name}: Cloud Run passes a streamed answer on as the container writes it (server-side HTTP"
            f" streaming, server-sent events included); {bound} bounds the whole request, the stream included:"
            " past it Cloud Run closes the connection, and a stream already started ends without its `done` event"
        )
        lines.append(
            f"{app.name}: a stream counts against the instance's containerConcurrency ({_concurrency(app)}) for its"
            " whole length, and Cloud Run's autoscaler sees it in flight until it ends"
        )
        platform = (
            f"{SHUTDOWN_GRACE_S - STOP_RESERVE_S:g} s (Cloud Run's fixed {SHUTDOWN_GRACE_S} s between SIGTERM and"
            f" SIGKILL, less {STOP_RESERVE_S:g} s to stop Serve and Ray)"
        )
        lines.append(streaming.drain_line(app_plan, "an instance", platform))
    return lines


def _parity(target: CloudRunTargetConfig) -> dict[str, Honour]:
    per_instance = "the instance is one Ray node sized from the app's deployments (see Sizing)"
    return {
        **secret_parity(
            aws=refused("by secrets_match_target_store: Cloud Run reads GCP Secret Manager"),
            gcp=exact("env valueSource.secretKeyRef; the service account is granted secretAccessor per secret"),
            key=refused("by cloudrun_secret_without_key: Cloud Run injects a whole secret version"),
        ),
        "env.serve.request_timeout_s": exact(
            "http_options.request_timeout_s in the Serve config, and the request"
            " timeout of the Cloud Run service (rounded up to whole seconds)"
        ),
        "env.ray_version": approximated("not set by the target: the image's Ray runs"),
        "env.serve.throughput_optimized": exact(single_node.THROUGHPUT_PARITY),
        "env.serve.warm_workers": ignored(single_node.WARM_WORKERS_PARITY),
        **single_node.slo_alerts_parity(
            "Cloud Monitoring alert policies on run.googleapis.com/request_latencies and request_count by"
            " response_code_class",
            "a Managed Service for Prometheus sidecar scraping it, and a Cloud Monitoring alert policy on its p95",
        ),
        "apps[].model.uri": exact(
            "args.model.uri in the Serve config; an s3:// model is read as env.target.aws_role_arn, assumed with the"
            " service account's Google ID token (required outside dev: cloudrun_s3_models_need_aws_role)"
        ),
        "head_group.num_cpus": ignored(f"no separate head: {per_instance}, plus a fixed Ray overhead"),
        "head_group.memory_gib": ignored(f"no separate head: {per_instance}, plus a fixed Ray overhead"),
        "head_group.node_type": ignored("no separate head: ignored"),
        "head_group.node_selector": ignored("no Kubernetes nodes: ignored"),
        "worker_groups[].name": approximated("names the group whose memory per CPU sizes replicas without memory_gib"),
        "worker_groups[].node_type": ignored("Cloud Run picks the host: ignored"),
        "worker_groups[].accelerator": exact(
            "nodeSelector accelerator of GPU apps; only nvidia-l4 (cloudrun_gpu_is_supported)"
        ),
        "worker_groups[].min_replicas": approximated("no Ray nodes: instance count per service replaces node count"),
        "worker_groups[].max_replicas": approximated("no Ray nodes: instance count per service replaces node count"),
        "worker_groups[].num_cpus": approximated(
            "Ray worker groups → instance size: a GPU app's instance takes at least its GPU group's CPUs"
        ),
        "worker_groups[].memory_gib": approximated(
            "memory per CPU for replicas without memory_gib; a GPU app's instance takes at least its GPU group's memory"
        ),
        "worker_groups[].num_gpus": approximated("one GPU per instance whatever the group holds"),
        "worker_groups[].node_selector": ignored("no Kubernetes nodes: ignored"),
        "worker_groups[].tolerations[].key": ignored("no Kubernetes taints: ignored"),
        "worker_groups[].tolerations[].operator": ignored("no Kubernetes taints: ignored"),
        "worker_groups[].tolerations[].value": ignored("no Kubernetes taints: ignored"),
        "worker_groups[].tolerations[].effect": ignored("no Kubernetes taints: ignored"),
        "apps[].deployments[].num_replicas": approximated(
            "one replica per instance; fixed counts → min = max instances (the largest of the app's deployments)"
        ),
        "apps[].deployments[].max_ongoing_requests": exact(
            "in the Serve config, and containerConcurrency (the app's smallest, at most 1000)"
        ),
        "apps[].deployments[].autoscaling_config.min_replicas": approximated(
            "per-deployment autoscaling → per-service instance count: min instances is the largest min of the app"
        ),
        "apps[].deployments[].autoscaling_config.max_replicas": approximated(
            "per-deployment autoscaling → per-service instance count: max instances is the largest max of the app"
        ),
        "apps[].deployments[].autoscaling_config.target_ongoing_requests": ignored(
            "Cloud Run scales on concurrency against containerConcurrency and on CPU, not on a per-replica target"
        ),
        "apps[].deployments[].autoscaling_config.upscale_delay_s": ignored("Cloud Run's autoscaler has no delay knob"),
        "apps[].deployments[].autoscaling_config.downscale_delay_s": ignored(
            "Cloud Run's autoscaler has no delay knob"
        ),
        "apps[].deployments[].ray_actor_options.num_cpus": approximated(
            "in the Serve config exactly; summed into the instance's CPU, rounded up to 1, 2, 4 or 8"
        ),
        "apps[].deployments[].ray_actor_options.num_gpus": approximated(
            "fractional GPU → one whole GPU per instance, shared inside by Ray; more than 1 per app is refused"
            " (cloudrun_one_gpu_per_instance)"
            + (
                "; GPU apps are refused with run_service: config-connector (cloudrun_gpu_needs_native)"
                if target.run_service == "config-connector"
                else ""
            )
        ),
        "apps[].deployments[].ray_actor_options.memory_gib": approximated(
            "in the Serve config exactly; summed into the instance's memory, rounded up to 256 MiB"
        ),
    }


def build(plan: EnvPlan) -> TargetOutput:
    """Native bodies and Config Connector objects for every app of one environment."""
    target = target_of(plan, CloudRunTargetConfig)
    native: list[NativeBody] = []
    manifests = iam_objects(plan) + aws_role_objects(plan)
    serve_configs: dict[str, str] = {}
    sizing: list[str] = []
    for app_plan in plan.apps:
        app = app_plan.app
        v2 = NativeBody(app.name, "run.v2.Service", run_v2_service(plan, app_plan))
        native += [NativeBody(app.name, "run.v1.Service", knative_service(plan, app_plan), suffix="yaml"), v2]
        if target.run_service == "config-connector":
            manifests.append(run_service(plan, app_plan))
        serve_configs[f"{v2.path}: {single_node.SERVE_CONFIG_ENV}"] = single_node.serve_config_text(plan, app_plan)
        sizing += _sizing(plan, app)
    return TargetOutput(
        manifests=manifests,
        serve_configs=serve_configs,
        parity=_parity(target),
        native=native,
        sizing=sizing,
        streaming=_streaming(plan),
    )
