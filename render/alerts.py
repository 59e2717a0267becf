"""SLO alerts: a PrometheusRule per KubeRay environment, derived from each app's `slo` (the same numbers the load
tests gate a merge on).

Per app, one rule group: recording rules for its request rate, its 5xx ratio over each burn-rate window and its p95
latency, from the metrics Ray Serve exports (render/ray_metrics.py), then three alerts:

- ServingErrorBudgetFastBurn, ServingErrorBudgetSlowBurn: multiwindow, multi-burn-rate alerts on `slo.error_rate`
  (Google SRE workbook, "Alerting on SLOs"): the 5xx ratio is above burn rate x error_rate over both a long window
  (the budget is really going) and a short one (it still is, so the alert clears soon after the fault does).
  14.4x over 1 h spends 2 % of a 30-day budget in that hour; 6x over 6 h, 5 %. `for:` as Pyrra renders them.
- ServingLatencyP95High: the p95 over 5 minutes above `slo.p95_ms` for 10 minutes.
- ServingTTFTP95High, for an app that declares `slo.ttft_p95_ms` (only one that streams tokens may): the p95 time to
  first token over 5 minutes above it for 10 minutes, from the app's own histogram (serving_generation_ttft_ms,
  labelled `app`), which counts the wait for a batch the ingress latency of a stream cannot show.

Only 5xx count against the error budget: a 4xx is a request the client got wrong (the fuzz tests send thousands),
and Ray's 408 for `request_timeout_s` shares its code with the apps' 408 for a stalled body; such a request's
latency reaches the p95 anyway. `slo.min_rps` is a capacity floor for load tests, not alerted on: in production,
traffic below it is demand, not failure.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from render.ray_metrics import GENERATION_TTFT_MS, HTTP_LATENCY_MS, HTTP_REQUESTS

if TYPE_CHECKING:
    from render.plan import EnvPlan
    from render.spec.models import App

BUDGET_DAYS = 30


@dataclass(frozen=True)
class BurnRate:
    """One burn-rate alert: the budget is spent `factor` times too fast over both windows."""

    alert: str
    long_window: str
    short_window: str
    factor: float
    for_: str
    severity: str


BURN_RATES = (
    BurnRate("ServingErrorBudgetFastBurn", "1h", "5m", 14.4, "2m", "critical"),
    BurnRate("ServingErrorBudgetSlowBurn", "6h", "30m", 6, "15m", "warning"),
)
LATENCY_ALERT = "ServingLatencyP95High"
LATENCY_WINDOW = "5m"
LATENCY_FOR = "10m"
LATENCY_SEVERITY = "warning"
ALERTS = (*(b.alert for b in BURN_RATES), LATENCY_ALERT)
# Rendered only for an app that declares slo.ttft_p95_ms.
TTFT_ALERT = "ServingTTFTP95High"
# Every window an error ratio is recorded over: the burn rates' short and long ones.
RATIO_WINDOWS = ("5m", "30m", "1h", "6h")
BY = "namespace, application"


def request_rate_record(window: str) -> str:
    """Recorded series: requests per second over `window`, by namespace and application."""
    return f"namespace_application:serve_http_requests:rate{window}"


def error_ratio_record(window: str) -> str:
    """Recorded series: the fraction of requests answered 5xx over `window`, by namespace and application."""
    return f"namespace_application:serve_http_5xx_ratio:rate{window}"


P95_RECORD = f"namespace_application:serve_http_request_latency_ms:p95_rate{LATENCY_WINDOW}"
# The apps' own metrics carry the application's name as `app` (serve_apps/common/metrics.py).
TTFT_P95_RECORD = f"namespace_app:serving_generation_ttft_ms:p95_rate{LATENCY_WINDOW}"


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _rules(plan: EnvPlan, namespace: str, app: App, runbook: str) -> list[dict[str, Any]]:
    selector = f'namespace="{namespace}",application="{app.name}"'

    def rate(window: str, matchers: str = selector) -> str:
        return f"sum by ({BY}) (rate({HTTP_REQUESTS}{{{matchers}}}[{window}]))"

    def ratio(window: str) -> str:
        # With no 5xx yet the error series does not exist: `or 0 * rate` makes the ratio 0 instead of absent.
        errors = rate(window, f'{selector},status_code=~"5.."')
        return f"({errors}\n  or 0 * {rate(window)})\n/ {rate(window)}"

    # The expressions keep `application`; stating it as a label too tells each app's rules apart from the next app's
    # (promtool check rules refuses rules of one name and one label set).
    own = {"application": app.name}
    rules: list[dict[str, Any]] = [
        {"record": request_rate_record(LATENCY_WINDOW), "expr": rate(LATENCY_WINDOW), "labels": own},
        *({"record": error_ratio_record(w), "expr": ratio(w), "labels": own} for w in RATIO_WINDOWS),
        {
            "record": P95_RECORD,
            "expr": f"histogram_quantile(0.95, sum by ({BY}, le)"
            f" (rate({HTTP_LATENCY_MS}_bucket{{{selector}}}[{LATENCY_WINDOW}])))",
            "labels": own,
        },
    ]
    slo, env = app.slo, plan.name
    budget = _number(slo.error_rate)
    for burn in BURN_RATES:
        threshold = f"{_number(burn.factor)} * {budget}"
        rules.append(
            {
                "alert": burn.alert,
                "expr": f"{error_ratio_record(burn.long_window)}{{{selector}}} > {threshold}"
                f"\nand {error_ratio_record(burn.short_window)}{{{selector}}} > {threshold}",
                "for": burn.for_,
                "labels": {"severity": burn.severity, "env": env, **own},
                "annotations": {
                    "summary": f"{app.name} in {env}: 5xx answers are spending the error budget"
                    f" {_number(burn.factor)}x too fast",
                    "description": f"Over both the last {burn.long_window} and {burn.short_window}, more than"
                    f" {burn.factor * slo.error_rate:.2%} of {app.name}'s requests were answered 5xx (SLO: at most"
                    f" {slo.error_rate:.2%}); at this rate the {BUDGET_DAYS}-day error budget lasts"
                    f" {BUDGET_DAYS / burn.factor:.1f} days.",
                    "runbook_url": f"{runbook}#{burn.alert.lower()}",
                },
            }
        )
    p95 = _number(slo.p95_ms)
    rules.append(
        {
            "alert": LATENCY_ALERT,
            "expr": f"{P95_RECORD}{{{selector}}} > {p95}",
            "for": LATENCY_FOR,
            "labels": {"severity": LATENCY_SEVERITY, "env": env, **own},
            "annotations": {
                "summary": f"{app.name} in {env}: p95 latency above its {p95} ms SLO",
                "description": f"The 95th percentile of {app.name}'s request latency at the Serve ingress, over"
                f" {LATENCY_WINDOW}, has stayed above {p95} ms for {LATENCY_FOR}.",
                "runbook_url": f"{runbook}#{LATENCY_ALERT.lower()}",
            },
        }
    )
    if slo.ttft_p95_ms is not None:
        rules += _ttft_rules(namespace, app, env, slo.ttft_p95_ms, runbook)
    return rules


def _ttft_rules(namespace: str, app: App, env: str, limit_ms: float, runbook: str) -> list[dict[str, Any]]:
    selector = f'namespace="{namespace}",app="{app.name}"'
    own = {"application": app.name}
    limit = _number(limit_ms)
    return [
        {
            "record": TTFT_P95_RECORD,
            "expr": f"histogram_quantile(0.95, sum by (namespace, app, le)"
            f" (rate({GENERATION_TTFT_MS}_bucket{{{selector}}}[{LATENCY_WINDOW}])))",
            "labels": own,
        },
        {
            "alert": TTFT_ALERT,
            "expr": f"{TTFT_P95_RECORD}{{{selector}}} > {limit}",
            "for": LATENCY_FOR,
            "labels": {"severity": LATENCY_SEVERITY, "env": env, **own},
            "annotations": {
                "summary": f"{app.name} in {env}: p95 time to first token above its {limit} ms SLO",
                "description": f"The 95th percentile of the time {app.name}'s replicas took from a parsed request to"
                f" its first token, over {LATENCY_WINDOW}, has stayed above {limit} ms for {LATENCY_FOR}.",
                "runbook_url": f"{runbook}#{TTFT_ALERT.lower()}",
            },
        },
    ]


def browse_url(repo_url: str) -> str:
    """The web address of a Git repository from its clone URL: https://host/org/repo(.git), ssh://git@host/org/repo
    or git@host:org/repo all give https://host/org/repo."""
    url = repo_url.removesuffix(".git").removesuffix("/")
    if url.startswith("ssh://"):
        url = "https://" + url.removeprefix("ssh://").split("@", 1)[-1]
    elif url.startswith("git@"):
        url = "https://" + url.removeprefix("git@").replace(":", "/", 1)
    return url


def prometheus_rule(plan: EnvPlan, metadata: dict[str, Any]) -> dict[str, Any]:
    """The PrometheusRule of one environment (`metadata` names it and its namespace): one group per app."""
    # HEAD, the repository's default branch, not gitops.revision: a runbook is read now, whatever an env tracks.
    runbook = f"{browse_url(plan.spec.env.gitops.repo_url)}/blob/HEAD/README.md"
    namespace = metadata["namespace"]
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": metadata,
        "spec": {
            "groups": [
                {"name": f"{app.name}.slo", "rules": _rules(plan, namespace, app, runbook)} for app in plan.spec.apps
            ]
        },
    }
