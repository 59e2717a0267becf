"""The Argo CD health scripts, run by a real Lua 5.1 (Argo CD's gopher-lua speaks 5.1) on sample statuses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lupa.lua51 as lua51
import pytest
import yaml

from render.argocd_health import health_scripts

KEY = "resource.customizations.health."
RAYSERVICE = KEY + "ray.io_RayService"
ECS_SERVICE = KEY + "ecs.services.k8s.aws_Service"
ACK_KINDS = [
    KEY + "ecs.services.k8s.aws_Service",
    KEY + "ecs.services.k8s.aws_TaskDefinition",
    KEY + "applicationautoscaling.services.k8s.aws_ScalableTarget",
    KEY + "applicationautoscaling.services.k8s.aws_ScalingPolicy",
    KEY + "iam.services.k8s.aws_Role",
    KEY + "iam.services.k8s.aws_Policy",
]
REPO = Path(__file__).resolve().parents[3]


def run_health(key: str, obj: dict[str, Any]) -> tuple[str, str]:
    """(status, message) that the script under key returns for obj, in a VM stripped of what Argo CD's VM does
    not open (it opens base, table, package and a reduced os): no string library nor string methods."""
    lua = lua51.LuaRuntime(unpack_returned_tuples=True)
    lua.execute("debug.setmetatable('', nil); string, math, io, os, debug = nil, nil, nil, nil, nil")
    lua.globals().obj = lua.table_from(obj, recursive=True)
    hs = lua.execute(health_scripts()[key])
    return hs["status"], hs["message"]


def condition(type_: str, status: str, reason: str = "", message: str = "") -> dict[str, str]:
    return {"type": type_, "status": status, "reason": reason, "message": message}


def app_status(status: str, message: str = "", **deployments: dict[str, str]) -> dict[str, Any]:
    return {"status": status, "message": message, "serveDeploymentStatuses": deployments}


def minimal_rayservice(**status: Any) -> dict[str, Any]:
    """A RayService that the operator has observed and reports Ready, with status fields replaced."""
    base: dict[str, Any] = {
        "observedGeneration": 2,
        "conditions": [
            condition("Ready", "True", "NonZeroServeEndpoints", "Number of serve endpoints is greater than 0"),
            condition("UpgradeInProgress", "False", "NoPendingCluster"),
        ],
        "activeServiceStatus": {
            "applicationStatuses": {"zero-shot": app_status("RUNNING"), "iris": app_status("RUNNING")}
        },
    }
    return {"metadata": {"name": "zero-shot-prod", "generation": 2}, "status": {**base, **status}}


def test_health_scripts_keys_are_argocd_cm_keys_sorted() -> None:
    keys = list(health_scripts())
    assert keys == sorted([RAYSERVICE, *ACK_KINDS])


def test_every_ack_kind_rendered_has_a_health_script() -> None:
    """Without one, Argo CD calls an ACK object healthy the moment it exists, before AWS accepted it."""
    rendered = set()
    for path in (REPO / "rendered").rglob("*.yaml"):
        for document in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            group = document["apiVersion"].rpartition("/")[0]
            if group.endswith(".services.k8s.aws"):
                rendered.add(f"{KEY}{group}_{document['kind']}")
    assert rendered, "no ACK object under rendered/"
    assert rendered <= set(health_scripts())


def test_rayservice_without_status_is_progressing() -> None:
    assert run_health(RAYSERVICE, {"metadata": {"name": "s", "generation": 1}}) == (
        "Progressing",
        "Waiting for RayService status",
    )


def test_rayservice_not_yet_observed_is_progressing() -> None:
    status, message = run_health(RAYSERVICE, minimal_rayservice(observedGeneration=1))
    assert status == "Progressing"
    assert "generation 2" in message


def test_rayservice_ready_is_healthy() -> None:
    assert run_health(RAYSERVICE, minimal_rayservice())[0] == "Healthy"


@pytest.mark.parametrize("app_state", ["DEPLOY_FAILED", "UNHEALTHY"])
def test_rayservice_failed_active_app_is_degraded_naming_it(app_state: str) -> None:
    apps = {"zero-shot": app_status(app_state, "ImportError: no module serve_apps"), "iris": app_status("RUNNING")}
    status, message = run_health(RAYSERVICE, minimal_rayservice(activeServiceStatus={"applicationStatuses": apps}))
    assert status == "Degraded"
    assert f"Serve application zero-shot (active cluster) is {app_state}: ImportError: no module serve_apps" in message
    assert "iris" not in message


def test_rayservice_failed_pending_app_is_degraded_during_upgrade() -> None:
    rayservice = minimal_rayservice(
        conditions=[
            condition("Ready", "True"),
            condition("UpgradeInProgress", "True", "BothActivePendingClustersExist"),
        ],
        pendingServiceStatus={"applicationStatuses": {"iris": app_status("DEPLOY_FAILED", "bad sha256")}},
    )
    status, message = run_health(RAYSERVICE, rayservice)
    assert status == "Degraded"
    assert "Serve application iris (pending cluster) is DEPLOY_FAILED: bad sha256" in message


def test_rayservice_unhealthy_app_names_its_unhealthy_deployment() -> None:
    apps = {
        "zero-shot": app_status(
            "UNHEALTHY",
            Classifier={"status": "UNHEALTHY", "message": "replica died"},
            Tokenizer={"status": "HEALTHY", "message": ""},
        )
    }
    status, message = run_health(RAYSERVICE, minimal_rayservice(activeServiceStatus={"applicationStatuses": apps}))
    assert status == "Degraded"
    assert (
        message
        == "Serve application zero-shot (active cluster) is UNHEALTHY: deployment Classifier UNHEALTHY: replica died"
    )


def test_rayservice_reports_every_failed_app_in_sorted_order() -> None:
    apps = {"b-app": app_status("UNHEALTHY", "b down"), "a-app": app_status("DEPLOY_FAILED", "a down")}
    _, message = run_health(RAYSERVICE, minimal_rayservice(activeServiceStatus={"applicationStatuses": apps}))
    assert message.index("a-app") < message.index("b-app")


def test_rayservice_upgrade_in_progress_is_progressing() -> None:
    rayservice = minimal_rayservice(
        conditions=[
            condition("Ready", "True"),
            condition("UpgradeInProgress", "True", "BothActivePendingClustersExist"),
        ]
    )
    assert run_health(RAYSERVICE, rayservice) == (
        "Progressing",
        "Upgrade in progress: BothActivePendingClustersExist",
    )


def test_rayservice_initializing_is_progressing() -> None:
    rayservice = minimal_rayservice(
        conditions=[condition("Ready", "False", "Initializing", "RayService is initializing")],
        activeServiceStatus={},
    )
    assert run_health(RAYSERVICE, rayservice) == ("Progressing", "Initializing: RayService is initializing")


@pytest.mark.parametrize("reason", ["ZeroServeEndpoints", "InitializingTimeout"])
def test_rayservice_not_ready_after_initializing_is_degraded_with_reason(reason: str) -> None:
    rayservice = minimal_rayservice(conditions=[condition("Ready", "False", reason, "no endpoints")])
    assert run_health(RAYSERVICE, rayservice) == ("Degraded", f"{reason}: no endpoints")


def test_rayservice_without_ready_condition_waits() -> None:
    rayservice = minimal_rayservice(conditions=[])
    assert run_health(RAYSERVICE, rayservice) == ("Progressing", "Waiting for RayService status")


def ack_resource(*conditions: dict[str, str], **status: Any) -> dict[str, Any]:
    return {"metadata": {"name": "zero-shot"}, "status": {"conditions": list(conditions), **status}}


@pytest.mark.parametrize("key", ACK_KINDS)
def test_ack_terminal_is_degraded_with_message(key: str) -> None:
    obj = ack_resource(
        condition("ACK.ResourceSynced", "True"),
        condition("ACK.Terminal", "True", message="InvalidParameterException: family is invalid"),
    )
    assert run_health(key, obj) == ("Degraded", "ACK.Terminal: InvalidParameterException: family is invalid")


@pytest.mark.parametrize("key", ACK_KINDS)
def test_ack_recoverable_is_degraded_with_message(key: str) -> None:
    obj = ack_resource(
        condition("ACK.ResourceSynced", "False"),
        condition("ACK.Recoverable", "True", message="AccessDeniedException: not authorized"),
    )
    assert run_health(key, obj) == ("Degraded", "ACK.Recoverable: AccessDeniedException: not authorized")


@pytest.mark.parametrize("key", ACK_KINDS)
@pytest.mark.parametrize("synced_by", ["ACK.ResourceSynced", "Ready"])
def test_ack_synced_is_healthy(key: str, synced_by: str) -> None:
    obj = ack_resource(condition(synced_by, "True", message="Resource synced successfully"))
    assert run_health(key, obj) == ("Healthy", "Resource synced successfully")


@pytest.mark.parametrize("key", ACK_KINDS)
def test_ack_synced_before_ready_is_healthy_with_the_synced_message(key: str) -> None:
    obj = ack_resource(
        condition("Ready", "False", message="not ready"), condition("ACK.ResourceSynced", "True", "Synced")
    )
    assert run_health(key, obj) == ("Healthy", "Synced")


@pytest.mark.parametrize("key", ACK_KINDS)
def test_ack_not_synced_is_progressing_with_its_message(key: str) -> None:
    obj = ack_resource(condition("ACK.ResourceSynced", "False", message="Resource not synced"))
    assert run_health(key, obj) == ("Progressing", "Resource not synced")


@pytest.mark.parametrize("key", ACK_KINDS)
def test_ack_without_status_is_progressing(key: str) -> None:
    status, message = run_health(key, {"metadata": {"name": "zero-shot"}})
    assert status == "Progressing"
    assert "Waiting for the ACK controller" in message


def ecs_deployment(running: int, desired: int, rollout: str = "IN_PROGRESS", reason: str = "") -> dict[str, Any]:
    return {
        "id": "ecs-svc/123",
        "status": "PRIMARY",
        "runningCount": running,
        "desiredCount": desired,
        "rolloutState": rollout,
        "rolloutStateReason": reason,
    }


def test_ecs_service_synced_with_tasks_starting_is_progressing() -> None:
    old = {**ecs_deployment(2, 2, "COMPLETED"), "status": "ACTIVE", "id": "ecs-svc/old"}
    obj = ack_resource(condition("ACK.ResourceSynced", "True"), deployments=[old, ecs_deployment(1, 3)])
    assert run_health(ECS_SERVICE, obj) == ("Progressing", "1 of 3 tasks running")


def test_ecs_service_synced_with_all_tasks_running_is_healthy() -> None:
    obj = ack_resource(condition("ACK.ResourceSynced", "True"), deployments=[ecs_deployment(3, 3, "COMPLETED")])
    assert run_health(ECS_SERVICE, obj)[0] == "Healthy"


def test_ecs_service_failed_rollout_is_degraded_with_reason() -> None:
    failed = ecs_deployment(0, 2, "FAILED", "ECS deployment circuit breaker: tasks failed to start.")
    obj = ack_resource(condition("ACK.ResourceSynced", "True"), deployments=[failed])
    assert run_health(ECS_SERVICE, obj) == (
        "Degraded",
        "Deployment ecs-svc/123 failed: ECS deployment circuit breaker: tasks failed to start.",
    )


@pytest.mark.parametrize("reason", ["ValidationFailed", "InitializingTimeout"])
def test_rayservice_refused_spec_is_degraded_though_its_generation_is_not_observed(reason: str) -> None:
    # KubeRay leaves observedGeneration behind when it refuses a spec: this must not read as "waiting".
    refused = condition("Ready", "False", reason, "spec.serveConfigV2 is invalid")
    status, message = run_health(RAYSERVICE, minimal_rayservice(observedGeneration=1, conditions=[refused]))
    prefix = "KubeRay refused the RayService: " if reason == "ValidationFailed" else ""
    assert (status, message) == ("Degraded", f"{prefix}{reason}: spec.serveConfigV2 is invalid")
