"""The IAM the targets render: the workloads' role reads the environment's models and nothing else."""

from __future__ import annotations

import json
import shutil
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import pytest
import yaml

from render.cli import main
from render.pipeline import render_repo
from render.spec.load import load_clusters, load_specs
from tests.golden_tree import FIXTURE_REPO

ROOT = Path(__file__).resolve().parents[3]
IAM = "iam.services.k8s.aws/v1alpha1"


@pytest.fixture(scope="module")
def repo_objects() -> dict[str, list[dict[str, Any]]]:
    """Every environment's rendered objects, from this repository's deployments/."""
    rendered = render_repo(ROOT, None)
    objects: dict[str, list[dict[str, Any]]] = {}
    for path, text in rendered.files.items():
        env, _, name = path.partition("/")
        if name.endswith(".yaml"):
            objects.setdefault(env, []).append(yaml.safe_load(text))
    return objects


def of_kind(objects: list[dict[str, Any]], api_version: str, kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["apiVersion"] == api_version and o["kind"] == kind]


def s3_models(env: str) -> list[str]:
    """`bucket/key` of every s3:// model the environment's spec serves."""
    spec = load_specs(ROOT, [env])[env]
    return sorted(
        app.model.uri.removeprefix("s3://") for app in spec.apps if app.model and app.model.uri.startswith("s3://")
    )


AWS_ENVS = ["dev", "bench", "staging", "prod", "staging-ecs", "staging-cloudrun"]


@pytest.mark.parametrize("env", AWS_ENVS)
def test_policy_grants_get_object_on_the_model_folders_only(
    env: str, repo_objects: dict[str, list[dict[str, Any]]]
) -> None:
    models = s3_models(env)
    policies = of_kind(repo_objects[env], IAM, "Policy")
    if not models:
        assert policies == []
        return
    [policy] = policies
    document = json.loads(policy["spec"]["policyDocument"])
    [statement] = document["Statement"]
    assert statement["Effect"] == "Allow"
    assert statement["Action"] == ["s3:GetObject"]
    resources = [r.removeprefix("arn:aws:s3:::") for r in statement["Resource"]]
    # Each model is readable, each grant is one model's folder: no bucket-wide or wildcard-bucket grant.
    assert all(any(fnmatchcase(model, r) for r in resources) for model in models)
    assert sorted(r.removesuffix("*") for r in resources) == sorted({m.rpartition("/")[0] + "/" for m in models})
    assert all("*" not in r.split("/")[0] for r in resources)


@pytest.mark.parametrize("env", ["dev", "bench", "staging", "prod"])
def test_eks_role_trusts_only_the_workers_service_account(
    env: str, repo_objects: dict[str, list[dict[str, Any]]]
) -> None:
    objects = repo_objects[env]
    # The head's account has no AWS role (it runs no replica); the workers' one has the model-read role.
    [account] = [
        a
        for a in of_kind(objects, "v1", "ServiceAccount")
        if "annotations" in a["metadata"] and "eks.amazonaws.com/role-arn" in a["metadata"]["annotations"]
    ]
    [role] = of_kind(objects, IAM, "Role")
    spec = load_specs(ROOT, [env])[env]
    cluster = load_clusters(ROOT)[spec.env.target.cluster]
    issuer = cluster.oidc_issuer
    assert account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"] == (
        f"arn:aws:iam::{cluster.account}:role{role['spec']['path']}{role['spec']['name']}"
    )
    [statement] = json.loads(role["spec"]["assumeRolePolicyDocument"])["Statement"]
    assert statement["Principal"] == {"Federated": f"arn:aws:iam::{cluster.account}:oidc-provider/{issuer}"}
    assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
    namespace, name = account["metadata"]["namespace"], account["metadata"]["name"]
    assert statement["Condition"]["StringEquals"] == {
        f"{issuer}:sub": f"system:serviceaccount:{namespace}:{name}",
        f"{issuer}:aud": "sts.amazonaws.com",
    }


def test_ecs_task_role_trusts_ecs_tasks_of_its_account_only(repo_objects: dict[str, list[dict[str, Any]]]) -> None:
    objects = repo_objects["staging-ecs"]
    [role] = of_kind(objects, IAM, "Role")
    task_roles = {o["spec"]["taskRoleARN"] for o in of_kind(objects, "ecs.services.k8s.aws/v1alpha1", "TaskDefinition")}
    assert task_roles == {f"arn:aws:iam::222222222222:role{role['spec']['path']}{role['spec']['name']}"}
    [statement] = json.loads(role["spec"]["assumeRolePolicyDocument"])["Statement"]
    assert statement["Principal"] == {"Service": "ecs-tasks.amazonaws.com"}
    assert statement["Condition"] == {
        "StringEquals": {"aws:SourceAccount": "222222222222"},
        "ArnLike": {"aws:SourceArn": "arn:aws:ecs:eu-west-1:222222222222:*"},
    }


@pytest.mark.parametrize("env", AWS_ENVS)
def test_role_attaches_its_environments_policy_and_nothing_else(
    env: str, repo_objects: dict[str, list[dict[str, Any]]]
) -> None:
    objects = repo_objects[env]
    [role] = of_kind(objects, IAM, "Role")
    policies = of_kind(objects, IAM, "Policy")
    assert "policies" not in role["spec"]  # no managed policy by ARN: only what is rendered here
    assert role["spec"].get("policyRefs", []) == [{"from": {"name": p["metadata"]["name"]}} for p in policies]
    waves = {o["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"] for o in [role, *policies]}
    workload_waves = {
        int(o["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"])
        for o in objects
        if o["apiVersion"] != IAM and "annotations" in o["metadata"]
    }
    assert waves == {"-1"} and min(workload_waves) > -1  # the role exists before anything runs as it


def test_cloud_run_role_trusts_only_its_service_accounts_google_tokens(
    repo_objects: dict[str, list[dict[str, Any]]],
) -> None:
    spec = load_specs(ROOT, ["staging-cloudrun"])["staging-cloudrun"]
    target = spec.env.target
    [role] = of_kind(repo_objects["staging-cloudrun"], IAM, "Role")
    assert f"arn:aws:iam::222222222222:role{role['spec']['path']}{role['spec']['name']}" == target.aws_role_arn
    [statement] = json.loads(role["spec"]["assumeRolePolicyDocument"])["Statement"]
    assert statement["Principal"] == {"Federated": "accounts.google.com"}
    assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
    unique_id = target.service_account_unique_id
    assert statement["Condition"] == {
        "StringEquals": {
            "accounts.google.com:aud": unique_id,
            "accounts.google.com:sub": unique_id,
            "accounts.google.com:oaud": "sts.amazonaws.com",
        }
    }


def test_two_environments_owning_one_role_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(FIXTURE_REPO, repo)
    prod = repo / "deployments/prod/env.yaml"
    data = yaml.safe_load(prod.read_text())
    data["env"]["target"].update(cluster="eks-test")
    del data["head_group"]  # eks-test's nodes carry no `pool` label
    data["env"]["target"]["service_account"]["iam_role_arn"] = "arn:aws:iam::111111111111:role/serving-dev"
    prod.write_text(yaml.safe_dump(data))
    assert main(["--root", str(repo), "render"]) == 1
    err = capsys.readouterr().err
    assert "environments dev and prod both render IAM account 111111111111 role /serving-dev" in err
    assert "Traceback" not in err
    assert not (repo / "rendered").exists()


def test_iam_objects_keep_their_aws_role_when_deleted(repo_objects: dict[str, list[dict[str, Any]]]) -> None:
    # A cascade from Argo CD must never delete a running workload's identity in IAM.
    objects = [o for env in repo_objects.values() for o in env if o["apiVersion"].startswith(IAM)]
    assert objects
    assert all(o["metadata"]["annotations"]["services.k8s.aws/deletion-policy"] == "retain" for o in objects)
