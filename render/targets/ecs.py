"""ECS target: each app is one ECS service whose tasks each run a single-node Ray Serve of that app.

From one plan it renders two forms of the same four calls per app:
1. native AWS API bodies (RegisterTaskDefinition, CreateService, RegisterScalableTarget, PutScalingPolicy) for a
   user's own pipeline, under native/<app>/;
2. ACK custom resources (TaskDefinition, Service, ScalableTarget, ScalingPolicy) that Argo CD applies to the
   management cluster in sync waves 0-3, spelled as ACK spells them (executionRoleARN, resourceID, ...).

The task definition's family carries a hash of its content: ACK's Service points at a family, not a revision, so
a changed task definition must be a new family for the service to roll out (and ACK deregisters the old one
when Argo CD prunes its object).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from render.spec.base import K8sName, StrictModel
from render.spec.rules import rule_error
from render.spec.secrets import SECRETS_MANAGER_ARN_PATTERN
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
from render.validate.aws import FARGATE_SIZES
from serve_apps.entrypoint import STOP_RESERVE_S

if TYPE_CHECKING:
    from render.plan import AppPlan, EnvPlan
    from render.spec.models import App, Spec

ELB_ARN = r"^arn:aws[a-z-]*:elasticloadbalancing:[a-z0-9-]+:\d{12}:"
CONTAINER = "serve"
# The ECS maximum: the longest a task may take (Ray start plus model load) before failed health checks count.
HEALTH_START_PERIOD_S = 300
# ContainerDefinition.stopTimeout: the seconds between SIGTERM and SIGKILL, 30 when unset and at most 120 on Fargate
# (https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_ContainerDefinition.html). With a load balancer ECS
# deregisters the task and waits out the deregistration delay before the SIGTERM
# (https://docs.aws.amazon.com/AmazonECS/latest/bestpracticesguide/load-balancer-connection-draining.html).
STOP_TIMEOUT_DEFAULT_S = 30
STOP_TIMEOUT_MAX_S = 120
SYNC_WAVE = "argocd.argoproj.io/sync-wave"
MANAGED_BY = {"app.kubernetes.io/managed-by": "serving-toolkit"}
ECS_GROUP = "ecs.services.k8s.aws"
AAS_GROUP = "applicationautoscaling.services.k8s.aws"
DIMENSION = "ecs:service:DesiredCount"
# The native API and ACK spell these members differently; everything else only loses its leading capital.
ACK_NAMES = {
    "taskRoleArn": "taskRoleARN",
    "executionRoleArn": "executionRoleARN",
    "targetGroupArn": "targetGroupARN",
    "awsvpcConfiguration": "awsVPCConfiguration",
    "assignPublicIp": "assignPublicIP",
    "serviceName": "name",
    "ResourceId": "resourceID",
}


class EcsLoadBalancer(StrictModel):
    """The Application Load Balancer target group an app's tasks register with."""

    load_balancer_arn: Annotated[
        str,
        Field(pattern=ELB_ARN + r"loadbalancer/app/[A-Za-z0-9-]{1,32}/[0-9a-f]{16}$", description="The ALB's ARN."),
    ]
    target_group_arn: Annotated[
        str,
        Field(
            pattern=ELB_ARN + r"targetgroup/[A-Za-z0-9-]{1,32}/[0-9a-f]{16}$",
            description="The target group's ARN (target type ip); its health check is configured on the group.",
        ),
    ]

    @property
    def resource_label(self) -> str:
        """`app/<alb>/<id>/targetgroup/<tg>/<id>`: how ALBRequestCountPerTarget names the target group."""
        alb = self.load_balancer_arn.split(":loadbalancer/", 1)[1]
        group = self.target_group_arn.split(":", 5)[5]
        return f"{alb}/{group}"


class EcsScaling(StrictModel):
    """Target tracking on each service's task count."""

    metric: Annotated[
        Literal["cpu", "alb_requests"],
        Field(default="cpu", description="cpu: average CPU utilization; alb_requests: ALB requests per task."),
    ]
    cpu_percent: Annotated[
        float, Field(default=70, gt=0, le=100, description="Average CPU utilization to hold, percent (metric cpu).")
    ]
    requests_per_target: Annotated[
        int | None,
        Field(default=None, ge=1, le=1_000_000, description="ALB requests per task per minute (metric alb_requests)."),
    ]

    @model_validator(mode="after")
    def requests_per_target_iff_alb_requests(self) -> EcsScaling:
        if (self.requests_per_target is not None) != (self.metric == "alb_requests"):
            raise rule_error(
                "requests_per_target_iff_alb_requests",
                field="requests_per_target",
                got=self.requests_per_target,
                rule=f"requests_per_target goes with metric alb_requests, and the metric is {self.metric}",
                hint="set metric: alb_requests with requests_per_target, or drop requests_per_target",
                related=("metric",),
            )
        return self


class EcsTargetConfig(TargetConfigBase):
    """Run each app as an ECS service, driven by ACK from a management cluster (or by the native bodies)."""

    secret_store_kind: ClassVar[str] = "aws_secrets_manager"  # noqa: S105 - a store name, not a secret
    cluster_kinds: ClassVar[tuple[str, ...]] = ("ecs",)

    kind: Annotated[Literal["ecs"], Field(description="Target discriminator.")]
    cluster: Annotated[
        str,
        Field(
            description="Cluster name from clusters/clusters.yaml (kind ecs): the ECS cluster's name; its"
            " argocd_destination is the management cluster running the ACK controllers."
        ),
    ]
    namespace: Annotated[K8sName, Field(description="Namespace of the ACK objects on the management cluster.")]
    capacity: Annotated[
        Literal["fargate", "ec2"],
        Field(default="fargate", description="Launch type; GPU tasks need ec2 (container instances with GPUs)."),
    ]
    task_role_arn: Annotated[
        str,
        Field(
            pattern=aws_iam.ROLE_ARN_PATTERN,
            description="Role the tasks assume; rendered (ACK IAM) with read on the model prefixes only.",
        ),
    ]
    execution_role_arn: Annotated[
        str,
        Field(
            pattern=aws_iam.ROLE_ARN_PATTERN,
            description="Role ECS uses to pull the image, write logs and read secrets.",
        ),
    ]
    subnets: Annotated[
        list[Annotated[str, Field(pattern=r"^subnet-[0-9a-f]{8,17}$")]],
        Field(min_length=1, max_length=16, description="Subnets of the tasks' network interfaces (awsvpc)."),
    ]
    security_groups: Annotated[
        list[Annotated[str, Field(pattern=r"^sg-[0-9a-f]{8,17}$")]],
        Field(min_length=1, max_length=5, description="Security groups of the tasks' network interfaces."),
    ]
    assign_public_ip: Annotated[
        bool, Field(default=False, description="Give tasks a public IP (public subnets without a NAT gateway).")
    ]
    scaling: Annotated[
        EcsScaling, Field(default_factory=EcsScaling, description="Target tracking of every autoscaled service.")
    ]
    load_balancers: Annotated[
        dict[K8sName, EcsLoadBalancer],
        Field(default_factory=dict, description="App name → the ALB target group its tasks register with."),
    ]

    @field_validator("task_role_arn")
    @classmethod
    def role_in_cluster_account(cls, value: str, info: ValidationInfo) -> str:
        aws_iam.check_role_account(value, info, "")
        return value

    def spec_errors(self, spec: Spec) -> Iterator[PydanticCustomError]:
        """The ECS rules: no GPU on Fargate, tasks that fit, secret ARNs, load balancers that name apps."""
        yield from _fargate_has_no_gpu(self, spec)
        yield from _task_fits(self, spec)
        yield from _secrets_are_arns(spec)
        yield from _load_balancers_name_apps(self, spec)


def _fargate_has_no_gpu(target: EcsTargetConfig, spec: Spec) -> Iterator[PydanticCustomError]:
    if target.capacity != "fargate":
        return
    for i, app in enumerate(spec.apps):
        for j, deployment in enumerate(app.deployments):
            if deployment.ray_actor_options.num_gpus > 0:
                yield rule_error(
                    "ecs_fargate_has_no_gpu",
                    field=f"apps.{i}.deployments.{j}.ray_actor_options.num_gpus",
                    got=deployment.ray_actor_options.num_gpus,
                    rule="Fargate has no GPUs, and env.target.capacity is fargate",
                    hint="set env.target.capacity: ec2 (tasks then run on the GPU worker group's node_type)"
                    " or num_gpus: 0",
                    related=("env.target.capacity",),
                )


def _task_fits(target: EcsTargetConfig, spec: Spec) -> Iterator[PydanticCustomError]:
    largest_cpu = max(FARGATE_SIZES) / 1024
    largest_gib = max(FARGATE_SIZES[max(FARGATE_SIZES)]) / 1024
    for i, app in enumerate(spec.apps):
        size = single_node.app_size(spec, app)
        if target.capacity == "fargate" and (size.cpus > largest_cpu or size.memory_gib > largest_gib):
            yield rule_error(
                "ecs_task_fits_fargate",
                field=f"apps.{i}.deployments",
                got=f"{size.cpus:g} CPU / {size.memory_gib:g} GiB",
                rule=f"a task ({size.explain()}) exceeds Fargate's largest, {largest_cpu:g} CPU / {largest_gib:g} GiB",
                hint="lower the replicas' num_cpus or memory_gib, split the app, or set env.target.capacity: ec2",
                related=size_related(i, len(app.deployments)),
            )
        if target.capacity == "ec2" and size.whole_gpus:
            gpu_deployment = next(d for d in app.deployments if d.ray_actor_options.num_gpus > 0)
            group = single_node.worker_group_for(spec, gpu_deployment)
            if not group.num_gpus:
                continue  # no GPU group: the spec rule gpu_needs_gpu_worker_group reports it
            if size.cpus > group.num_cpus or size.memory_gib > group.memory_gib or size.whole_gpus > group.num_gpus:
                yield rule_error(
                    "ecs_task_fits_node",
                    field=f"apps.{i}.deployments",
                    got=f"{size.cpus:g} CPU / {size.memory_gib:g} GiB / {size.whole_gpus} GPU",
                    rule=f"a task ({size.explain()}) does not fit one {group.node_type} of worker group {group.name}"
                    f" ({group.num_cpus} CPU / {group.memory_gib:g} GiB / {group.num_gpus} GPU)",
                    hint="lower the replicas' resources or give the GPU worker group a larger node_type",
                    related=size_related(i, len(app.deployments)),
                )


def _secrets_are_arns(spec: Spec) -> Iterator[PydanticCustomError]:
    scopes = [("env.secrets", spec.env.secrets)] + [(f"apps.{i}.secrets", a.secrets) for i, a in enumerate(spec.apps)]
    for scope, secrets in scopes:
        for var, ref in secrets.items():
            arn = ref.aws_secrets_manager
            if arn is not None and not re.match(SECRETS_MANAGER_ARN_PATTERN, arn):
                yield rule_error(
                    "ecs_secrets_are_arns",
                    field=f"{scope}.{var}.aws_secrets_manager",
                    got=arn,
                    rule="ECS reads a Secrets Manager secret by its full ARN only",
                    hint="use the ARN that `aws secretsmanager describe-secret --secret-id <name>` prints",
                )


def _load_balancers_name_apps(target: EcsTargetConfig, spec: Spec) -> Iterator[PydanticCustomError]:
    names = [a.name for a in spec.apps]
    for name in sorted(set(target.load_balancers) - set(names)):
        yield rule_error(
            "ecs_load_balancers_name_apps",
            field=f"env.target.load_balancers.{name}",
            got=name,
            rule="load_balancers is keyed by app name, and there is no such app",
            hint=f"use one of: {', '.join(names)}",
        )
    if target.scaling.metric == "alb_requests":
        for i, app in enumerate(spec.apps):
            low, high = single_node.task_count(app)
            if low != high and app.name not in target.load_balancers:
                yield rule_error(
                    "ecs_alb_scaling_needs_load_balancer",
                    field="env.target.scaling.metric",
                    got="alb_requests",
                    rule=f"app {app.name} autoscales on ALB requests per target but has no load balancer",
                    hint=f"add env.target.load_balancers.{app.name}, or scale on metric: cpu",
                    related=(f"apps.{i}.deployments",),
                )


def fargate_size(cpus: float, memory_gib: float) -> tuple[int, int]:
    """The smallest Fargate (CPU units, MiB) that holds `cpus` and `memory_gib`."""
    units, mib = math.ceil(cpus * 1024), math.ceil(memory_gib * 1024)
    for cpu, memories in sorted(FARGATE_SIZES.items()):
        if cpu >= units:
            fitting = [m for m in memories if m >= mib]
            if fitting:
                return cpu, fitting[0]
    raise ValueError(f"no Fargate size holds {cpus} CPU and {memory_gib} GiB")  # refused by ecs_task_fits_fargate


def task_resources(target: EcsTargetConfig, size: single_node.AppSize) -> tuple[int, int]:
    """(CPU units, MiB) of a task: a Fargate size on Fargate, the exact need (128-unit minimum) on EC2."""
    if target.capacity == "fargate":
        return fargate_size(size.cpus, size.memory_gib)
    return max(128, math.ceil(size.cpus * 1024)), math.ceil(size.memory_gib * 1024)


def stop_timeout_s(plan: EnvPlan) -> int:
    """The container's stopTimeout: long enough for a request of request_timeout_s to finish and for the entry
    point to stop Serve and Ray after it, never below ECS's default nor above its maximum."""
    request_timeout_s = plan.spec.env.serve.request_timeout_s
    if request_timeout_s is None:
        return STOP_TIMEOUT_DEFAULT_S
    needed = math.ceil(request_timeout_s + STOP_RESERVE_S)
    return min(STOP_TIMEOUT_MAX_S, max(STOP_TIMEOUT_DEFAULT_S, needed))


def service_name(plan: EnvPlan, app: App) -> str:
    """The ECS service (and task family prefix) of an app: `<env>-<app>`, unique in a shared cluster."""
    return f"{plan.name}-{app.name}"


def _tags(plan: EnvPlan, app: App) -> list[dict[str, str]]:
    return [
        {"key": "serving.toolkit/app", "value": app.name},
        {"key": "serving.toolkit/env", "value": plan.name},
        {"key": "serving.toolkit/ray-version", "value": plan.spec.env.ray_version},
    ]


def _secret_value_from(arn: str, key: str | None) -> str:
    # ECS's form for one JSON key: <arn>:<json-key>:<version-stage>:<version-id>, empty parts meaning current.
    return arn if key is None else f"{arn}:{key}::"


def register_task_definition(plan: EnvPlan, app_plan: AppPlan) -> dict[str, Any]:
    """The RegisterTaskDefinition body of one app; its family ends in a hash of the rest of the body."""
    target = target_of(plan, EcsTargetConfig)
    app = app_plan.app
    size = single_node.app_size(plan.spec, app)
    cpu_units, memory_mib = task_resources(target, size)
    port = single_node.serve_port(plan)
    stop_timeout = stop_timeout_s(plan)
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": plan.spec.env.image,
        "essential": True,
        "cpu": cpu_units,
        "memory": memory_mib,
        "entryPoint": ["/bin/sh", "-c"],
        "command": [single_node.start_script(size, stop_timeout)],
        "stopTimeout": stop_timeout,
        "environment": single_node.container_env(plan, app_plan, cpu_units / 1024),
        "portMappings": [{"containerPort": port, "protocol": "tcp", "name": "http", "appProtocol": "http"}],
        "healthCheck": {
            "command": [
                "CMD",
                "python",
                "-c",
                f"import urllib.request; urllib.request.urlopen('{single_node.health_url(plan, app)}', timeout=4)",
            ],
            "interval": 30,
            "timeout": 5,
            "retries": 3,
            "startPeriod": HEALTH_START_PERIOD_S,
        },
        "logConfiguration": {
            "logDriver": "awslogs",
            "options": {
                "awslogs-group": f"/ecs/serving/{plan.name}",
                "awslogs-region": plan.cluster.region,
                "awslogs-stream-prefix": app.name,
                "awslogs-create-group": "true",
            },
        },
    }
    secrets = [
        {"name": var, "valueFrom": _secret_value_from(ref.aws_secrets_manager, ref.key)}
        for var, ref in sorted(app_plan.secrets.items())
        if ref.aws_secrets_manager is not None
    ]
    if secrets:
        container["secrets"] = secrets
    if size.whole_gpus:
        container["resourceRequirements"] = [{"type": "GPU", "value": str(size.whole_gpus)}]
    if target.capacity == "ec2":
        # Ray's object store lives in /dev/shm; Docker's default of 64 MiB would push it to disk.
        container["linuxParameters"] = {"sharedMemorySize": int(single_node.OBJECT_STORE_GIB * 1024)}
    body: dict[str, Any] = {
        "containerDefinitions": [container],
        "cpu": str(cpu_units),
        "memory": str(memory_mib),
        "networkMode": "awsvpc",
        "requiresCompatibilities": [target.capacity.upper()],
        "runtimePlatform": {"cpuArchitecture": "X86_64", "operatingSystemFamily": "LINUX"},
        "taskRoleArn": target.task_role_arn,
        "executionRoleArn": target.execution_role_arn,
        "tags": _tags(plan, app),
    }
    if target.capacity == "ec2" and size.whole_gpus:
        gpu_deployment = next(d for d in app.deployments if d.ray_actor_options.num_gpus > 0)
        node_type = single_node.worker_group_for(plan.spec, gpu_deployment).node_type
        body["placementConstraints"] = [
            {"type": "memberOf", "expression": f"attribute:ecs.instance-type == {node_type}"}
        ]
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:10]
    return {"family": f"{service_name(plan, app)}-{digest}", **body}


def create_service(plan: EnvPlan, app_plan: AppPlan, family: str) -> dict[str, Any]:
    """The CreateService body of one app. desiredCount is the fixed count, or for an autoscaled app its most tasks.

    ACK's ECS controller has no way to leave desiredCount to Application Auto Scaling: it compares the count in the
    Service object with AWS's (aws-controllers-k8s/ecs-controller pkg/resource/service/delta.go), and every update
    it sends, a rollout's new task definition included, carries the whole spec, count too (sdk.go
    newUpdateRequestPayload); after each call it writes AWS's answer back into the object (aws-controllers-k8s/runtime
    pkg/runtime/reconciler.go, patchResourceMetadataAndSpec). So each update resets an autoscaled service to the
    count it was created with. Created at the most tasks, that reset adds capacity instead of removing it, and the
    autoscaler scales back in after its cooldown.
    """
    target = target_of(plan, EcsTargetConfig)
    app = app_plan.app
    low, high = single_node.task_count(app)
    body: dict[str, Any] = {
        "cluster": plan.cluster.name,
        "serviceName": service_name(plan, app),
        "taskDefinition": family,
        "desiredCount": high if _autoscaled(app) else low,
        "launchType": target.capacity.upper(),
        "networkConfiguration": {
            "awsvpcConfiguration": {
                "subnets": list(target.subnets),
                "securityGroups": list(target.security_groups),
                "assignPublicIp": "ENABLED" if target.assign_public_ip else "DISABLED",
            }
        },
        "deploymentConfiguration": {
            "deploymentCircuitBreaker": {"enable": True, "rollback": True},
            "maximumPercent": 200,
            "minimumHealthyPercent": 100,
        },
        "enableECSManagedTags": True,
        "propagateTags": "SERVICE",
        "tags": _tags(plan, app),
    }
    balancer = target.load_balancers.get(app.name)
    if balancer is not None:
        body["loadBalancers"] = [
            {
                "targetGroupArn": balancer.target_group_arn,
                "containerName": CONTAINER,
                "containerPort": single_node.serve_port(plan),
            }
        ]
        body["healthCheckGracePeriodSeconds"] = HEALTH_START_PERIOD_S
    return body


def _resource_id(plan: EnvPlan, app: App) -> str:
    return f"service/{plan.cluster.name}/{service_name(plan, app)}"


def register_scalable_target(plan: EnvPlan, app: App) -> dict[str, Any]:
    """The RegisterScalableTarget body: the service's task count between the app's fewest and most tasks."""
    low, high = single_node.task_count(app)
    return {
        "ServiceNamespace": "ecs",
        "ResourceId": _resource_id(plan, app),
        "ScalableDimension": DIMENSION,
        "MinCapacity": low,
        "MaxCapacity": high,
    }


def put_scaling_policy(plan: EnvPlan, app: App) -> dict[str, Any]:
    """The PutScalingPolicy body: target tracking on CPU or on ALB requests per task."""
    target = target_of(plan, EcsTargetConfig)
    delays = single_node.scaling_delays(app)
    assert delays is not None
    scale_out, scale_in = delays
    metric: dict[str, Any]
    if target.scaling.metric == "cpu":
        metric = {"PredefinedMetricType": "ECSServiceAverageCPUUtilization"}
        value = float(target.scaling.cpu_percent)
    else:
        metric = {
            "PredefinedMetricType": "ALBRequestCountPerTarget",
            "ResourceLabel": target.load_balancers[app.name].resource_label,
        }
        value = float(target.scaling.requests_per_target or 0)
    return {
        "PolicyName": f"{service_name(plan, app)}-{target.scaling.metric.replace('_', '-')}",
        "ServiceNamespace": "ecs",
        "ResourceId": _resource_id(plan, app),
        "ScalableDimension": DIMENSION,
        "PolicyType": "TargetTrackingScaling",
        "TargetTrackingScalingPolicyConfiguration": {
            "TargetValue": value,
            "PredefinedMetricSpecification": metric,
            "ScaleOutCooldown": math.ceil(scale_out),
            "ScaleInCooldown": math.ceil(scale_in),
        },
    }


def ack_spec(body: Any) -> Any:
    """A native API body as ACK spells it: lower-case first letter, and ACK's own names for a few members."""
    if isinstance(body, dict):
        return {ACK_NAMES.get(key, key[:1].lower() + key[1:]): ack_spec(value) for key, value in body.items()}
    if isinstance(body, list):
        return [ack_spec(item) for item in body]
    return body


def _ack(plan: EnvPlan, api_version: str, kind: str, name: str, wave: int, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": api_version, "kind": kind, "metadata": _ack_metadata(plan, name, wave), "spec": spec}


def _ack_metadata(plan: EnvPlan, name: str, wave: int) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": target_of(plan, EcsTargetConfig).namespace,
        "labels": {**MANAGED_BY, "serving.toolkit/env": plan.name},
        "annotations": {SYNC_WAVE: str(wave), "services.k8s.aws/region": plan.cluster.region},
    }


def _autoscaled(app: App) -> bool:
    """Whether Application Auto Scaling scales the app's task count (its range is not a single count)."""
    low, high = single_node.task_count(app)
    return low != high


def _app_objects(plan: EnvPlan, app_plan: AppPlan) -> tuple[list[NativeBody], list[dict[str, Any]]]:
    app = app_plan.app
    task_definition = register_task_definition(plan, app_plan)
    service = create_service(plan, app_plan, task_definition["family"])
    native = [NativeBody(app.name, "ecs.RegisterTaskDefinition", task_definition)]
    native.append(NativeBody(app.name, "ecs.CreateService", service))
    task_definition_object = task_definition["family"].removeprefix(f"{plan.name}-")
    ack_service = {k: v for k, v in ack_spec(service).items() if k != "taskDefinition"}
    ack_service["taskDefinitionRef"] = {"from": {"name": task_definition_object}}
    manifests = [
        _ack(plan, f"{ECS_GROUP}/v1alpha1", "TaskDefinition", task_definition_object, 0, ack_spec(task_definition)),
        _ack(plan, f"{ECS_GROUP}/v1alpha1", "Service", app.name, 1, ack_service),
    ]
    if _autoscaled(app):
        target_body = register_scalable_target(plan, app)
        policy = put_scaling_policy(plan, app)
        native.append(NativeBody(app.name, "application-autoscaling.RegisterScalableTarget", target_body))
        native.append(NativeBody(app.name, "application-autoscaling.PutScalingPolicy", policy))
        manifests.append(_ack(plan, f"{AAS_GROUP}/v1alpha1", "ScalableTarget", app.name, 2, ack_spec(target_body)))
        manifests.append(_ack(plan, f"{AAS_GROUP}/v1alpha1", "ScalingPolicy", app.name, 3, ack_spec(policy)))
    return native, manifests


def _sizing(plan: EnvPlan, app: App) -> list[str]:
    target = target_of(plan, EcsTargetConfig)
    size = single_node.app_size(plan.spec, app)
    cpu_units, memory_mib = task_resources(target, size)
    lines = [
        f"{app.name}: task {cpu_units} CPU units / {memory_mib} MiB on {target.capacity}"
        + (f" with {size.whole_gpus} whole GPU(s) for {size.gpus:g} requested" if size.gpus else "")
        + f": {size.explain()}",
        f"{app.name}: tasks {single_node.count_explanation(app)}",
    ]
    delays = single_node.scaling_delays(app)
    if delays is not None and single_node.task_count(app)[0] != single_node.task_count(app)[1]:
        lines.append(
            f"{app.name}: scale-out cooldown {math.ceil(delays[0])} s, scale-in cooldown {math.ceil(delays[1])} s"
        )
    return lines


# An ALB closes a client or target connection on which no data was sent or received for its idle timeout (60 s by
# default: render.spec.models.ALB_IDLE_TIMEOUT_S), which takes 1-4000 s; AWS documents no response buffering for an
# ALB, only this timeout. docs.aws.amazon.com/elasticloadbalancing/latest/application/edit-load-balancer-attributes.html
# ("Connection idle timeout").
ALB_IDLE_TIMEOUT_RANGE_S = (1, 4000)


def _streaming(plan: EnvPlan) -> list[str]:
    from render.spec.models import ALB_IDLE_TIMEOUT_S  # not at the top: render.spec.models imports the targets

    target = target_of(plan, EcsTargetConfig)
    lines = []
    for app_plan in streaming.streaming_apps(plan):
        app = app_plan.app
        lines.append(streaming.proxy_line(plan, app_plan))
        low, high = ALB_IDLE_TIMEOUT_RANGE_S
        if app.name in target.load_balancers:
            lines.append(
                f"{app.name}: clients reach it through the ALB of env.target.load_balancers.{app.name} (yours, not"
                " rendered). Its connection idle timeout (load balancer attribute idle_timeout.timeout_seconds,"
                f" {ALB_IDLE_TIMEOUT_S} s unless changed, {low}-{high} s) closes a connection on which no byte moved"
                " for that long: the first token, every gap between tokens and a whole POST /generate answer (nothing"
                " is sent before its text is complete) must come within it. AWS documents no response buffering for"
                " an ALB; a stream through one is not tested here"
            )
        else:
            lines.append(
                f"{app.name}: no load balancer in env.target.load_balancers: clients reach the tasks directly, and"
                " only the proxy's timeout above bounds a stream"
            )
        if _autoscaled(app):
            lines.append(
                f"{app.name}: ALBRequestCountPerTarget counts requests as they arrive, not how long they last: tasks"
                " busy with long streams look no busier than tasks answering short requests; metric: cpu follows the"
                " decoding work instead"
                if target.scaling.metric == "alb_requests"
                else f"{app.name}: target tracking on CPU ({target.scaling.cpu_percent:g} %) follows the decoding"
                " work, streams included"
            )
        if app.name in target.load_balancers:
            # docs.aws.amazon.com/AmazonECS/latest/bestpracticesguide/load-balancer-connection-draining.html: ECS
            # deregisters a stopping task and waits out the target group's deregistration delay before its SIGTERM;
            # docs.aws.amazon.com/elasticloadbalancing/latest/application/load-balancer-target-groups.html: 300 s by
            # default, during which the ALB lets in-flight requests complete.
            lines.append(
                f"{app.name}: before a stopping task gets its SIGTERM, ECS deregisters it from the target group and"
                " waits out the group's deregistration delay (300 s unless changed), in which its streams in flight"
                " go on"
            )
        stop = stop_timeout_s(plan)
        platform = (
            f"{stop - STOP_RESERVE_S:g} s (the container's stopTimeout, {stop} s, less {STOP_RESERVE_S:g} s to stop"
            " Serve and Ray)"
        )
        lines.append(streaming.drain_line(app_plan, "a task", platform))
    return lines


def _parity(target: EcsTargetConfig) -> dict[str, Honour]:
    per_task = "the task is one Ray node sized from the app's deployments (see Sizing)"
    gpu = (
        refused("values above 0, by ecs_fargate_has_no_gpu: Fargate has no GPUs; set capacity: ec2")
        if target.capacity == "fargate"
        else approximated("fractional GPU → whole GPUs per task (resourceRequirements GPU); Ray shares them inside")
    )
    scaling = (
        f"target tracking on average CPU {target.scaling.cpu_percent:g} %"
        if target.scaling.metric == "cpu"
        else f"target tracking on {target.scaling.requests_per_target} ALB requests per task per minute"
    )
    return {
        **secret_parity(
            aws=exact("container secrets[].valueFrom (full ARN; ecs_secrets_are_arns), read by the execution role"),
            gcp=refused("by secrets_match_target_store: ECS reads AWS Secrets Manager"),
            key=exact("valueFrom `<arn>:<key>::` (one JSON key of the secret)"),
        ),
        "env.ray_version": approximated("not set by the target: the image's Ray runs; recorded as a task tag"),
        "env.serve.throughput_optimized": exact(single_node.THROUGHPUT_PARITY),
        "env.serve.warm_workers": ignored(single_node.WARM_WORKERS_PARITY),
        **single_node.slo_alerts_parity(
            "CloudWatch alarms on the load balancer's p95 TargetResponseTime and target 5XX count",
            "a CloudWatch agent or ADOT collector beside the task scraping it, and a CloudWatch alarm on its p95",
        ),
        "head_group.num_cpus": ignored(f"no separate head: {per_task}, plus a fixed Ray overhead"),
        "head_group.memory_gib": ignored(f"no separate head: {per_task}, plus a fixed Ray overhead"),
        "head_group.node_type": ignored("no separate head: ignored"),
        "head_group.node_selector": ignored("no Kubernetes nodes: ignored"),
        "worker_groups[].name": approximated("names the group whose memory per CPU sizes replicas without memory_gib"),
        "worker_groups[].node_type": (
            approximated("placement constraint ecs.instance-type for GPU tasks")
            if target.capacity == "ec2"
            else ignored("Fargate picks the host: ignored")
        ),
        "worker_groups[].accelerator": approximated("through the GPU group's node_type; ECS asks only for a count"),
        "worker_groups[].min_replicas": approximated("no Ray nodes: task count per service replaces node count"),
        "worker_groups[].max_replicas": approximated("no Ray nodes: task count per service replaces node count"),
        "worker_groups[].num_cpus": approximated("Ray worker groups → task size; checked only for GPU tasks on EC2"),
        "worker_groups[].memory_gib": approximated("memory per CPU for replicas without memory_gib (see Sizing)"),
        "worker_groups[].num_gpus": approximated("Ray worker groups → task size; checked only for GPU tasks on EC2"),
        "worker_groups[].node_selector": ignored("no Kubernetes nodes: ignored"),
        "worker_groups[].tolerations[].key": ignored("no Kubernetes taints: ignored"),
        "worker_groups[].tolerations[].operator": ignored("no Kubernetes taints: ignored"),
        "worker_groups[].tolerations[].value": ignored("no Kubernetes taints: ignored"),
        "worker_groups[].tolerations[].effect": ignored("no Kubernetes taints: ignored"),
        "apps[].deployments[].num_replicas": approximated(
            "one replica per task; fixed counts → task count (the largest of the app's deployments)"
        ),
        "apps[].deployments[].autoscaling_config.min_replicas": approximated(
            "per-deployment autoscaling → per-service task count: MinCapacity is the largest min of the app"
        ),
        "apps[].deployments[].autoscaling_config.max_replicas": approximated(
            "per-deployment autoscaling → per-service task count: MaxCapacity is the largest max of the app"
        ),
        "apps[].deployments[].autoscaling_config.target_ongoing_requests": ignored(
            f"Application Auto Scaling cannot see Serve's queue: {scaling} instead"
        ),
        "apps[].deployments[].autoscaling_config.upscale_delay_s": approximated(
            "ScaleOutCooldown: the quickest upscale_delay_s of the app"
        ),
        "apps[].deployments[].autoscaling_config.downscale_delay_s": approximated(
            "ScaleInCooldown: the slowest downscale_delay_s of the app"
        ),
        "apps[].deployments[].ray_actor_options.num_cpus": approximated(
            "in the Serve config exactly; summed into the task's CPU (Fargate rounds up)"
        ),
        "apps[].deployments[].ray_actor_options.num_gpus": gpu,
        "apps[].deployments[].ray_actor_options.memory_gib": approximated(
            "in the Serve config exactly; summed into the task's memory (Fargate rounds up)"
        ),
    }


def build(plan: EnvPlan) -> TargetOutput:
    """Native bodies and ACK objects for every app of one environment."""
    target = target_of(plan, EcsTargetConfig)
    native: list[NativeBody] = []
    # The tasks' role, reading the models only; the execution role (image, logs, secrets) stays the user's.
    manifests = aws_iam.role_objects(
        plan,
        target.task_role_arn,
        lambda account, partition: aws_iam.ecs_task_trust(plan.cluster, account, partition),
        lambda name, wave: _ack_metadata(plan, name, wave),
    )
    serve_configs: dict[str, str] = {}
    sizing: list[str] = []
    for app_plan in plan.apps:
        app_native, app_manifests = _app_objects(plan, app_plan)
        native += app_native
        manifests += app_manifests
        serve_configs[f"{app_native[0].path}: {single_node.SERVE_CONFIG_ENV}"] = single_node.serve_config_text(
            plan, app_plan
        )
        sizing += _sizing(plan, app_plan.app)
    # Argo CD leaves the count of each autoscaled service alone, by name: a kind-wide ignore also froze the count
    # of fixed-count services, so a new count in git was never applied.
    ignore = [
        {"group": ECS_GROUP, "kind": "Service", "name": a.app.name, "jsonPointers": ["/spec/desiredCount"]}
        for a in plan.apps
        if _autoscaled(a.app)
    ]
    return TargetOutput(
        manifests=manifests,
        serve_configs=serve_configs,
        parity=_parity(target),
        native=native,
        ignore_differences=ignore,
        sizing=sizing,
        streaming=_streaming(plan),
    )
