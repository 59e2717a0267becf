"""The ECS target: native bodies and ACK objects from the fixture envs `fargate` and `ec2-gpu`, their validation,
and the ECS spec rules (GPU on Fargate, task sizes, secret ARNs, load balancers)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from render.errors import RenderError
from render.pipeline import render_repo
from render.targets import ecs
from render.validate.aws import request_problems
from render.validate.serve import serve_config_problems
from render.write import read_tree
from tests.golden_tree import TARGETS_GOLDEN_DIR, TARGETS_REPO, differences, render_fixture
from tests.unit.render.conftest import deployment, edit, not_validated_notes, problems

CRDS = Path(__file__).parents[3].parent / "shared" / "crds"
FARGATE = "deployments/fargate/env.yaml"
EC2 = "deployments/ec2-gpu/env.yaml"


@pytest.fixture(scope="module")
def files() -> dict[str, str]:
    """The targets fixture repo, rendered once."""
    return render_fixture(TARGETS_REPO)


@pytest.fixture
def targets_repo(tmp_path: Path) -> Path:
    """A private copy of tests/fixtures/repo_targets."""
    shutil.copytree(TARGETS_REPO, tmp_path / "repo")
    return tmp_path / "repo"


def native(files: dict[str, str], env: str, app: str, api: str) -> dict[str, Any]:
    return json.loads(files[f"{env}/native/{app}/{api}.json"])


def ack(files: dict[str, str], env: str, kind: str, prefix: str = "") -> list[dict[str, Any]]:
    return [
        yaml.safe_load(text)
        for path, text in files.items()
        if path.startswith(f"{env}/") and f".{kind}-{prefix}" in path and path.endswith(".yaml")
    ]


def only_problem(repo: Path, envs: list[str]) -> str:
    found = problems(repo, envs)
    assert len(found) == 1, found
    return found[0]


def test_golden_tree() -> None:
    report = differences(render_fixture(TARGETS_REPO), read_tree(TARGETS_GOLDEN_DIR))
    assert not report, "rendered tree differs from tests/golden_targets (run `nox -s update_golden`):\n" + "\n".join(
        report
    )


@pytest.mark.parametrize(
    "api",
    [
        "ecs.RegisterTaskDefinition",
        "ecs.CreateService",
        "application-autoscaling.RegisterScalableTarget",
        "application-autoscaling.PutScalingPolicy",
    ],
)
def test_every_native_body_passes_botocore_and_the_documented_limits(files: dict[str, str], api: str) -> None:
    paths = [p for p in files if p.endswith(f"/{api}.json")]
    assert paths
    service, operation = api.split(".")
    for path in paths:
        assert request_problems(service, operation, json.loads(files[path])) == [], path


def test_every_task_runs_a_valid_single_app_serve_config(files: dict[str, str]) -> None:
    for path in [p for p in files if p.endswith("/ecs.RegisterTaskDefinition.json")]:
        (container,) = json.loads(files[path])["containerDefinitions"]
        (variable,) = [e for e in container["environment"] if e["name"] == "SERVE_CONFIG"]
        assert serve_config_problems(variable["value"]) == []
        config = yaml.safe_load(variable["value"])
        assert len(config["applications"]) == 1
        assert all(d["num_replicas"] == 1 for d in config["applications"][0]["deployments"])
        assert all("autoscaling_config" not in d for d in config["applications"][0]["deployments"])


@pytest.mark.skipif(not CRDS.is_dir(), reason="../shared/crds not found: CRD validation not exercised")
def test_ack_objects_pass_their_closed_crds() -> None:
    rendered = render_repo(TARGETS_REPO, CRDS, ["fargate", "ec2-gpu"])
    assert rendered.notes == not_validated_notes(rendered.files, CRDS)
    assert all(note.startswith("no CRD for v1 ") for note in rendered.notes), rendered.notes


@pytest.mark.skipif(not CRDS.is_dir(), reason="../shared/crds not found: CRD validation not exercised")
def test_a_field_spelt_as_the_api_spells_it_fails_the_ack_crd(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ecs, "ACK_NAMES", {k: v for k, v in ecs.ACK_NAMES.items() if k != "executionRoleArn"})
    with pytest.raises(
        RenderError, match=r"spec.executionRoleArn: unknown field. Hint: did you mean 'executionRoleARN'"
    ):
        render_repo(TARGETS_REPO, CRDS, ["fargate"])


def test_fargate_task_size_is_a_fargate_size_with_strings_at_task_level(files: dict[str, str]) -> None:
    body = native(files, "fargate", "echo", "ecs.RegisterTaskDefinition")
    # Echo: 1 CPU and (memory_gib unset) 1 x 16/4 GiB of worker group cpu, plus Ray's 0.5 CPU / 1.5 GiB.
    assert (body["cpu"], body["memory"]) == ("2048", "6144")
    (container,) = body["containerDefinitions"]
    assert (container["cpu"], container["memory"]) == (2048, 6144)
    assert body["requiresCompatibilities"] == ["FARGATE"]
    assert "resourceRequirements" not in container


def test_gpu_on_ec2_is_a_whole_gpu_per_task_on_the_gpu_group_node_type(files: dict[str, str]) -> None:
    body = native(files, "ec2-gpu", "echo", "ecs.RegisterTaskDefinition")
    (container,) = body["containerDefinitions"]
    assert container["resourceRequirements"] == [{"type": "GPU", "value": "1"}]
    assert body["placementConstraints"] == [
        {"type": "memberOf", "expression": "attribute:ecs.instance-type == g6.xlarge"}
    ]
    assert body["requiresCompatibilities"] == ["EC2"]
    assert "--num-gpus=1" in container["command"][0]
    assert container["linuxParameters"] == {"sharedMemorySize": 512}


def test_task_execs_the_draining_entry_point_with_the_config_in_its_environment(files: dict[str, str]) -> None:
    (container,) = native(files, "fargate", "echo", "ecs.RegisterTaskDefinition")["containerDefinitions"]
    assert container["entryPoint"] == ["/bin/sh", "-c"]
    assert container["command"] == [
        "printf '%s\\n' \"$SERVE_CONFIG\" > /tmp/serve-config.yaml && exec python -m serve_apps.entrypoint"
        " --grace-period-s=30 --num-cpus=1 --num-gpus=0 --memory=4294967296 --object-store-memory=536870912"
        " /tmp/serve-config.yaml"
    ]


def test_stop_timeout_is_the_grace_period_the_entry_point_drains_within(files: dict[str, str]) -> None:
    for app in ("echo", "echo-two"):
        (container,) = native(files, "fargate", app, "ecs.RegisterTaskDefinition")["containerDefinitions"]
        # request_timeout_s 10 plus the entry point's stop reserve is under ECS's default of 30 s.
        assert container["stopTimeout"] == 30
        assert "--grace-period-s=30 " in container["command"][0]


@pytest.mark.parametrize(("request_timeout_s", "stop_timeout_s"), [(None, 30), (60, 64), (600, 120)])
def test_stop_timeout_lets_the_longest_request_finish_within_ecs_limits(
    targets_repo: Path, request_timeout_s: float | None, stop_timeout_s: int
) -> None:
    edit(targets_repo, FARGATE, lambda data: data["env"]["serve"].update(request_timeout_s=request_timeout_s))
    files = render_repo(targets_repo, None, ["fargate"]).files
    (container,) = native(files, "fargate", "echo", "ecs.RegisterTaskDefinition")["containerDefinitions"]
    assert container["stopTimeout"] == stop_timeout_s
    assert f"--grace-period-s={stop_timeout_s} " in container["command"][0]


def test_secrets_health_check_and_logs(files: dict[str, str]) -> None:
    body = native(files, "fargate", "echo-two", "ecs.RegisterTaskDefinition")
    (container,) = body["containerDefinitions"]
    assert container["secrets"] == [
        {"name": "ECHO_TOKEN", "valueFrom": "arn:aws:secretsmanager:eu-west-1:111111111111:secret:serving/echo-XyZ012"},
        {
            "name": "PREDICTION_DB_URL",
            "valueFrom": "arn:aws:secretsmanager:eu-west-1:111111111111:secret:serving/db-AbCdEf:url::",
        },
    ]
    assert "http://127.0.0.1:8000/echo-two/healthz" in container["healthCheck"]["command"][-1]
    assert container["healthCheck"]["startPeriod"] == 300
    assert container["logConfiguration"]["logDriver"] == "awslogs"
    assert container["logConfiguration"]["options"]["awslogs-group"] == "/ecs/serving/fargate"
    assert body["taskRoleArn"].endswith(":role/serving-task")
    assert body["executionRoleArn"].endswith(":role/serving-execution")


def test_service_rolls_back_on_a_failed_deployment(files: dict[str, str]) -> None:
    service = native(files, "fargate", "echo", "ecs.CreateService")
    assert service["deploymentConfiguration"]["deploymentCircuitBreaker"] == {"enable": True, "rollback": True}
    task_definition = native(files, "fargate", "echo", "ecs.RegisterTaskDefinition")
    assert service["taskDefinition"] == task_definition["family"]


def test_autoscaling_tracks_cpu_at_70_percent_by_default(files: dict[str, str]) -> None:
    target = native(files, "fargate", "echo", "application-autoscaling.RegisterScalableTarget")
    assert (target["MinCapacity"], target["MaxCapacity"]) == (1, 2)
    assert target["ResourceId"] == "service/ecs-test/fargate-echo"
    policy = native(files, "fargate", "echo", "application-autoscaling.PutScalingPolicy")
    tracking = policy["TargetTrackingScalingPolicyConfiguration"]
    assert tracking["PredefinedMetricSpecification"] == {"PredefinedMetricType": "ECSServiceAverageCPUUtilization"}
    assert tracking["TargetValue"] == 70.0
    assert (tracking["ScaleOutCooldown"], tracking["ScaleInCooldown"]) == (30, 600)


def test_autoscaling_on_alb_requests_names_the_target_group(files: dict[str, str]) -> None:
    tracking = native(files, "ec2-gpu", "echo", "application-autoscaling.PutScalingPolicy")[
        "TargetTrackingScalingPolicyConfiguration"
    ]
    assert tracking["PredefinedMetricSpecification"] == {
        "PredefinedMetricType": "ALBRequestCountPerTarget",
        "ResourceLabel": "app/serving/0123456789abcdef/targetgroup/echo/fedcba9876543210",
    }
    assert tracking["TargetValue"] == 600.0
    service = native(files, "ec2-gpu", "echo", "ecs.CreateService")
    assert service["loadBalancers"][0]["containerPort"] == 8000
    assert service["healthCheckGracePeriodSeconds"] == 300


def test_a_fixed_app_has_no_scaling_objects(files: dict[str, str]) -> None:
    assert not [p for p in files if p.startswith("fargate/native/echo-two/application-autoscaling")]
    assert not ack(files, "fargate", "ScalableTarget", "echo-two")


def test_ack_objects_come_in_sync_waves_in_api_order(files: dict[str, str]) -> None:
    waves = {
        kind: int(ack(files, "fargate", kind, "echo")[0]["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"])
        for kind in ("TaskDefinition", "Service", "ScalableTarget", "ScalingPolicy")
    }
    assert waves == {"TaskDefinition": 0, "Service": 1, "ScalableTarget": 2, "ScalingPolicy": 3}


def test_ack_service_points_at_its_task_definition_object(files: dict[str, str]) -> None:
    (service,) = ack(files, "fargate", "Service", "echo.")  # the dot keeps echo-two out
    (task_definition,) = [
        t for t in ack(files, "fargate", "TaskDefinition", "echo-") if "two" not in t["metadata"]["name"]
    ]
    assert service["spec"]["taskDefinitionRef"] == {"from": {"name": task_definition["metadata"]["name"]}}
    assert "taskDefinition" not in service["spec"]
    assert service["spec"]["networkConfiguration"]["awsVPCConfiguration"]["assignPublicIP"] == "DISABLED"


def test_a_changed_task_is_a_new_family(targets_repo: Path) -> None:
    before = render_repo(targets_repo, None, ["fargate"]).files
    edit(targets_repo, FARGATE, lambda d: deployment(d, "echo").update(max_ongoing_requests=32))
    after = render_repo(targets_repo, None, ["fargate"]).files
    family = lambda files: json.loads(files["fargate/native/echo/ecs.RegisterTaskDefinition.json"])["family"]  # noqa: E731
    assert family(before) != family(after)
    assert family(after).startswith("fargate-echo-")


def test_argocd_ignores_the_desired_count_of_autoscaled_services_only_and_never_reads_native(
    files: dict[str, str],
) -> None:
    application = yaml.safe_load(files["argocd/argoproj.io.Application-serving-fargate.yaml"])
    # echo autoscales; echo-two has a fixed count, which a commit must still change.
    assert application["spec"]["ignoreDifferences"] == [
        {"group": "ecs.services.k8s.aws", "kind": "Service", "name": "echo", "jsonPointers": ["/spec/desiredCount"]}
    ]
    assert application["spec"]["source"]["directory"] == {"recurse": False, "exclude": "native/*"}
    assert application["spec"]["destination"] == {"name": "mgmt-eu", "namespace": "serving-fargate"}


def test_an_autoscaled_service_is_created_at_its_most_tasks(files: dict[str, str]) -> None:
    # ACK resends the Service's stored count on every update: a reset must add capacity, never remove it.
    echo = yaml.safe_load(files["fargate/ecs.services.k8s.aws.Service-echo.yaml"])
    target = yaml.safe_load(files["fargate/applicationautoscaling.services.k8s.aws.ScalableTarget-echo.yaml"])
    assert echo["spec"]["desiredCount"] == target["spec"]["maxCapacity"] == 2
    fixed = yaml.safe_load(files["fargate/ecs.services.k8s.aws.Service-echo-two.yaml"])
    assert fixed["spec"]["desiredCount"] == 1


def test_argocd_cm_carries_health_checks_for_every_ack_kind(files: dict[str, str]) -> None:
    data = yaml.safe_load(files["argocd/v1.ConfigMap-argocd-cm.yaml"])["data"]
    kinds = {
        f"{m['apiVersion'].split('/')[0]}_{m['kind']}"
        for path, text in files.items()
        if path.startswith(("fargate/", "ec2-gpu/")) and path.endswith(".yaml") and "/native/" not in path
        for m in [yaml.safe_load(text)]
    }
    assert {f"resource.customizations.health.{k}" for k in kinds} <= set(data)


def test_fargate_with_a_gpu_is_a_spec_error(targets_repo: Path) -> None:
    edit(targets_repo, FARGATE, lambda d: deployment(d, "echo").update(ray_actor_options={"num_gpus": 0.5}))
    edit(targets_repo, FARGATE, lambda d: d.update(worker_groups=[{"name": "gpu", **GPU_GROUP}]))
    assert only_problem(targets_repo, ["fargate"]) == (
        "deployments/fargate/env.yaml: apps[echo].deployments[Echo].ray_actor_options.num_gpus: got 0.5; Fargate has "
        "no GPUs, and env.target.capacity is fargate. Hint: set env.target.capacity: ec2 (tasks then run on the GPU "
        "worker group's node_type) or num_gpus: 0"
    )


GPU_GROUP = {
    "node_type": "g6.xlarge",
    "accelerator": "nvidia-l4",
    "min_replicas": 0,
    "max_replicas": 2,
    "num_cpus": 4,
    "memory_gib": 16,
    "num_gpus": 1,
}


def test_a_task_larger_than_fargate_allows_is_a_spec_error(targets_repo: Path) -> None:
    edit(targets_repo, FARGATE, lambda d: deployment(d, "echo").update(ray_actor_options={"num_cpus": 16}))
    message = only_problem(targets_repo, ["fargate"])
    assert message.startswith("deployments/fargate/env.yaml: apps[echo].deployments: got '16.5 CPU / 65.5 GiB'; a task")
    assert "exceeds Fargate's largest, 16 CPU / 120 GiB. Hint:" in message


def test_a_gpu_task_larger_than_its_node_is_a_spec_error(targets_repo: Path) -> None:
    edit(targets_repo, EC2, lambda d: deployment(d, "echo").update(ray_actor_options={"num_gpus": 0.25, "num_cpus": 4}))
    edit(targets_repo, EC2, lambda d: d["worker_groups"][0].update(max_replicas=4))  # KubeRay packing would fit
    message = only_problem(targets_repo, ["ec2-gpu"])
    assert "apps[echo].deployments: got '4.5 CPU / 17.5 GiB / 1 GPU'; a task" in message
    assert "does not fit one g6.xlarge of worker group gpu (4 CPU / 16 GiB / 1 GPU)" in message


def test_a_secret_named_not_by_arn_is_a_spec_error(targets_repo: Path) -> None:
    edit(targets_repo, FARGATE, lambda d: d["env"]["secrets"]["PREDICTION_DB_URL"].update(aws_secrets_manager="db"))
    assert only_problem(targets_repo, ["fargate"]).startswith(
        "deployments/fargate/env.yaml: env.secrets.PREDICTION_DB_URL.aws_secrets_manager: got 'db'; ECS reads a "
        "Secrets Manager secret by its full ARN only."
    )


def test_a_load_balancer_for_an_unknown_app_is_a_spec_error(targets_repo: Path) -> None:
    edit(
        targets_repo,
        EC2,
        lambda d: d["env"]["target"]["load_balancers"].update(ehco=d["env"]["target"]["load_balancers"]["echo"]),
    )
    assert "env.target.load_balancers.ehco: got 'ehco'; load_balancers is keyed by app name" in only_problem(
        targets_repo, ["ec2-gpu"]
    )


def test_alb_scaling_without_a_load_balancer_is_a_spec_error(targets_repo: Path) -> None:
    edit(targets_repo, EC2, lambda d: d["env"]["target"].update(load_balancers={}))
    assert "app echo autoscales on ALB requests per target but has no load balancer" in only_problem(
        targets_repo, ["ec2-gpu"]
    )


def test_requests_per_target_goes_with_alb_requests(targets_repo: Path) -> None:
    edit(targets_repo, FARGATE, lambda d: d["env"]["target"].update(scaling={"requests_per_target": 100}))
    assert "env.target.scaling.requests_per_target: got 100; requests_per_target goes with metric alb_requests" in (
        only_problem(targets_repo, ["fargate"])
    )


def test_an_ecs_target_needs_an_ecs_cluster(targets_repo: Path) -> None:
    edit(targets_repo, FARGATE, lambda d: d["env"]["target"].update(cluster="run-test"))
    assert only_problem(targets_repo, ["fargate"]) == (
        "deployments/fargate/env.yaml: env.target.cluster: got 'run-test'; an ecs target needs a cluster of kind ecs, "
        "and 'run-test' is of kind cloudrun. Hint: name an ecs cluster"
    )


def test_validator_reports_what_botocore_skips() -> None:
    body = {
        "family": "f",
        "containerDefinitions": [{"name": "c", "image": "i", "healthCheck": {"command": ["CMD"], "startPeriod": 301}}],
        "networkMode": "awsvpc",
        "requiresCompatibilities": ["FARGATE"],
        "cpu": "1024",
        "memory": "1024",
        "pidMode": "cluster",
    }
    assert request_problems("ecs", "RegisterTaskDefinition", body) == [
        "containerDefinitions[0].healthCheck.startPeriod: got 301; must be 0 to 300",
        "cpu, memory: got 1024, 1024; not a Fargate task size (see FARGATE_SIZES)",
        "pidMode: got 'cluster'; expected one of host, task",
    ]


def test_validator_reports_unknown_members_and_lengths_above_the_maximum() -> None:
    body = {
        "ServiceNamespace": "ecs",
        "ResourceId": "x" * 1601,
        "ScalableDimension": "ecs:service:DesiredCount",
        "MinCapacity": 1,
        "MaxCapcity": 2,
    }
    found = request_problems("application-autoscaling", "RegisterScalableTarget", body)
    assert "ResourceId: length 1601 is above the maximum 1600" in found
    assert any(p.startswith('Unknown parameter in input: "MaxCapcity"') for p in found)


def test_throughput_mode_sets_ray_serve_variables_in_the_task(targets_repo: Path) -> None:
    edit(targets_repo, FARGATE, lambda d: d["env"].setdefault("serve", {}).update(throughput_optimized=True))
    files = render_repo(targets_repo, None, ["fargate"]).files
    (path,) = [p for p in files if p.startswith("fargate/native/echo/") and p.endswith("RegisterTaskDefinition.json")]
    (container,) = json.loads(files[path])["containerDefinitions"]
    variables = {e["name"]: e["value"] for e in container["environment"]}
    assert variables["RAY_SERVE_THROUGHPUT_OPTIMIZED"] == variables["RAY_SERVE_ENABLE_HA_PROXY"] == "1"
    # One HAProxy thread per two CPUs of the task's container (render/plan.py).
    assert container["cpu"] / 1024 < 4 and variables["RAY_SERVE_HAPROXY_NBTHREAD"] == "1"
    assert request_problems("ecs", "RegisterTaskDefinition", json.loads(files[path])) == []


def test_throughput_mode_is_off_in_tasks_unless_stated(files: dict[str, str]) -> None:
    for path in [p for p in files if p.endswith("/ecs.RegisterTaskDefinition.json")]:
        (container,) = json.loads(files[path])["containerDefinitions"]
        names = [e["name"] for e in container["environment"]]
        assert names == ["SERVE_CONFIG", "MAX_REQUEST_BODY_BYTES", "RAY_preload_python_modules"]


def test_tasks_run_no_warm_workers_app_and_render_says_so(targets_repo: Path) -> None:
    edit(targets_repo, FARGATE, lambda d: d["env"].setdefault("serve", {}).update(warm_workers=2))
    rendered = render_repo(targets_repo, None, ["fargate"])
    paths = [p for p in rendered.files if p.endswith("/ecs.RegisterTaskDefinition.json")]
    assert paths
    for path in paths:
        (container,) = json.loads(rendered.files[path])["containerDefinitions"]
        (variable,) = [e for e in container["environment"] if e["name"] == "SERVE_CONFIG"]
        assert [a["name"] for a in yaml.safe_load(variable["value"])["applications"]] == [path.split("/")[2]]
    assert any(
        line.startswith(
            "warning: fargate: env.serve.warm_workers is set in deployments/fargate/env.yaml but ecs cannot honour it:"
            " not rendered"
        )
        for line in rendered.parity
    )
