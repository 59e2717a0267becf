"""Cost estimate: hand-computed arithmetic on the fixture's prod, ECS and Cloud Run tasks, missing prices."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from render.cli import main
from render.cost import Prices, env_cost, load_prices
from render.errors import SpecError
from render.pipeline import render_repo
from render.resources import applied_manifests
from tests.golden_tree import FIXTURE_REPO

PRICES_YAML = """\
region: test-1
hours_per_month: 730
ec2_instance_types:
  - {name: m6i.large, vcpu: 2, memory_gib: 8, usd_per_hour: 0.1, source: test, as_of: 2026-01-01}
  - {name: m6i.xlarge, vcpu: 4, memory_gib: 16, usd_per_hour: 0.2, source: test, as_of: 2026-01-01}
  - {name: g6.2xlarge, vcpu: 8, memory_gib: 32, gpus: 1, gpu_type: nvidia-l4, usd_per_hour: 1.0,
     source: test, as_of: 2026-01-01}
fargate: {usd_per_vcpu_hour: 0.04, usd_per_gb_hour: 0.005, source: test, as_of: 2026-01-01}
cloud_run:
  usd_per_vcpu_second: 0.00002
  usd_per_gib_second: 0.000002
  usd_per_gpu_second: 0.0002
  gpu_type: nvidia-l4
  source: test
  as_of: 2026-01-01
"""


def minimal_prices(tmp_path: Path, text: str = PRICES_YAML) -> Prices:
    """Round prices: m6i.large $0.1/h, m6i.xlarge $0.2/h, g6.2xlarge $1/h; 730 h a month."""
    (tmp_path / "clusters").mkdir(exist_ok=True)
    (tmp_path / "clusters/prices.yaml").write_text(text)
    return load_prices(tmp_path)


def fixture_prod() -> list[dict[str, Any]]:
    return applied_manifests(render_repo(FIXTURE_REPO, None, ["prod"]).files, "prod")


def test_kuberay_nodes_at_min_and_max(tmp_path: Path) -> None:
    # head 2 CPU / 8 GiB -> one m6i.large: 0.1 * 730 = 73; cpu group 1..3 x m6i.xlarge: 146..438; gpu 0..1: 0..730.
    target = env_cost("prod", fixture_prod(), minimal_prices(tmp_path)).targets[0]
    assert [(line.name, line.count, round(line.usd_min, 2), round(line.usd_max, 2)) for line in target.lines] == [
        ("head pod (2 CPU, 8 GiB)", "1 × m6i.large", 73.0, 73.0),
        ("worker group cpu", "1–3 × m6i.xlarge", 146.0, 438.0),
        ("worker group gpu", "0–1 × g6.2xlarge", 0.0, 730.0),
    ]
    assert (round(target.usd_min, 2), round(target.usd_max, 2)) == (219.0, 1241.0)


def test_apps_share_the_cluster_by_what_their_replicas_reserve(tmp_path: Path) -> None:
    # min: echo 1 replica (1 CPU, 0.25 GPU), echo-two 2 x 1 CPU. GPU pool 0; CPU pool 146 all to echo-two (the only
    # CPU-only replicas); head 73 by CPUs 1:2 -> echo 24.33, echo-two 48.67.
    # max: echo 4 replicas -> GPU pool 730 to echo; echo-two 3 -> CPU pool 438; head 73 by CPUs 4:3.
    target = env_cost("prod", fixture_prod(), minimal_prices(tmp_path)).targets[0]
    shares = {a.name: (a.count, round(a.usd_min, 2), round(a.usd_max, 2)) for a in target.apps}
    assert shares == {
        "echo": ("1–4", 24.33, round(730 + 73 * 4 / 7, 2)),
        "echo-two": ("2–3", round(146 + 73 * 2 / 3, 2), round(438 + 73 * 3 / 7, 2)),
    }


def test_missing_node_type_price_names_the_file_and_the_type(tmp_path: Path) -> None:
    g6 = "  - {name: g6.2xlarge" + PRICES_YAML.split("  - {name: g6.2xlarge")[1].split("fargate:")[0]
    text = PRICES_YAML.replace(g6, "")
    with pytest.raises(SpecError) as caught:
        env_cost("prod", fixture_prod(), minimal_prices(tmp_path, text))
    assert str(caught.value) == (
        "clusters/prices.yaml: ec2_instance_types: got no entry for 'g6.2xlarge'; worker group 'gpu' of RayService"
        " models runs on it, so it needs a price. Hint: add g6.2xlarge with vcpu, memory_gib, usd_per_hour, source and"
        " as_of (listed: m6i.large, m6i.xlarge)"
    )


def test_price_entries_are_checked(tmp_path: Path) -> None:
    text = PRICES_YAML.replace("gpu_type: nvidia-l4, usd_per_hour: 1.0", "usd_per_hour: 1.0")
    with pytest.raises(SpecError, match=r"ec2_instance_types\[g6.2xlarge\].gpu_type: got None; an instance type"):
        minimal_prices(tmp_path, text)


def ecs_manifests(cpu: str, memory: str, low: int, high: int) -> list[dict[str, Any]]:
    """An ACK TaskDefinition, Service and ScalableTarget shaped as the ecs target renders them."""
    meta = {"namespace": "ml"}
    return [
        {
            "apiVersion": "ecs.services.k8s.aws/v1alpha1",
            "kind": "TaskDefinition",
            "metadata": {"name": "iris-abc", **meta},
            "spec": {"family": "env-iris-abc", "cpu": cpu, "memory": memory, "requiresCompatibilities": ["FARGATE"]},
        },
        {
            "apiVersion": "ecs.services.k8s.aws/v1alpha1",
            "kind": "Service",
            "metadata": {"name": "iris", **meta},
            "spec": {
                "name": "env-iris",
                "desiredCount": low,
                "launchType": "FARGATE",
                "taskDefinitionRef": {"from": {"name": "iris-abc"}},
            },
        },
        {
            "apiVersion": "applicationautoscaling.services.k8s.aws/v1alpha1",
            "kind": "ScalableTarget",
            "metadata": {"name": "iris", **meta},
            "spec": {
                "serviceNamespace": "ecs",
                "resourceID": "service/ecs-test/env-iris",
                "minCapacity": low,
                "maxCapacity": high,
            },
        },
    ]


def test_fargate_tasks_at_min_and_max(tmp_path: Path) -> None:
    # 1 vCPU * 0.04 + 2 GB * 0.005 = 0.05 $/h per task -> 36.50 a month; 1..4 tasks.
    target = env_cost("ecs", ecs_manifests("1024", "2048", 1, 4), minimal_prices(tmp_path)).targets[0]
    assert [(line.name, line.count, round(line.usd_min, 2), round(line.usd_max, 2)) for line in target.lines] == [
        ("env-iris (1 vCPU, 2 GiB, fargate)", "1–4 tasks", 36.5, 146.0)
    ]


def test_cloud_run_instances_at_min_and_max(tmp_path: Path) -> None:
    # (2 vCPU * 0.00002 + 4 GiB * 0.000002) * 3600 * 730 = 126.144 a month per instance; 0..3 instances.
    service = {
        "apiVersion": "run.cnrm.cloud.google.com/v1beta1",
        "kind": "RunService",
        "metadata": {"name": "env-iris"},
        "spec": {
            "template": {
                "containers": [{"resources": {"limits": {"cpu": "2", "memory": "4Gi"}}}],
                "scaling": {"minInstanceCount": 0, "maxInstanceCount": 3},
            }
        },
    }
    target = env_cost("run", [service], minimal_prices(tmp_path)).targets[0]
    assert [(round(line.usd_min, 3), round(line.usd_max, 3)) for line in target.lines] == [(0.0, 378.432)]


def test_cost_command_prints_a_markdown_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import shutil

    repo = tmp_path / "repo"
    shutil.copytree(FIXTURE_REPO, repo)
    minimal_prices(repo)
    assert main(["--root", str(repo), "cost", "prod"]) == 0
    out = capsys.readouterr().out
    assert "| worker group gpu | 0–1 × g6.2xlarge | $0.00 | $730.00 |" in out
    assert "**Environment total: $219.00 at min, $1,241.00 at max per month.**" in out
