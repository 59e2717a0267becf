"""KubeRay: the head and the workers have their own service accounts; prod keeps its head's state in Redis."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from render.pipeline import render_repo
from tests.golden_tree import render_fixture
from tests.unit.render.conftest import edit, problems

PROD = "deployments/prod/env.yaml"


def test_workers_do_not_share_the_heads_service_account() -> None:
    files = render_fixture()
    service = yaml.safe_load(files["prod/ray.io.RayService-models.yaml"])["spec"]["rayClusterConfig"]
    head_account = service["headGroupSpec"]["template"]["spec"]["serviceAccountName"]
    worker_accounts = {g["template"]["spec"]["serviceAccountName"] for g in service["workerGroupSpecs"]}
    # KubeRay binds its Role (patch pods, patch RayClusters) to the head's account: no replica may run as it.
    assert head_account not in worker_accounts
    head = yaml.safe_load(files[f"prod/v1.ServiceAccount-{head_account}.yaml"])
    assert "eks.amazonaws.com/role-arn" not in head["metadata"]["annotations"]
    (worker_account,) = worker_accounts
    worker = yaml.safe_load(files[f"prod/v1.ServiceAccount-{worker_account}.yaml"])
    role_arn = worker["metadata"]["annotations"]["eks.amazonaws.com/role-arn"]
    role = yaml.safe_load(files[f"prod/iam.services.k8s.aws.Role-{role_arn.rsplit('/', 1)[1]}.yaml"])
    trust = json.loads(role["spec"]["assumeRolePolicyDocument"])
    (subject,) = [
        v for cond in trust["Statement"][0]["Condition"].values() for k, v in cond.items() if k.endswith(":sub")
    ]
    assert subject == f"system:serviceaccount:serving:{worker_account}"


def test_head_and_workers_with_one_account_are_refused(repo: Path) -> None:
    edit(repo, PROD, lambda d: d["env"]["target"].update(head_service_account="models"))
    [found] = problems(repo, ["prod"])
    assert found.startswith(
        "deployments/prod/env.yaml: env.target.head_service_account: got 'models'; the head's service account"
        " carries KubeRay's RBAC and must not be the workers' one"
    )


def test_prod_without_gcs_fault_tolerance_is_refused(repo: Path) -> None:
    edit(repo, PROD, lambda d: d["env"]["target"].pop("gcs_fault_tolerance"))
    [found] = problems(repo, ["prod"])
    assert found.startswith(
        "deployments/prod/env.yaml: env.target.gcs_fault_tolerance: got None; a prod RayService needs GCS fault"
        " tolerance"
    )


def test_gcs_fault_tolerance_renders_redis_and_its_password_secret() -> None:
    files = render_fixture()
    config = yaml.safe_load(files["prod/ray.io.RayService-models.yaml"])["spec"]["rayClusterConfig"]
    assert config["gcsFaultToleranceOptions"] == {
        "redisAddress": "redis-gcs.serving.svc:6379",
        "redisPassword": {"valueFrom": {"secretKeyRef": {"name": "ray-gcs-redis-password", "key": "value"}}},
        "externalStorageNamespace": "models-prod",
    }
    secret = yaml.safe_load(files["prod/external-secrets.io.ExternalSecret-ray-gcs-redis-password.yaml"])
    assert secret["spec"]["data"] == [{"secretKey": "value", "remoteRef": {"key": "serving/prod/redis-auth"}}]
    dev = yaml.safe_load(files["dev/ray.io.RayService-serving.yaml"])["spec"]["rayClusterConfig"]
    assert "gcsFaultToleranceOptions" not in dev


def test_redis_password_from_another_store_is_refused(repo: Path) -> None:
    edit(
        repo,
        PROD,
        lambda d: d["env"]["target"]["gcs_fault_tolerance"].update(redis_password={"gcp_secret_manager": "redis"}),
    )
    [found] = problems(repo, ["prod"])
    assert "env.target.gcs_fault_tolerance.redis_password: got {'gcp_secret_manager': 'redis'}" in found


def test_every_repo_environment_in_prod_has_gcs_fault_tolerance() -> None:
    root = Path(__file__).parents[3]
    files = render_repo(root, None, ["prod"]).files
    config = yaml.safe_load(files["prod/ray.io.RayService-serving.yaml"])["spec"]["rayClusterConfig"]
    assert config["gcsFaultToleranceOptions"]["redisAddress"]
