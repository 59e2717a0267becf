"""The ECS target's native bodies against a local AWS API over HTTP: moto in server mode (LocalStack's free
edition has no ECS). The fixture env `fargate` is rendered with subnets and a security group that exist in the
emulator, its bodies are sent as they are, and what the API answers is compared with what was rendered.

moto 5.2 keeps neither deploymentConfiguration nor enableECSManagedTags of a service (it answers without them):
those are checked against botocore's model in tests/unit/render/test_ecs.py, not here.
"""

from __future__ import annotations

import json
import shutil
import socket
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
import yaml
from moto.server import ThreadedMotoServer

from render.pipeline import render_repo
from tests.golden_tree import TARGETS_REPO

REGION = "eu-west-1"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="session")
def aws() -> Iterator[dict[str, Any]]:
    """boto3 client arguments for a moto server on a free local port (started, and ready, for the session)."""
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()  # returns once the server accepts requests
    try:
        yield {
            "endpoint_url": f"http://127.0.0.1:{port}",
            "region_name": REGION,
            "aws_access_key_id": "testing",
            "aws_secret_access_key": "testing",
        }
    finally:
        server.stop()


@pytest.fixture(scope="session")
def rendered(aws: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The `fargate` env rendered with a subnet and a security group that exist in the emulator."""
    ec2 = boto3.client("ec2", **aws)
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
    group = ec2.create_security_group(GroupName="serving", Description="Ray Serve tasks", VpcId=vpc)["GroupId"]
    repo = tmp_path_factory.mktemp("moto") / "repo"
    shutil.copytree(TARGETS_REPO, repo)
    env_file = repo / "deployments/fargate/env.yaml"
    env = yaml.safe_load(env_file.read_text())
    env["env"]["target"].update(subnets=[subnet], security_groups=[group])
    env_file.write_text(yaml.safe_dump(env))
    return render_repo(repo, None, ["fargate"]).files


def body(rendered: dict[str, str], app: str, api: str) -> dict[str, Any]:
    return json.loads(rendered[f"fargate/native/{app}/{api}.json"])


@pytest.mark.parametrize("app", ["echo", "echo-two"])
def test_task_definition_round_trips(aws: dict[str, Any], rendered: dict[str, str], app: str) -> None:
    ecs = boto3.client("ecs", **aws)
    sent = body(rendered, app, "ecs.RegisterTaskDefinition")
    ecs.register_task_definition(**sent)
    answer = ecs.describe_task_definition(taskDefinition=sent["family"], include=["TAGS"])
    stored = answer["taskDefinition"]
    for key in ("family", "cpu", "memory", "networkMode", "requiresCompatibilities", "runtimePlatform"):
        assert stored[key] == sent[key], key
    assert (stored["taskRoleArn"], stored["executionRoleArn"]) == (sent["taskRoleArn"], sent["executionRoleArn"])
    assert answer["tags"] == sent["tags"]
    (container,) = stored["containerDefinitions"]
    (rendered_container,) = sent["containerDefinitions"]
    for key in ("name", "image", "cpu", "memory", "entryPoint", "command", "environment", "secrets"):
        assert container[key] == rendered_container[key], key
    for key in ("healthCheck", "logConfiguration"):
        assert container[key] == rendered_container[key], key
    assert [(p["containerPort"], p["protocol"]) for p in container["portMappings"]] == [(8000, "tcp")]


@pytest.mark.parametrize("app", ["echo", "echo-two"])
def test_service_round_trips(aws: dict[str, Any], rendered: dict[str, str], app: str) -> None:
    ecs = boto3.client("ecs", **aws)
    task_definition = body(rendered, app, "ecs.RegisterTaskDefinition")
    latest = ecs.register_task_definition(**task_definition)["taskDefinition"]["taskDefinitionArn"]
    sent = body(rendered, app, "ecs.CreateService")
    ecs.create_cluster(clusterName=sent["cluster"])
    ecs.create_service(**sent)
    (stored,) = ecs.describe_services(cluster=sent["cluster"], services=[sent["serviceName"]], include=["TAGS"])[
        "services"
    ]
    assert stored["serviceName"] == sent["serviceName"]
    assert stored["launchType"] == sent["launchType"]
    assert stored["desiredCount"] == sent["desiredCount"]
    assert stored["networkConfiguration"] == sent["networkConfiguration"]
    assert stored["taskDefinition"] == latest  # a family without a revision means its latest one
    assert stored["propagateTags"] == sent["propagateTags"]
    assert stored["tags"] == sent["tags"]


def test_scaling_round_trips(aws: dict[str, Any], rendered: dict[str, str]) -> None:
    aas = boto3.client("application-autoscaling", **aws)
    target = body(rendered, "echo", "application-autoscaling.RegisterScalableTarget")
    policy = body(rendered, "echo", "application-autoscaling.PutScalingPolicy")
    aas.register_scalable_target(**target)
    aas.put_scaling_policy(**policy)
    (stored_target,) = aas.describe_scalable_targets(ServiceNamespace="ecs", ResourceIds=[target["ResourceId"]])[
        "ScalableTargets"
    ]
    assert {k: stored_target[k] for k in target} == target
    (stored_policy,) = aas.describe_scaling_policies(ServiceNamespace="ecs", PolicyNames=[policy["PolicyName"]])[
        "ScalingPolicies"
    ]
    assert {k: stored_policy[k] for k in policy} == policy
    assert len(stored_policy["Alarms"]) == 2  # target tracking made its high and low alarms


def test_the_round_trips_cover_every_native_body(rendered: dict[str, str]) -> None:
    sent = {
        f"fargate/native/{app}/{api}.json"
        for app in ("echo", "echo-two")
        for api in ("ecs.RegisterTaskDefinition", "ecs.CreateService")
    } | {
        "fargate/native/echo/application-autoscaling.RegisterScalableTarget.json",
        "fargate/native/echo/application-autoscaling.PutScalingPolicy.json",
    }
    assert {p for p in rendered if "/native/" in p} == sent
