"""The Grafana dashboard of one KubeRay environment: a ConfigMap that Grafana's dashboard sidecar loads (label
`grafana_dashboard: "1"`, kube-prometheus-stack's default), built with grafana-foundation-sdk's typed builders.

A row per app: request rate by status code; 5xx and 4xx ratios against `slo.error_rate`; p50/p95/p99 against
`slo.p95_ms`; replicas running and target; requests in progress per replica; model load time; prediction-log rows
waiting and dropped. An app that streams tokens also gets its time to first token (p50/p95, against
`slo.ttft_p95_ms` when set), tokens per second, inter-token latency and requests waiting for a batch. A last row:
each Ray node's CPU use, and GPU use when the environment has GPU worker groups.

No batch-size panel: the apps batch with their own Batcher (serve_apps/common/batching.py), which exports no metric,
and Ray's serve_actual_batch_size (ray/serve/batching.py) comes only from `@serve.batch`, which they do not use.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from grafana_foundation_sdk.builders.common import GraphThresholdsStyleConfig, VizLegendOptions
from grafana_foundation_sdk.builders.dashboard import Dashboard, DatasourceVariable, Row, ThresholdsConfig
from grafana_foundation_sdk.builders.prometheus import Dataquery
from grafana_foundation_sdk.builders.timeseries import Panel
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.common import GraphThresholdsStyleMode, LegendDisplayMode, LegendPlacement
from grafana_foundation_sdk.models.dashboard import DataSourceRef, Threshold, ThresholdsMode

from render import ray_metrics as m

if TYPE_CHECKING:
    from render.plan import AppPlan, EnvPlan
    from render.spec.models import App

SIDECAR_LABEL = {"grafana_dashboard": "1"}
DATASOURCE = DataSourceRef(type_val="prometheus", uid="${datasource}")
RATE = "$__rate_interval"
# Panels per line (Grafana's grid is 24 columns wide) and their height.
WIDTH, HEIGHT = 8, 8


class _Ids:
    """Panel ids, unique in the dashboard and the same on every render."""

    def __init__(self) -> None:
        self._last = 0

    def next(self) -> int:
        self._last += 1
        return self._last


def _panel(ids: _Ids, title: str, description: str, unit: str, queries: dict[str, str]) -> Panel:
    """A time series panel of `queries` (legend → PromQL)."""
    panel = (
        Panel()
        .id(ids.next())
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .height(HEIGHT)
        .span(WIDTH)
        .legend(
            VizLegendOptions().show_legend(True).display_mode(LegendDisplayMode.LIST).placement(LegendPlacement.BOTTOM)
        )
    )
    for ref, (legend, expr) in zip("ABCDEFGH", queries.items(), strict=False):
        panel = panel.with_target(Dataquery().ref_id(ref).expr(expr).legend_format(legend))
    return panel


def _slo_line(panel: Panel, limit: float) -> Panel:
    """Draw the SLO's limit as a red line across the panel."""
    steps = [Threshold(value=None, color="green"), Threshold(value=limit, color="red")]
    return panel.thresholds(ThresholdsConfig().mode(ThresholdsMode.ABSOLUTE).steps(steps)).thresholds_style(
        GraphThresholdsStyleConfig().mode(GraphThresholdsStyleMode.LINE)
    )


def _app_panels(ids: _Ids, namespace: str, app: App) -> list[Panel]:
    serve = f'namespace="{namespace}",application="{app.name}"'
    own = f'namespace="{namespace}",app="{app.name}"'
    total = f"sum(rate({m.HTTP_REQUESTS}{{{serve}}}[{RATE}]))"

    def share(codes: str) -> str:
        return f'(sum(rate({m.HTTP_REQUESTS}{{{serve},status_code=~"{codes}"}}[{RATE}])) or vector(0)) / {total}'

    def quantile(q: float) -> str:
        return f"histogram_quantile({q}, sum by (le) (rate({m.HTTP_LATENCY_MS}_bucket{{{serve}}}[{RATE}])))"

    def started_last_hour(part: str) -> str:
        return f"sum by (deployment) (increase({m.REPLICA_INIT_MS}_{part}{{{serve}}}[1h]))"

    return [
        _panel(
            ids,
            "Requests",
            f"Requests per second at the Serve ingress, by HTTP status ({m.HTTP_REQUESTS}).",
            "reqps",
            {"{{status_code}}": f"sum by (status_code) (rate({m.HTTP_REQUESTS}{{{serve}}}[{RATE}]))"},
        ),
        _slo_line(
            _panel(
                ids,
                "Errors",
                f"Share of requests answered 5xx, which the error-rate SLO ({app.slo.error_rate:.2%}, red line)"
                " counts, and 4xx, which it does not (the client's mistake).",
                "percentunit",
                {"5xx": share("5.."), "4xx": share("4..")},
            ),
            app.slo.error_rate,
        ),
        _slo_line(
            _panel(
                ids,
                "Latency",
                f"End-to-end latency at the Serve ingress ({m.HTTP_LATENCY_MS}); the red line is the p95 SLO"
                f" ({app.slo.p95_ms:g} ms).",
                "ms",
                {f"p{round(q * 100)}": quantile(q) for q in (0.5, 0.95, 0.99)},
            ),
            app.slo.p95_ms,
        ),
        _panel(
            ids,
            "Replicas",
            f"Healthy replicas per deployment ({m.REPLICAS_HEALTHY}) and the count Serve is reaching for, by"
            f" autoscaling or num_replicas ({m.REPLICAS_TARGET}).",
            "none",
            {
                "{{deployment}} running": f"sum by (deployment) ({m.REPLICAS_HEALTHY}{{{serve}}})",
                "{{deployment}} target": f"max by (deployment) ({m.REPLICAS_TARGET}{{{serve}}})",
            },
        ),
        _panel(
            ids,
            "Ongoing requests per replica",
            f"Requests each replica is working on ({m.REPLICA_ONGOING}); compare with the deployment's"
            " autoscaling_config.target_ongoing_requests and max_ongoing_requests.",
            "none",
            {"{{deployment}} {{replica}}": f"sum by (deployment, replica) ({m.REPLICA_ONGOING}{{{serve}}})"},
        ),
        _panel(
            ids,
            "Model load time",
            f"Mean time of the replicas started in the last hour to run their constructor, where the app fetches,"
            f" verifies and loads its model ({m.REPLICA_INIT_MS}); empty when none started.",
            "ms",
            {
                "{{deployment}}": f"{started_last_hour('sum')} / {started_last_hour('count')}",
            },
        ),
        _panel(
            ids,
            "Prediction log: rows waiting",
            f"Rows in the replicas' buffers, not yet in the database ({m.LOG_BUFFER_ROWS}).",
            "none",
            {"rows": f"sum({m.LOG_BUFFER_ROWS}{{{own}}})"},
        ),
        _panel(
            ids,
            "Prediction log: rows dropped",
            f"Rows dropped because the buffer was full or the database refused them on every try"
            f" ({m.LOG_DROPPED_ROWS}); anything above 0 is lost history.",
            "none",
            {"rows": f"sum(increase({m.LOG_DROPPED_ROWS}{{{own}}}[{RATE}]))"},
        ),
    ]


def _generation_panels(ids: _Ids, namespace: str, app: App) -> list[Panel]:
    own = f'namespace="{namespace}",app="{app.name}"'

    def quantile(metric: str, q: float) -> str:
        return f"histogram_quantile({q}, sum by (le) (rate({metric}_bucket{{{own}}}[{RATE}])))"

    ttft = _panel(
        ids,
        "Time to first token",
        f"From a parsed request to its first token, waiting for a batch included ({m.GENERATION_TTFT_MS})"
        + (f"; the red line is the SLO ({app.slo.ttft_p95_ms:g} ms)." if app.slo.ttft_p95_ms is not None else "."),
        "ms",
        {f"p{round(q * 100)}": quantile(m.GENERATION_TTFT_MS, q) for q in (0.5, 0.95)},
    )
    return [
        ttft if app.slo.ttft_p95_ms is None else _slo_line(ttft, app.slo.ttft_p95_ms),
        _panel(
            ids,
            "Tokens per second",
            f"Tokens generated per second, every replica and request together ({m.GENERATION_TOKENS}).",
            "none",
            {"tokens/s": f"sum(rate({m.GENERATION_TOKENS}{{{own}}}[{RATE}]))"},
        ),
        _panel(
            ids,
            "Inter-token latency",
            f"Time between two tokens of one generation: a decoder step of its batch ({m.GENERATION_INTER_TOKEN_MS}).",
            "ms",
            {f"p{round(q * 100)}": quantile(m.GENERATION_INTER_TOKEN_MS, q) for q in (0.5, 0.95)},
        ),
        _panel(
            ids,
            "Waiting for a batch",
            f"Generation requests queued in the replicas for the next batch ({m.GENERATION_QUEUE_DEPTH}); each adds"
            " to its time to first token.",
            "none",
            {"requests": f"sum({m.GENERATION_QUEUE_DEPTH}{{{own}}})"},
        ),
    ]


def _cluster_panels(ids: _Ids, namespace: str, gpus: bool) -> list[Panel]:
    selector = f'namespace="{namespace}"'
    panels = [
        _panel(
            ids,
            "Node CPU",
            f"CPU use of each Ray node, head included ({m.NODE_CPU_PERCENT}).",
            "percent",
            {"{{ip}}": f"max by (ip) ({m.NODE_CPU_PERCENT}{{{selector}}})"},
        )
    ]
    if gpus:
        panels.append(
            _panel(
                ids,
                "Node GPU",
                f"Use of each GPU of the Ray nodes ({m.NODE_GPU_PERCENT}).",
                "percent",
                {"{{ip}} GPU {{GpuIndex}}": f"max by (ip, GpuIndex) ({m.NODE_GPU_PERCENT}{{{selector}}})"},
            )
        )
    return panels


def _row_panels(ids: _Ids, namespace: str, app_plan: AppPlan) -> list[Panel]:
    panels = _app_panels(ids, namespace, app_plan.app)
    if app_plan.streams_tokens:
        panels += _generation_panels(ids, namespace, app_plan.app)
    return panels


def dashboard_json(plan: EnvPlan, namespace: str) -> str:
    """The dashboard of one environment as Grafana's JSON model, keys sorted: the same plan gives the same bytes."""
    ids = _Ids()
    board = (
        Dashboard(f"Serving: {plan.name}")
        .uid(f"serving-{plan.name}")
        .description(f"Ray Serve apps of the {plan.name} environment, with their SLOs; rendered from the spec.")
        .tags(["serving", plan.name])
        .time("now-6h", "now")
        .refresh("30s")
        .with_variable(DatasourceVariable("datasource").label("Prometheus").type("prometheus"))
    )
    for app_plan in plan.apps:
        board = board.with_row(Row(app_plan.app.name).id(ids.next()))
        for panel in _row_panels(ids, namespace, app_plan):
            board = board.with_panel(panel)
    board = board.with_row(Row("Cluster").id(ids.next()))
    for panel in _cluster_panels(ids, namespace, any(g.num_gpus for g in plan.spec.worker_groups)):
        board = board.with_panel(panel)
    model: dict[str, Any] = json.loads(JSONEncoder(sort_keys=True).encode(board.build()))
    return json.dumps(model, indent=2, sort_keys=True) + "\n"


def config_map(plan: EnvPlan, metadata: dict[str, Any]) -> dict[str, Any]:
    """The ConfigMap holding the dashboard (`metadata` names it and its namespace), labelled for the sidecar."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {**metadata, "labels": {**metadata["labels"], **SIDECAR_LABEL}},
        "data": {f"serving-{plan.name}.json": dashboard_json(plan, metadata["namespace"])},
    }
