"""render/ray_metrics.py: every metric the rules and the dashboard read is defined in Ray 2.60 or in the apps, in
the file its comment cites."""

from __future__ import annotations

from pathlib import Path

import ray

from render import ray_metrics

METRICS = {value for name, value in vars(ray_metrics).items() if name.isupper()}


def test_every_metric_is_defined_where_its_comment_says() -> None:
    # Each name without Ray's `ray_` prefix and the exporter's suffix must be a metric name in the cited file.
    root = Path(ray.__file__).parent
    repo = Path(__file__).parents[3]
    defined_in = {
        ray_metrics.HTTP_REQUESTS: root / "serve/_private/request_ingress_metrics.py",
        ray_metrics.HTTP_LATENCY_MS: root / "serve/_private/request_ingress_metrics.py",
        ray_metrics.REPLICAS_HEALTHY: root / "serve/_private/deployment_state.py",
        ray_metrics.REPLICAS_TARGET: root / "serve/_private/deployment_state.py",
        ray_metrics.REPLICA_INIT_MS: root / "serve/_private/deployment_state.py",
        ray_metrics.REPLICA_ONGOING: root / "serve/_private/replica.py",
        ray_metrics.LOG_BUFFER_ROWS: repo / "serve_apps/common/metrics.py",
        ray_metrics.LOG_DROPPED_ROWS: repo / "serve_apps/common/metrics.py",
        ray_metrics.GENERATION_TTFT_MS: repo / "serve_apps/common/metrics.py",
        ray_metrics.GENERATION_INTER_TOKEN_MS: repo / "serve_apps/common/metrics.py",
        ray_metrics.GENERATION_TOKENS: repo / "serve_apps/common/metrics.py",
        ray_metrics.GENERATION_QUEUE_DEPTH: repo / "serve_apps/common/metrics.py",
        ray_metrics.NODE_CPU_PERCENT: root / "dashboard/modules/reporter/reporter_agent.py",
        ray_metrics.NODE_GPU_PERCENT: root / "dashboard/modules/reporter/reporter_agent.py",
    }
    assert set(defined_in) == METRICS
    for metric, source in defined_in.items():
        base = metric.removeprefix("ray_").removesuffix("_total")
        text = source.read_text()
        # request_ingress_metrics.py builds its names as f"serve_num_{protocol_name}_requests"
        assert f'"{base}"' in text or f'f"{base.replace("_http_", "_{protocol_name}_", 1)}"' in text, (
            f"{base} is not defined in {source}"
        )
