"""The PrometheusRule of a KubeRay environment: per app, rules from its own SLO, in its own namespace, each alert
with a severity, a summary naming app and env, and a runbook anchor the README has."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from render.alerts import (
    ALERTS,
    LATENCY_ALERT,
    P95_RECORD,
    TTFT_ALERT,
    TTFT_P95_RECORD,
    browse_url,
    error_ratio_record,
)
from render.pipeline import render_repo
from tests.golden_tree import STREAMING_REPO, TARGETS_REPO, render_fixture
from tests.promtool import rule_groups
from tests.unit.render.conftest import app, edit

ROOT = Path(__file__).parents[3]
PROD_RULE = "prod/monitoring.coreos.com.PrometheusRule-models-slo.yaml"
STREAMING_RULE = "kuberay/monitoring.coreos.com.PrometheusRule-serving-slo.yaml"


def rules_of(groups: list[dict[str, Any]], app_name: str) -> dict[str, dict[str, Any]]:
    """An app's rules by alert or record name."""
    (group,) = [g for g in groups if g["name"] == f"{app_name}.slo"]
    return {rule.get("alert") or rule["record"]: rule for rule in group["rules"]}


def test_every_app_gets_its_own_group_with_every_alert() -> None:
    groups = rule_groups(render_fixture()[PROD_RULE])
    assert [g["name"] for g in groups] == ["echo.slo", "echo-two.slo"]
    for name in ("echo", "echo-two"):
        assert set(ALERTS) <= set(rules_of(groups, name))


def test_thresholds_come_from_each_app_s_slo() -> None:
    groups = rule_groups(render_fixture()[PROD_RULE])
    echo, two = rules_of(groups, "echo"), rules_of(groups, "echo-two")
    assert echo[LATENCY_ALERT]["expr"].endswith("} > 100")
    assert two[LATENCY_ALERT]["expr"].endswith("} > 50")
    assert echo["ServingErrorBudgetFastBurn"]["expr"].count("> 14.4 * 0.01") == 2
    assert two["ServingErrorBudgetSlowBurn"]["expr"].count("> 6 * 0") == 2


def test_a_changed_slo_changes_only_that_app_s_thresholds(repo: Path) -> None:
    edit(repo, "deployments/prod/env.yaml", lambda d: app(d, "echo").update(slo={"p95_ms": 250}))
    groups = rule_groups(render_repo(repo, None, ["prod"]).files[PROD_RULE])
    assert rules_of(groups, "echo")[LATENCY_ALERT]["expr"].endswith("} > 250")
    assert rules_of(groups, "echo-two")[LATENCY_ALERT]["expr"].endswith("} > 50")


def test_every_expression_selects_the_env_namespace_and_the_app() -> None:
    groups = rule_groups(render_fixture()[PROD_RULE])
    for name in ("echo", "echo-two"):
        for rule in rules_of(groups, name).values():
            selectors = re.findall(r"\{([^}]*)\}", rule["expr"])
            assert selectors, rule
            for selector in selectors:
                assert f'namespace="serving",application="{name}"' in selector, rule["expr"]


def test_alerts_read_the_recorded_series() -> None:
    rules = rules_of(rule_groups(render_fixture()[PROD_RULE]), "echo")
    assert rules[LATENCY_ALERT]["expr"].startswith(P95_RECORD + "{")
    fast = rules["ServingErrorBudgetFastBurn"]["expr"]
    assert error_ratio_record("1h") in fast and error_ratio_record("5m") in fast
    for record in (error_ratio_record("1h"), error_ratio_record("5m"), P95_RECORD):
        assert record in rules


def test_each_alert_has_severity_a_summary_naming_app_and_env_and_a_runbook() -> None:
    groups = rule_groups(render_fixture()[PROD_RULE])
    for alert in ALERTS:
        rule = rules_of(groups, "echo-two")[alert]
        assert rule["labels"]["severity"] in ("critical", "warning")
        assert rule["annotations"]["summary"].startswith("echo-two in prod: ")
        assert rule["annotations"]["runbook_url"] == (
            f"https://example.com/acme/gitops/blob/HEAD/README.md#{alert.lower()}"
        )


def test_every_runbook_anchor_is_a_readme_heading() -> None:
    headings = {
        re.sub(r"[^\w\- ]", "", line.lstrip("#").strip()).lower().replace(" ", "-")
        for line in (ROOT / "README.md").read_text().splitlines()
        if line.startswith("#")
    }
    rules = [*ROOT.glob("rendered/*/monitoring.coreos.com.PrometheusRule-*.yaml")]
    rules += ROOT.glob("tests/golden*/*/monitoring.coreos.com.PrometheusRule-*.yaml")  # streaming apps: TTFT
    for path in sorted(rules):
        for group in rule_groups(path.read_text()):
            for rule in group["rules"]:
                if "alert" in rule:
                    anchor = rule["annotations"]["runbook_url"].split("#", 1)[1]
                    assert anchor in headings, f"{path.name}: README.md has no heading for #{anchor}"


@pytest.mark.parametrize(
    "clone_url",
    [
        "https://github.com/acme/serving-gitops.git",
        "https://github.com/acme/serving-gitops",
        "ssh://git@github.com/acme/serving-gitops.git",
        "git@github.com:acme/serving-gitops.git",
    ],
)
def test_the_runbook_base_is_the_repository_s_web_address(clone_url: str) -> None:
    assert browse_url(clone_url) == "https://github.com/acme/serving-gitops"


def test_single_node_targets_render_no_rules_and_their_parity_report_says_so_without_a_warning(
    tmp_path: Path,
) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(TARGETS_REPO, repo)
    # Set in the environment's own file, where an ignored field would be warned about.
    edit(repo, "deployments/run/env.yaml", lambda d: app(d, "echo").update(slo={"p95_ms": 80}))
    rendered = render_repo(repo, None)
    assert not [path for path in rendered.files if "PrometheusRule" in path or "dashboard" in path]
    for env in ("fargate", "run"):
        report = rendered.files[f"{env}/PARITY.md"]
        (row,) = [line for line in report.splitlines() if line.startswith("| `apps[].slo.p95_ms` |")]
        assert "| not deployed |" in row
        assert "production alerts not rendered for this target (follow-up: " in row
        assert ("CloudWatch" if env == "fargate" else "Cloud Monitoring") in row
    assert not [line for line in rendered.parity if "slo" in line]


def test_an_app_with_a_ttft_slo_gets_a_ttft_alert_from_its_own_histogram() -> None:
    rules = rules_of(rule_groups(render_fixture(STREAMING_REPO)[STREAMING_RULE]), "writer")
    assert rules[TTFT_P95_RECORD]["expr"] == (
        "histogram_quantile(0.95, sum by (namespace, app, le)"
        ' (rate(ray_serving_generation_ttft_ms_bucket{namespace="serving-stream",app="writer"}[5m])))'
    )
    alert = rules[TTFT_ALERT]
    assert alert["expr"] == f'{TTFT_P95_RECORD}{{namespace="serving-stream",app="writer"}} > 300'
    assert (alert["for"], alert["labels"]) == (
        "10m",
        {"severity": "warning", "env": "kuberay", "application": "writer"},
    )
    assert alert["annotations"]["summary"] == "writer in kuberay: p95 time to first token above its 300 ms SLO"
    assert alert["annotations"]["runbook_url"].endswith("/README.md#servingttftp95high")
    assert set(ALERTS) <= set(rules)


def test_an_app_without_a_ttft_slo_gets_no_ttft_rules() -> None:
    groups = rule_groups(render_fixture(STREAMING_REPO)[STREAMING_RULE])
    assert not {TTFT_ALERT, TTFT_P95_RECORD} & set(rules_of(groups, "echo"))
    for group in rule_groups(render_fixture()[PROD_RULE]):
        assert not [r for r in group["rules"] if TTFT_ALERT in (r.get("alert"), r.get("record"))]
