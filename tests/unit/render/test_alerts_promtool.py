"""The rendered SLO rules under the real promtool: every rendered rule file passes `promtool check rules`, and
`promtool test rules` feeds series that keep or break each SLO and asserts exactly which alerts fire.

The rules are the fixture repo's prod env (namespace `serving`): echo (p95 100 ms, error rate 1 %) and echo-two
(p95 50 ms, error rate 0: no error budget at all). Traffic is what Ray Serve's ingress exports (render/ray_metrics.py),
with Ray's own latency buckets. The time-to-first-token alert is the streaming fixture's (namespace
`serving-stream`): writer streams tokens with a 300 ms ttft_p95_ms; its first tokens come in the app's own histogram,
with the app's buckets (serve_apps/common/metrics.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from ray.serve._private.constants import DEFAULT_LATENCY_BUCKET_MS

from render.alerts import ALERTS, BURN_RATES, LATENCY_ALERT, TTFT_ALERT
from render.ray_metrics import GENERATION_TTFT_MS, HTTP_LATENCY_MS, HTTP_REQUESTS
from serve_apps.common.metrics import TTFT_BOUNDARIES_MS
from tests.golden_tree import STREAMING_REPO, render_fixture
from tests.promtool import needs_promtool, promtool, rule_groups, write_rule_file

pytestmark = needs_promtool

ROOT = Path(__file__).parents[3]
NAMESPACE = "serving"
STREAM_NAMESPACE = "serving-stream"
FAST, SLOW = (b.alert for b in BURN_RATES)
MINUTES = 420  # past the longest window (6 h), so every window is full by the last evaluation


@dataclass(frozen=True)
class Traffic:
    """One app's requests per minute: how many were answered 5xx and 4xx, and how long each took."""

    app: str
    per_minute: int = 600
    errors_5xx: int = 0
    errors_4xx: int = 0
    latency_ms: float = 20
    namespace: str = NAMESPACE


def _counter(labels: dict[str, str], per_minute: float) -> dict[str, str]:
    selector = ",".join(f'{k}="{v}"' for k, v in labels.items())
    return {"series": f"{HTTP_REQUESTS}{{{selector}}}", "values": f"0+{per_minute:g}x{MINUTES}"}


def series(traffic: Traffic) -> list[dict[str, str]]:
    """The counters Ray Serve's ingress would export for this traffic, scraped once a minute."""
    common = {"namespace": traffic.namespace, "application": traffic.app, "route": f"/{traffic.app}", "method": "POST"}
    ok = traffic.per_minute - traffic.errors_5xx - traffic.errors_4xx
    out = [
        _counter({**common, "status_code": code}, n)
        for code, n in (("200", ok), ("500", traffic.errors_5xx), ("422", traffic.errors_4xx))
        if n
    ]
    bucket_labels = {**common, "status_code": "200"}
    for le in [*(f"{b:.1f}" for b in DEFAULT_LATENCY_BUCKET_MS), "+Inf"]:
        within = traffic.per_minute if le == "+Inf" or float(le) >= traffic.latency_ms else 0
        selector = ",".join(f'{k}="{v}"' for k, v in {**bucket_labels, "le": le}.items())
        out.append({"series": f"{HTTP_LATENCY_MS}_bucket{{{selector}}}", "values": f"0+{within}x{MINUTES}"})
    return out


@dataclass(frozen=True)
class FirstTokens:
    """One streaming app's first tokens per minute, each after `ttft_ms`, in the app's own histogram."""

    app: str
    per_minute: int = 300
    ttft_ms: float = 50
    namespace: str = STREAM_NAMESPACE


def ttft_series(tokens: FirstTokens) -> list[dict[str, str]]:
    """The buckets of serving_generation_ttft_ms the app's replicas would export, scraped once a minute."""
    out = []
    for le in [*(f"{b:.1f}" for b in TTFT_BOUNDARIES_MS), "+Inf"]:
        within = tokens.per_minute if le == "+Inf" or float(le) >= tokens.ttft_ms else 0
        selector = f'namespace="{tokens.namespace}",app="{tokens.app}",le="{le}"'
        out.append({"series": f"{GENERATION_TTFT_MS}_bucket{{{selector}}}", "values": f"0+{within}x{MINUTES}"})
    return out


@pytest.fixture(scope="module")
def groups() -> list[dict[str, Any]]:
    return rule_groups(render_fixture()["prod/monitoring.coreos.com.PrometheusRule-models-slo.yaml"])


@pytest.fixture(scope="module")
def stream_groups() -> list[dict[str, Any]]:
    return rule_groups(render_fixture(STREAMING_REPO)["kuberay/monitoring.coreos.com.PrometheusRule-serving-slo.yaml"])


def expected_alert(groups: list[dict[str, Any]], alert: str, app: str, namespace: str) -> dict[str, Any]:
    """The alert as promtool reports it when it fires: the rule's labels and annotations, and the expression's (the
    TTFT alert's series also carry the app's own `app` label)."""
    (group,) = [g for g in groups if g["name"] == f"{app}.slo"]
    (rule,) = [r for r in group["rules"] if r.get("alert") == alert]
    own = {"app": app} if alert == TTFT_ALERT else {}
    return {
        "exp_labels": {**rule["labels"], "namespace": namespace, "application": app, **own},
        "exp_annotations": rule["annotations"],
    }


def run_promtool(
    tmp_path: Path,
    groups: list[dict[str, Any]],
    traffic: list[Traffic],
    firing: dict[str, set[tuple[str, str]]],
    first_tokens: tuple[FirstTokens, ...] = (),
    namespace: str = NAMESPACE,
) -> None:
    """Feed `traffic` (and `first_tokens`) to the rules of `namespace` and assert, at each evaluation time of
    `firing`, that exactly these (alert, app) pairs fire: every alert of the rules is checked at every time, the ones
    not named must not fire."""
    alerts = sorted({r["alert"] for g in groups for r in g["rules"] if "alert" in r})
    tests = {
        "interval": "1m",
        "input_series": [s for t in traffic for s in series(t)] + [s for t in first_tokens for s in ttft_series(t)],
        "alert_rule_test": [
            {
                "eval_time": at,
                "alertname": alert,
                "exp_alerts": [
                    expected_alert(groups, alert, app, namespace) for name, app in sorted(pairs) if name == alert
                ],
            }
            for at, pairs in firing.items()
            for alert in alerts
        ],
    }
    rules = write_rule_file(groups, tmp_path / "rules.yaml")
    test_file = tmp_path / "test.yaml"
    test_file.write_text(
        yaml.safe_dump({"rule_files": [rules.name], "evaluation_interval": "1m", "tests": [tests]}, sort_keys=False)
    )
    result = promtool("test", "rules", test_file)
    assert result.returncode == 0, result.stdout


def test_every_rendered_rule_file_passes_promtool_check(tmp_path: Path) -> None:
    rendered = sorted(ROOT.glob("rendered/*/monitoring.coreos.com.PrometheusRule-*.yaml"))
    rendered += sorted(ROOT.glob("tests/golden*/*/monitoring.coreos.com.PrometheusRule-*.yaml"))
    assert rendered, "no PrometheusRule rendered"
    for path in rendered:
        rule_file = write_rule_file(rule_groups(path.read_text()), tmp_path / f"{path.parent.name}.yaml")
        result = promtool("check", "rules", rule_file)
        assert result.returncode == 0, f"{path.relative_to(ROOT)}:\n{result.stdout}"


def test_traffic_within_every_slo_fires_nothing(tmp_path: Path, groups: list[dict[str, Any]]) -> None:
    # 0.5 % 5xx against echo's 1 %, 20 ms against its 100 ms; echo-two has no error budget and gets no 5xx.
    traffic = [Traffic("echo", errors_5xx=3), Traffic("echo-two", latency_ms=40)]
    run_promtool(tmp_path, groups, traffic, {"10m": set(), "1h": set(), "7h": set()})


def test_client_errors_do_not_spend_the_error_budget(tmp_path: Path, groups: list[dict[str, Any]]) -> None:
    traffic = [Traffic("echo", errors_4xx=300), Traffic("echo-two", errors_4xx=300)]
    run_promtool(tmp_path, groups, traffic, {"10m": set(), "7h": set()})


def test_a_fast_burn_pages_within_minutes_and_the_slow_burn_follows(
    tmp_path: Path, groups: list[dict[str, Any]]
) -> None:
    # 20 % 5xx: above 14.4 x 1 % over 1 h and 5 min, so the fast burn fires once its `for: 2m` has passed; the slow
    # burn's condition holds as well, and it fires after its own `for: 15m`.
    traffic = [Traffic("echo", errors_5xx=120), Traffic("echo-two")]
    run_promtool(
        tmp_path, groups, traffic, {"1m": set(), "10m": {(FAST, "echo")}, "30m": {(FAST, "echo"), (SLOW, "echo")}}
    )


def test_a_slow_burn_warns_and_never_pages(tmp_path: Path, groups: list[dict[str, Any]]) -> None:
    # 8 % 5xx: above 6 x 1 %, below 14.4 x 1 %.
    traffic = [Traffic("echo", errors_5xx=48), Traffic("echo-two")]
    run_promtool(tmp_path, groups, traffic, {"10m": set(), "30m": {(SLOW, "echo")}, "7h": {(SLOW, "echo")}})


def test_an_app_with_no_error_budget_pages_on_one_error_a_minute(tmp_path: Path, groups: list[dict[str, Any]]) -> None:
    traffic = [Traffic("echo"), Traffic("echo-two", errors_5xx=1)]
    run_promtool(tmp_path, groups, traffic, {"30m": {(FAST, "echo-two"), (SLOW, "echo-two")}})


def test_p95_above_the_slo_fires_after_its_for_window(tmp_path: Path, groups: list[dict[str, Any]]) -> None:
    # Every echo request takes 150 ms (bucket 100-200 ms): p95 ~195 ms against 100 ms. Pending from the first
    # evaluation with a rate, firing 10 minutes later.
    traffic = [Traffic("echo", latency_ms=150), Traffic("echo-two")]
    run_promtool(
        tmp_path,
        groups,
        traffic,
        {"5m": set(), "10m": set(), "12m": {(LATENCY_ALERT, "echo")}, "7h": {(LATENCY_ALERT, "echo")}},
    )


def test_p95_just_inside_the_slo_fires_nothing(tmp_path: Path, groups: list[dict[str, Any]]) -> None:
    # 90 ms in the 50-100 ms bucket: p95 interpolates to ~97.5 ms, under echo's 100 ms.
    traffic = [Traffic("echo", latency_ms=90), Traffic("echo-two", latency_ms=40)]
    run_promtool(tmp_path, groups, traffic, {"15m": set(), "7h": set()})


def test_another_environment_s_series_do_not_fire_this_one_s_alerts(
    tmp_path: Path, groups: list[dict[str, Any]]
) -> None:
    # dev's echo (namespace serving-dev) fails and crawls; prod's rules watch prod's namespace only.
    traffic = [
        Traffic("echo"),
        Traffic("echo-two"),
        Traffic("echo", namespace="serving-dev", errors_5xx=300, latency_ms=1500),
    ]
    run_promtool(tmp_path, groups, traffic, {"30m": set(), "7h": set()})


def test_every_alert_of_the_streaming_rules_is_checked(stream_groups: list[dict[str, Any]]) -> None:
    rendered = {r["alert"] for g in stream_groups for r in g["rules"] if "alert" in r}
    assert rendered == {*ALERTS, TTFT_ALERT}


def test_ttft_above_the_slo_fires_after_its_for_window_and_nothing_else(
    tmp_path: Path, stream_groups: list[dict[str, Any]]
) -> None:
    # Every first token after 400 ms (bucket 200-500 ms): p95 ~485 ms against writer's 300 ms. The streams themselves
    # take 1.5 s, inside writer's 2 s p95: only the first token is late.
    traffic = [
        Traffic("writer", latency_ms=1500, namespace=STREAM_NAMESPACE),
        Traffic("echo", namespace=STREAM_NAMESPACE),
    ]
    run_promtool(
        tmp_path,
        stream_groups,
        traffic,
        {"5m": set(), "10m": set(), "12m": {(TTFT_ALERT, "writer")}, "7h": {(TTFT_ALERT, "writer")}},
        (FirstTokens("writer", ttft_ms=400),),
        STREAM_NAMESPACE,
    )


def test_ttft_inside_the_slo_fires_nothing(tmp_path: Path, stream_groups: list[dict[str, Any]]) -> None:
    # 150 ms in the 100-200 ms bucket: p95 interpolates to ~195 ms, under 300 ms.
    traffic = [
        Traffic("writer", latency_ms=1500, namespace=STREAM_NAMESPACE),
        Traffic("echo", namespace=STREAM_NAMESPACE),
    ]
    tokens = (FirstTokens("writer", ttft_ms=150),)
    run_promtool(tmp_path, stream_groups, traffic, {"15m": set(), "7h": set()}, tokens, STREAM_NAMESPACE)


def test_another_environment_s_first_tokens_do_not_fire_this_one_s_ttft_alert(
    tmp_path: Path, stream_groups: list[dict[str, Any]]
) -> None:
    traffic = [
        Traffic("writer", latency_ms=1500, namespace=STREAM_NAMESPACE),
        Traffic("echo", namespace=STREAM_NAMESPACE),
    ]
    tokens = (FirstTokens("writer", ttft_ms=150), FirstTokens("writer", ttft_ms=5000, namespace="serving-dev"))
    run_promtool(tmp_path, stream_groups, traffic, {"15m": set(), "7h": set()}, tokens, STREAM_NAMESPACE)
