"""The Grafana dashboard of a KubeRay environment: a sidecar ConfigMap, a row of panels per app with its SLO lines,
a cluster row, only metrics Ray 2.60 or the apps define, and the same bytes on every render."""

from __future__ import annotations

import json
import re
from typing import Any

import yaml

from render import ray_metrics
from render.pipeline import render_repo
from tests.golden_tree import FIXTURE_REPO, STREAMING_REPO, render_fixture

APP_PANELS = [
    "Requests",
    "Errors",
    "Latency",
    "Replicas",
    "Ongoing requests per replica",
    "Model load time",
    "Prediction log: rows waiting",
    "Prediction log: rows dropped",
]
GENERATION_PANELS = ["Time to first token", "Tokens per second", "Inter-token latency", "Waiting for a batch"]
METRICS = {value for name, value in vars(ray_metrics).items() if name.isupper()}


def dashboard(files: dict[str, str], env: str, config_map: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The ConfigMap and the dashboard JSON model it holds."""
    manifest = yaml.safe_load(files[f"{env}/v1.ConfigMap-{config_map}.yaml"])
    (text,) = manifest["data"].values()
    return manifest, json.loads(text)


def rows(model: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Panels under each row title, in order."""
    out: dict[str, list[dict[str, Any]]] = {}
    for panel in model["panels"]:
        if panel["type"] == "row":
            out[panel["title"]] = []
        else:
            out[list(out)[-1]].append(panel)
    return out


def test_the_config_map_is_labelled_for_grafana_s_sidecar() -> None:
    manifest, model = dashboard(render_fixture(), "prod", "models-dashboard")
    assert manifest["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert manifest["metadata"]["namespace"] == "serving"
    assert list(manifest["data"]) == ["serving-prod.json"]
    assert model["uid"] == "serving-prod"


def test_a_row_per_app_then_the_cluster() -> None:
    _, model = dashboard(render_fixture(), "prod", "models-dashboard")
    by_row = rows(model)
    assert list(by_row) == ["echo", "echo-two", "Cluster"]
    for app in ("echo", "echo-two"):
        assert [p["title"] for p in by_row[app]] == APP_PANELS
    assert [p["title"] for p in by_row["Cluster"]] == ["Node CPU", "Node GPU"]


def test_an_env_without_gpus_has_no_gpu_panel() -> None:
    _, model = dashboard(render_fixture(), "dev", "serving-dashboard")
    assert [p["title"] for p in rows(model)["Cluster"]] == ["Node CPU"]


def test_latency_and_errors_draw_each_app_s_slo_as_a_line() -> None:
    _, model = dashboard(render_fixture(), "prod", "models-dashboard")
    for app, p95_ms, error_rate in (("echo", 100, 0.01), ("echo-two", 50, 0.0)):
        panels = {p["title"]: p for p in rows(model)[app]}
        for title, limit in (("Latency", p95_ms), ("Errors", error_rate)):
            defaults = panels[title]["fieldConfig"]["defaults"]
            assert defaults["custom"]["thresholdsStyle"] == {"mode": "line"}
            assert defaults["thresholds"]["steps"][-1] == {"color": "red", "value": limit}
        assert [t["legendFormat"] for t in panels["Latency"]["targets"]] == ["p50", "p95", "p99"]


def test_every_query_selects_the_env_namespace_and_reads_only_known_metrics() -> None:
    _, model = dashboard(render_fixture(), "prod", "models-dashboard")
    for panel in model["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"]
            assert 'namespace="serving"' in expr, expr
            names = set(re.findall(r"\b(ray_[a-z_]+?)(?:_bucket|_sum|_count)?\{", expr))
            assert names and names <= METRICS, f"{panel['title']}: {names - METRICS}"


def test_panel_ids_are_unique() -> None:
    _, model = dashboard(render_fixture(), "prod", "models-dashboard")
    ids = [p["id"] for p in model["panels"]]
    assert len(ids) == len(set(ids))


def test_rendering_twice_gives_the_same_bytes() -> None:
    first = render_repo(FIXTURE_REPO, None, ["prod"]).files["prod/v1.ConfigMap-models-dashboard.yaml"]
    again = render_repo(FIXTURE_REPO, None, ["prod"]).files["prod/v1.ConfigMap-models-dashboard.yaml"]
    assert first == again


def test_an_app_that_streams_tokens_gets_the_generation_panels_and_only_it() -> None:
    _, model = dashboard(render_fixture(STREAMING_REPO), "kuberay", "serving-dashboard")
    by_row = rows(model)
    assert [p["title"] for p in by_row["writer"]] == APP_PANELS + GENERATION_PANELS
    assert [p["title"] for p in by_row["echo"]] == APP_PANELS


def test_the_ttft_panel_draws_the_ttft_slo_and_reads_the_app_s_own_metrics() -> None:
    _, model = dashboard(render_fixture(STREAMING_REPO), "kuberay", "serving-dashboard")
    panels = {p["title"]: p for p in rows(model)["writer"]}
    defaults = panels["Time to first token"]["fieldConfig"]["defaults"]
    assert defaults["thresholds"]["steps"][-1] == {"color": "red", "value": 300}
    assert [t["legendFormat"] for t in panels["Time to first token"]["targets"]] == ["p50", "p95"]
    for title in GENERATION_PANELS:
        for target in panels[title]["targets"]:
            assert 'namespace="serving-stream",app="writer"' in target["expr"], target["expr"]
            names = set(re.findall(r"\b(ray_[a-z_]+?)(?:_bucket|_sum|_count)?\{", target["expr"]))
            assert names and names <= METRICS, f"{title}: {names - METRICS}"
