"""The IAM role a target's workloads run as, allowed to read the environment's models and nothing else.

Rendered as AWS Controllers for Kubernetes (ACK) IAM objects, synced before the workloads (wave -1):
- a `Policy` granting s3:GetObject on the prefix of each s3:// model the environment serves (the folder of its
  key: `s3://acme-models/iris/x.onnx` → `arn:aws:s3:::acme-models/iris/*`); no ListBucket, no write, no other
  bucket. The artifact fetch needs nothing more: it reads one object by key and checks its sha256;
- the `Role` the spec names by ARN (its name and path come from the ARN), trusting only the workload that runs
  as it, with that policy attached: EKS pods through IRSA, ECS tasks, or a Cloud Run service account's Google
  ID tokens (google_trust).

The role reads no secret: ECS reads them with the execution role, and on EKS External Secrets Operator reads them
with its own identity. Models stored as file:// (baked into the image) need no statement; an environment without
s3:// models gets the role without a policy.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pydantic import ValidationInfo

from render.spec.clusters import Cluster
from render.spec.rules import rule_error

if TYPE_CHECKING:
    from render.plan import EnvPlan

API_VERSION = "iam.services.k8s.aws/v1alpha1"
DELETION_POLICY = "services.k8s.aws/deletion-policy"
WAVE = -1
# What the spec accepts as a role ARN (the ECS task and execution roles, the KubeRay service account's role).
ROLE_ARN_PATTERN = r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+$"
_ROLE_ARN = re.compile(
    r"^arn:(?P<partition>aws[a-z-]*):iam::(?P<account>\d{12}):role(?P<path>/(?:[^/]+/)*)(?P<name>[^/]+)$"
)

Metadata = Callable[[str, int], dict[str, Any]]


def model_read_resources(plan: EnvPlan, partition: str = "aws") -> list[str]:
    """S3 object ARNs (with a trailing `*` for a folder) of every s3:// model of the environment, sorted."""
    resources = set()
    for app_plan in plan.apps:
        model = app_plan.app.model
        if model is None or not model.uri.startswith("s3://"):
            continue
        bucket, _, key = model.uri.removeprefix("s3://").partition("/")
        folder, slash, _ = key.rpartition("/")
        resources.add(f"arn:{partition}:s3:::{bucket}/{folder}/*" if slash else f"arn:{partition}:s3:::{bucket}/{key}")
    return sorted(resources)


def models_read_policy(resources: list[str]) -> dict[str, Any]:
    """The policy document: read the model objects, nothing else."""
    return {
        "Version": "2012-10-17",
        "Statement": [{"Sid": "ReadModels", "Effect": "Allow", "Action": ["s3:GetObject"], "Resource": resources}],
    }


def ecs_task_trust(cluster: Cluster, account: str, partition: str) -> dict[str, Any]:
    """Trust for an ECS task role: ECS tasks of this account and region only (confused-deputy conditions)."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "ecs-tasks.amazonaws.com"},
                "Action": "sts:AssumeRole",
                "Condition": {
                    "StringEquals": {"aws:SourceAccount": account},
                    "ArnLike": {"aws:SourceArn": f"arn:{partition}:ecs:{cluster.region}:{account}:*"},
                },
            }
        ],
    }


def irsa_trust(cluster: Cluster, account: str, partition: str, namespace: str, service_account: str) -> dict[str, Any]:
    """Trust for IAM roles for service accounts (IRSA): one service account of one EKS cluster's OIDC issuer."""
    issuer = cluster.oidc_issuer
    if issuer is None:  # the clusters file's validator requires it for kind eks
        raise ValueError(f"cluster {cluster.name} has no oidc_issuer")
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Federated": f"arn:{partition}:iam::{account}:oidc-provider/{issuer}"},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {
                    "StringEquals": {
                        f"{issuer}:sub": f"system:serviceaccount:{namespace}:{service_account}",
                        f"{issuer}:aud": "sts.amazonaws.com",
                    }
                },
            }
        ],
    }


def google_trust(service_account_unique_id: str, audience: str) -> dict[str, Any]:
    """Trust for a Google Cloud service account (Cloud Run): its Google-issued ID token, for one audience, assumed
    with AssumeRoleWithWebIdentity; no OIDC provider object is needed for accounts.google.com.

    AWS, "Available keys for AWS web identity federation"
    (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_iam-condition-keys.html#condition-keys-wif):
    when a Google token has an `azp` claim, `accounts.google.com:aud` is matched against `azp` and
    `accounts.google.com:oaud` against the token's `aud`. A service account's metadata-server ID token carries
    `azp` = `sub` = the account's unique id and `aud` = the audience asked for, so all three are pinned; a token of
    any other service account, or for any other audience, is refused. Role setup: "Create a role for OpenID Connect
    federation" (https://docs.aws.amazon.com/IAM/latest/UserGuide/id_roles_create_for-idp_oidc.html).
    """
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Federated": "accounts.google.com"},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {
                    "StringEquals": {
                        "accounts.google.com:aud": service_account_unique_id,
                        "accounts.google.com:sub": service_account_unique_id,
                        "accounts.google.com:oaud": audience,
                    }
                },
            }
        ],
    }


def split_role_arn(role_arn: str) -> tuple[str, str, str, str]:
    """(partition, account, path, name) of an IAM role ARN."""
    match = _ROLE_ARN.fullmatch(role_arn)
    if match is None:
        raise ValueError(f"not an IAM role ARN: {role_arn}")
    return match["partition"], match["account"], match["path"], match["name"]


def check_role_account(role_arn: str, info: ValidationInfo, field: str) -> None:
    """Raise when the role the target renders is in another account than its cluster (ACK creates the role in the
    account it runs for, so the ARN the workloads are given would name a role that does not exist)."""
    clusters = (info.context or {}).get("clusters")
    cluster = clusters.get(info.data.get("cluster")) if clusters else None
    if cluster is None or cluster.kind not in ("eks", "ecs") or cluster.account is None:
        return
    _, account, _, _ = split_role_arn(role_arn)
    if account != cluster.account:
        raise rule_error(
            "role_in_cluster_account",
            field=field,
            got=role_arn,
            rule=f"the toolkit renders this role in cluster {cluster.name}'s account {cluster.account}, not {account}",
            hint=f"use arn:aws:iam::{cluster.account}:role/<name>",
        )


def role_objects(
    plan: EnvPlan, role_arn: str, trust: Callable[[str, str], dict[str, Any]], metadata: Metadata
) -> list[dict[str, Any]]:
    """The ACK Policy (when the environment has s3:// models) and Role; `trust(account, partition)` is its trust
    policy and `metadata(name, wave)` the target's object metadata."""
    partition, account, path, name = split_role_arn(role_arn)
    resources = model_read_resources(plan, partition)
    role_spec: dict[str, Any] = {
        "name": name,
        "path": path,
        "description": f"serving-toolkit {plan.name}: the workloads' identity; reads the models only",
        "assumeRolePolicyDocument": _json(trust(account, partition)),
        "maxSessionDuration": 3600,
    }
    objects = []
    if resources:
        policy_name = f"{name}-models-read"
        policy_object = _object_name(policy_name)
        objects.append(
            {
                "apiVersion": API_VERSION,
                "kind": "Policy",
                "metadata": _retained(metadata(policy_object, WAVE)),
                "spec": {
                    "name": policy_name,
                    "path": path,
                    "description": f"serving-toolkit {plan.name}: s3:GetObject on the model prefixes",
                    "policyDocument": _json(models_read_policy(resources)),
                },
            }
        )
        role_spec["policyRefs"] = [{"from": {"name": policy_object}}]
    role = {
        "apiVersion": API_VERSION,
        "kind": "Role",
        "metadata": _retained(metadata(_object_name(name), WAVE)),
        "spec": role_spec,
    }
    objects.append(role)
    return objects


def shared_roles(envs: dict[str, tuple[Cluster, list[dict[str, Any]]]]) -> list[str]:
    """One line per IAM role that more than one environment renders (env name → its cluster and manifests).

    Each environment's role trusts only its own workloads, so two environments owning one role would overwrite
    each other's trust policy on every sync.
    """
    owners: dict[str, list[str]] = {}
    for env, (cluster, manifests) in envs.items():
        for manifest in manifests:
            if manifest["apiVersion"] == API_VERSION and manifest["kind"] == "Role":
                role = f"account {cluster.account} role {manifest['spec']['path']}{manifest['spec']['name']}"
                owners.setdefault(role, []).append(env)
    return [
        f"environments {' and '.join(sorted(names))} both render IAM {role}; each environment's role trusts only"
        " its own workloads. Hint: give each environment its own role ARN (env.target.service_account.iam_role_arn"
        " on kuberay, env.target.task_role_arn on ecs, env.target.aws_role_arn on cloudrun)"
        for role, names in sorted(owners.items())
        if len(names) > 1
    ]


def _retained(metadata: dict[str, Any]) -> dict[str, Any]:
    """Metadata whose AWS resource outlives its Kubernetes object: with deletion-policy retain, ACK stops managing the
    role when the object is deleted instead of deleting it in IAM (aws-controllers-k8s/runtime
    apis/core/v1alpha1/deletion_policy.go), so a mistaken cascade never takes a running workload's identity."""
    return {**metadata, "annotations": {**metadata.get("annotations", {}), DELETION_POLICY: "retain"}}


def _object_name(iam_name: str) -> str:
    # IAM names allow capitals and + = , . @ _ which Kubernetes object names do not.
    return re.sub(r"[^a-z0-9.-]+", "-", iam_name.lower()).strip("-.")


def _json(document: dict[str, Any]) -> str:
    # Sorted keys and fixed separators: the rendered text, hence Argo CD's diff, changes only with the policy.
    return json.dumps(document, indent=2, sort_keys=True)
