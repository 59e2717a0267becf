"""Cost estimate: hand-computed arithmetic on the fixture's prod, ECS and Cloud Run tasks, each priced in its
cluster's region; missing prices; the date of every price and the warning for old ones."""

from __future__ import annotations

import datetime
import shutil
from pathlib import Path
from typing import Any

import pytest

from render.cli import main
from render.errors import SpecError
from render.pipeline import render_repo
from render.review.cost import (
    PriceBook,
    PriceUsed,
    Pricing,
    cost_markdown,
    env_cost,
    load_price_book,
    load_prices,
    stale_prices,
)
from render.review.resources import applied_manifests
from render.spec.clusters import Cluster
from render.spec.load import load_clusters, load_node_types
from tests.golden_tree import FIXTURE_REPO

PRICES_YAML = """\
hours_per_month: 730
regions:
  eu-west-1:
    ec2:
      m6i.xlarge: {usd_per_hour: 0.2, source: test, as_of: 2026-01-01}
      m6i.2xlarge: {usd_per_hour: 0.4, source: test, as_of: 2026-01-01}
      g6.2xlarge: {usd_per_hour: 1.0, source: test, as_of: 2026-01-01}
    fargate: {usd_per_vcpu_hour: 0.04, usd_per_gb_hour: 0.005, source: test, as_of: 2026-01-01}
  us-east-1:
    ec2:
      m6i.xlarge: {usd_per_hour: 0.1, source: test, as_of: 2026-01-01}
      g6.2xlarge: {usd_per_hour: 0.5, source: test, as_of: 2026-01-01}
  europe-west4:
    cloud_run:
      usd_per_vcpu_second: 0.00002
      usd_per_gib_second: 0.000002
      usd_per_gpu_second: 0.0002
      gpu_type: nvidia-l4
      source: test
      as_of: 2026-01-01
"""
TODAY = datetime.date(2026, 12, 4)


def cluster(name: str, kind: str, region: str) -> Cluster:
    return Cluster(name=name, kind=kind, region=region, argocd_destination="mgmt")


def minimal_pricing(tmp_path: Path, env: str = "prod", text: str = PRICES_YAML) -> Pricing:
    """Round eu-west-1 prices (m6i.xlarge $0.2/h, m6i.2xlarge $0.4/h, g6.2xlarge $1/h; 730 h a month) and half of
    them in us-east-1, for prod (the fixture's eks-prod, eu-west-1), ecs (eu-west-1) and run (europe-west4)."""
    (tmp_path / "clusters").mkdir(exist_ok=True)
    (tmp_path / "clusters/prices.yaml").write_text(text)
    clusters = {
        "prod": load_clusters(FIXTURE_REPO)["eks-prod"],
        "ecs": cluster("ecs-test", "ecs", "eu-west-1"),
        "run": cluster("run-test", "cloudrun", "europe-west4"),
    }
    return PriceBook(load_prices(tmp_path), load_node_types(FIXTURE_REPO), clusters).pricing(env)


def fixture_prod() -> list[dict[str, Any]]:
    return applied_manifests(render_repo(FIXTURE_REPO, None, ["prod"]).files, "prod")


def head_selector(manifests: list[dict[str, Any]]) -> dict[str, str]:
    [rayservice] = [m for m in manifests if m["kind"] == "RayService"]
    selector: dict[str, str] = rayservice["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]["spec"][
        "nodeSelector"
    ]
    return selector


def test_kuberay_nodes_at_min_and_max(tmp_path: Path) -> None:
    # head on its m6i.xlarge: 0.2 * 730 = 146; cpu group 1..3 x m6i.xlarge: 146..438; gpu 0..1: 0..730.
    target = env_cost("prod", fixture_prod(), minimal_pricing(tmp_path)).targets[0]
    assert [(line.name, line.count, round(line.usd_min, 2), round(line.usd_max, 2)) for line in target.lines] == [
        ("head pod (2 CPU, 8 GiB)", "1 × m6i.xlarge", 146.0, 146.0),
        ("worker group cpu", "1–3 × m6i.xlarge", 146.0, 438.0),
        ("worker group gpu", "0–1 × g6.2xlarge", 0.0, 730.0),
    ]
    assert (round(target.usd_min, 2), round(target.usd_max, 2)) == (292.0, 1314.0)


def test_head_is_priced_as_one_node_of_its_node_type(tmp_path: Path) -> None:
    # m6i.2xlarge, though the cheaper m6i.xlarge would hold the 2 CPU / 8 GiB head: 0.4 * 730 = 292.
    manifests = fixture_prod()
    head_selector(manifests)["node.kubernetes.io/instance-type"] = "m6i.2xlarge"
    head = env_cost("prod", manifests, minimal_pricing(tmp_path)).targets[0].lines[0]
    assert (head.count, round(head.usd_min, 2)) == ("1 × m6i.2xlarge", 292.0)


def test_head_without_node_type_is_priced_as_the_cheapest_cpu_type_that_holds_it(tmp_path: Path) -> None:
    # m6i.xlarge (4 vCPU, 16 GiB, $0.2/h) holds 2 CPU / 8 GiB; m6i.2xlarge costs more, g6.2xlarge has a GPU.
    manifests = fixture_prod()
    del head_selector(manifests)["node.kubernetes.io/instance-type"]
    head = env_cost("prod", manifests, minimal_pricing(tmp_path)).targets[0].lines[0]
    assert (head.count, round(head.usd_min, 2)) == ("1 × m6i.xlarge", 146.0)


def test_apps_share_the_cluster_by_what_their_replicas_reserve(tmp_path: Path) -> None:
    # min: echo 1 replica (1 CPU, 0.25 GPU), echo-two 2 x 1 CPU. GPU pool 0; CPU pool 146 all to echo-two (the only
    # CPU-only replicas); head 146 by CPUs 1:2 -> echo 48.67, echo-two 97.33.
    # max: echo 4 replicas -> GPU pool 730 to echo; echo-two 3 -> CPU pool 438; head 146 by CPUs 4:3.
    target = env_cost("prod", fixture_prod(), minimal_pricing(tmp_path)).targets[0]
    shares = {a.name: (a.count, round(a.usd_min, 2), round(a.usd_max, 2)) for a in target.apps}
    assert shares == {
        "echo": ("1–4", 48.67, round(730 + 146 * 4 / 7, 2)),
        "echo-two": ("2–3", round(146 + 146 * 2 / 3, 2), round(438 + 146 * 3 / 7, 2)),
    }


def test_region_is_the_one_of_the_environments_cluster(tmp_path: Path) -> None:
    # The fixture's prod runs on eks-prod, in eu-west-1: eu-west-1's $0.2/h, not us-east-1's $0.1/h.
    repo = tmp_path / "repo"
    shutil.copytree(FIXTURE_REPO, repo)
    (repo / "clusters/prices.yaml").write_text(PRICES_YAML)
    pricing = load_price_book(repo, ["prod"]).pricing("prod")
    assert (pricing.region, pricing.cluster) == ("eu-west-1", "eks-prod")
    cost = env_cost("prod", fixture_prod(), pricing)
    assert [p.key for p in cost.prices] == ["regions.eu-west-1.ec2.g6.2xlarge", "regions.eu-west-1.ec2.m6i.xlarge"]


def test_missing_region_names_the_file_the_region_and_the_cluster(tmp_path: Path) -> None:
    text = PRICES_YAML.replace("  eu-west-1:", "  eu-west-2:")
    with pytest.raises(SpecError) as caught:
        minimal_pricing(tmp_path, "prod", text)
    assert str(caught.value) == (
        "clusters/prices.yaml: regions: got no entry for 'eu-west-1'; environment prod runs in eu-west-1 (cluster"
        " eks-prod in clusters/clusters.yaml), and is priced only at that region's prices. Hint: add"
        " regions.eu-west-1 with the prices of what runs there (listed: eu-west-2, europe-west4, us-east-1)"
    )


def test_missing_node_type_price_names_the_region_not_another_regions_price(tmp_path: Path) -> None:
    text = PRICES_YAML.replace("      g6.2xlarge: {usd_per_hour: 1.0, source: test, as_of: 2026-01-01}\n", "")
    with pytest.raises(SpecError) as caught:
        env_cost("prod", fixture_prod(), minimal_pricing(tmp_path, "prod", text))
    assert str(caught.value) == (
        "clusters/prices.yaml: regions.eu-west-1.ec2: got no entry for 'g6.2xlarge'; worker group 'gpu' of"
        " RayService models runs on it in eu-west-1 (cluster eks-prod), so it needs a price there. Hint: add"
        " regions.eu-west-1.ec2.g6.2xlarge with usd_per_hour, source and as_of (listed in eu-west-1: m6i.2xlarge,"
        " m6i.xlarge)"
    )


def test_price_entries_are_checked(tmp_path: Path) -> None:
    text = PRICES_YAML.replace("m6i.2xlarge: {usd_per_hour: 0.4", "m6i.2xlarge: {usd_per_hr: 0.4")
    with pytest.raises(SpecError, match=r"regions\.eu-west-1\.ec2\.m6i\.2xlarge\.usd_per_hr: got unknown key"):
        minimal_pricing(tmp_path, "prod", text)


def test_priced_instance_type_needs_its_hardware(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(FIXTURE_REPO, repo)
    (repo / "clusters/prices.yaml").write_text(PRICES_YAML.replace("m6i.2xlarge:", "m6i.4xlarge:"))
    with pytest.raises(SpecError, match=r"regions\.eu-west-1\.ec2\.m6i\.4xlarge: got 'm6i.4xlarge'; no such node"):
        load_price_book(repo, ["prod"])


def test_a_price_older_than_the_limit_warns_and_one_at_the_limit_does_not() -> None:
    price = PriceUsed("regions.eu-west-1.fargate", "0.04 USD/vCPU-h", datetime.date(2025, 12, 4), "test")
    assert stale_prices([price], TODAY, 365) == []
    assert stale_prices([price], TODAY, 364) == [
        "`regions.eu-west-1.fargate` is 365 days old (as of 2025-12-04, more than 364 days ago): check it against"
        " its source (test) and update it and its as_of"
    ]


def test_report_shows_the_region_and_the_date_of_every_price_used(tmp_path: Path) -> None:
    # Every price is dated 2026-01-01: 337 days before TODAY, past a 180-day limit.
    pricing = minimal_pricing(tmp_path)
    report = cost_markdown(env_cost("prod", fixture_prod(), pricing), pricing, TODAY, 180)
    assert "at the eu-west-1 list prices of `clusters/prices.yaml` (the region of cluster `eks-prod`)" in report
    assert "| `regions.eu-west-1.ec2.g6.2xlarge` | 1 USD/h | 2026-01-01 | test |" in report
    assert "| `regions.eu-west-1.ec2.m6i.xlarge` | 0.2 USD/h | 2026-01-01 | test |" in report
    assert report.count("> **Warning**: ") == 2
    assert "> **Warning**: `regions.eu-west-1.ec2.m6i.xlarge` is 337 days old (as of 2026-01-01" in report
    assert "Warning" not in cost_markdown(env_cost("prod", fixture_prod(), pricing), pricing, TODAY, 337)


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
    target = env_cost("ecs", ecs_manifests("1024", "2048", 1, 4), minimal_pricing(tmp_path, "ecs")).targets[0]
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
    target = env_cost("run", [service], minimal_pricing(tmp_path, "run")).targets[0]
    assert [(round(line.usd_min, 3), round(line.usd_max, 3)) for line in target.lines] == [(0.0, 378.432)]


def test_cost_command_prints_a_markdown_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(FIXTURE_REPO, repo)
    (repo / "clusters/prices.yaml").write_text(PRICES_YAML)
    assert main(["--root", str(repo), "cost", "prod", "--max-price-age-days", "180"]) == 0
    out = capsys.readouterr().out
    assert "| worker group gpu | 0–1 × g6.2xlarge | $0.00 | $730.00 |" in out
    assert "**Environment total: $292.00 at min, $1,314.00 at max per month.**" in out
    assert "Prices used (eu-west-1):" in out


@pytest.mark.parametrize("days", ["0", "-5", "half a year"])
def test_max_price_age_must_be_a_whole_number_of_days(days: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["cost", "prod", "--max-price-age-days", days])
    assert exited.value.code == 2
    assert f"--max-price-age-days: got {days!r}; a whole number of days, at least 1" in capsys.readouterr().err
