"""The rendered SLO rules on a real Prometheus (Debian's `prometheus`) scraping a local Ray Serve under Locust load.

An env of the fixture repo holds one app, the slow app, with a p95 SLO of 300 ms; its rendered Serve config runs on
the session's Ray, whose metrics endpoint Prometheus scrapes every second. Prometheus evaluates the rules of the
rendered PrometheusRule every second, with its windows cut to seconds here and only here (WINDOWS, FOR): the rendered
rules keep theirs. Healthy (10 ms answers), no alert may fire or even be pending; then the spec's user_config sets
1 s answers, render runs again and Serve reconfigures the replica in place, and the p95 alert must be pending and then
firing after exactly its `for:`, within one evaluation, and no other alert may fire. The test prints the series.

Ray's processes hand their metrics to the node's exporter every metrics_report_interval_ms (10 s by default), so the
series move in 10 s steps: the windows span three of them.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from localrun.serve import deploy
from render.alerts import LATENCY_ALERT, LATENCY_FOR, P95_RECORD, error_ratio_record, request_rate_record
from render.pipeline import render_repo
from tests.golden_tree import FIXTURE_REPO
from tests.integration.single_app import free_port
from tests.promtool import rule_groups

PROMETHEUS = shutil.which("prometheus")
pytestmark = pytest.mark.skipif(
    PROMETHEUS is None, reason="prometheus is not on PATH (apt-get install --no-install-recommends prometheus)"
)

ENV, APP, NAMESPACE = "dev", "slow", "serving-dev"
SLO_P95_MS = 300
HEALTHY_DELAY_S, FAULT_DELAY_S = 0.01, 1.0
USERS = 4
EVALUATION_S = 1
# The rendered windows → the test's. Rates need two reports of Ray's in a window, so 30 s at least.
WINDOWS = {"5m": "30s", "30m": "60s", "1h": "60s", "6h": "120s"}
FOR = {"2m": "5s", "15m": "15s", LATENCY_FOR: "10s"}
HEALTHY_S = 15  # healthy load watched after the rules first see it: longer than the p95 alert's `for:`
READY_TIMEOUT_S = 60
FIRING_TIMEOUT_S = 60
LOCUSTFILE = Path(__file__).with_name("drain_locustfile.py")


def spec(delay_s: float | None) -> dict[str, Any]:
    """The env's one app; `delay_s` in its user_config when given (the fault)."""
    deployment: dict[str, Any] = {
        "name": "Slow",
        "num_replicas": 1,
        "max_ongoing_requests": 4 * USERS,
        "ray_actor_options": {"num_cpus": 0.5},
    }
    if delay_s is not None:
        deployment["user_config"] = {"delay_s": delay_s}
    return {
        "apps": [
            {
                "name": APP,
                "import_path": "tests.integration.slow_app:app_builder",
                "route_prefix": f"/{APP}",
                "args": {"delay_s": HEALTHY_DELAY_S},
                "slo": {"p95_ms": SLO_P95_MS, "error_rate": 0.01, "min_rps": 1},
                "deployments": [deployment],
            }
        ]
    }


@dataclass(frozen=True)
class Rendered:
    """What render wrote for the env: its Serve config (from the RayService) and its rule groups."""

    serve_config: dict[str, Any]
    groups: list[dict[str, Any]]


def render(repo: Path, delay_s: float | None) -> Rendered:
    (repo / "deployments/base/apps.yaml").write_text(yaml.safe_dump(spec(delay_s)))
    files = render_repo(repo, None, [ENV]).files
    service = yaml.safe_load(files[f"{ENV}/ray.io.RayService-serving.yaml"])
    return Rendered(
        yaml.safe_load(service["spec"]["serveConfigV2"]),
        rule_groups(files[f"{ENV}/monitoring.coreos.com.PrometheusRule-serving-slo.yaml"]),
    )


def seconds_scale(groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rule groups with every range window and `for:` replaced by the test's seconds-long ones."""

    def window(match: re.Match[str]) -> str:
        return f"[{WINDOWS[match.group(1)]}]"

    out = []
    for group in groups:
        rules = []
        for rule in group["rules"]:
            rule = {**rule, "expr": re.sub(r"\[(\w+)\]", window, rule["expr"])}
            if "for" in rule:
                rule["for"] = FOR[rule["for"]]
            rules.append(rule)
        out.append({**group, "rules": rules})
    return out


class Prometheus:
    """A Prometheus process of this test's, and queries to its HTTP API."""

    def __init__(self, work: Path, groups: list[dict[str, Any]], metrics_port: int) -> None:
        (work / "rules.yaml").write_text(yaml.safe_dump({"groups": seconds_scale(groups)}, sort_keys=False))
        config = {
            "global": {"scrape_interval": f"{EVALUATION_S}s", "evaluation_interval": f"{EVALUATION_S}s"},
            "rule_files": ["rules.yaml"],
            "scrape_configs": [
                {
                    "job_name": "ray",
                    # The label the PodMonitor's scrape gives every series of the env's pods.
                    "static_configs": [{"targets": [f"127.0.0.1:{metrics_port}"], "labels": {"namespace": NAMESPACE}}],
                }
            ],
        }
        (work / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.url = f"http://127.0.0.1:{free_port()}"
        self.log = work / "prometheus.log"
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [
                    str(PROMETHEUS),
                    f"--config.file={work / 'prometheus.yml'}",
                    f"--storage.tsdb.path={work / 'data'}",
                    f"--web.listen-address={self.url.removeprefix('http://')}",
                ],
                cwd=work,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"prometheus exited:\n{self.log.read_text()[-3000:]}"
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/-/ready", timeout=2).status_code == 200:
                    return
            time.sleep(0.2)
        pytest.fail(f"prometheus not ready after {READY_TIMEOUT_S} s:\n{self.log.read_text()[-3000:]}")

    def query(self, promql: str, **params: Any) -> list[dict[str, Any]]:
        path = "query_range" if "step" in params else "query"
        body = httpx.get(f"{self.url}/api/v1/{path}", params={"query": promql, **params}, timeout=10).json()
        assert body["status"] == "success", body
        return list(body["data"]["result"])

    def alerts(self) -> list[dict[str, Any]]:
        return list(httpx.get(f"{self.url}/api/v1/alerts", timeout=10).json()["data"]["alerts"])

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@contextlib.contextmanager
def locust(url: str, work: Path) -> Iterator[None]:
    """Locust's USERS calling the app without pause until the block ends."""
    env = {**os.environ, "DRAIN_RECORD": str(work / "requests.jsonl"), "DRAIN_PATH": f"/{APP}"}
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "locust", "--headless", "--locustfile", str(LOCUSTFILE), "--host", url),
            *("--users", str(USERS), "--spawn-rate", str(USERS), "--run-time", "300s"),
            *("--loglevel", "WARNING", "--only-summary"),
        ],
        env=env,
        cwd=work,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def sample_times(prometheus: Prometheus, state: str, at: float) -> list[float]:
    """Evaluation times (Prometheus's clock) at which the p95 alert was in `state`, up to `at`."""
    selector = f'ALERTS{{alertname="{LATENCY_ALERT}",alertstate="{state}",application="{APP}"}}'
    result = prometheus.query(f"{selector}[5m]", time=at)
    return sorted(float(t) for series in result for t, _ in series["values"])


def print_series(prometheus: Prometheus, start: float, end: float, marks: dict[str, float]) -> None:
    """What the rules recorded during the test, every 2 s, and the alerts."""
    selector = f'{{namespace="{NAMESPACE}",application="{APP}"}}'
    columns = {
        "req/s": request_rate_record("5m"),
        "5xx ratio": error_ratio_record("5m"),
        "p95 ms": P95_RECORD,
    }
    table: dict[float, dict[str, str]] = {}
    for title, record in columns.items():
        for series in prometheus.query(f"{record}{selector}", start=start, end=end, step="2s"):
            for t, value in series["values"]:
                table.setdefault(float(t), {})[title] = f"{float(value):.3g}"
    for series in prometheus.query(f'ALERTS{{namespace="{NAMESPACE}"}}', start=start, end=end, step="2s"):
        for t, _ in series["values"]:
            row = table.setdefault(float(t), {})
            row["alerts"] = row.get("alerts", "") + f" {series['metric']['alertname']}={series['metric']['alertstate']}"
    print(f"\nseries recorded by the rules (t in s from the start; windows {WINDOWS}, for {FOR}):")
    print(f"{'t':>6} {'req/s':>8} {'5xx ratio':>10} {'p95 ms':>8}  alerts")
    for t in sorted(table):
        row = table[t]
        notes = " ".join(f"<- {name}" for name, at in marks.items() if t - 2 < at <= t)
        print(
            f"{t - start:6.0f} {row.get('req/s', '-'):>8} {row.get('5xx ratio', '-'):>10} {row.get('p95 ms', '-'):>8}"
            f" {row.get('alerts', '')} {notes}"
        )


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """The fixture repo with its dev env holding only the slow app."""
    repo = tmp_path / "repo"
    shutil.copytree(FIXTURE_REPO, repo)
    env_file = repo / f"deployments/{ENV}/env.yaml"
    env = yaml.safe_load(env_file.read_text())
    del env["apps"]  # dev's overlay of the fixture's echo app
    env_file.write_text(yaml.safe_dump(env))
    return repo


def test_p95_alert_fires_after_its_for_window_and_not_before(ray_cluster: Any, repo: Path, tmp_path: Path) -> None:
    import ray
    from ray import serve

    began = time.monotonic()
    healthy = render(repo, None)
    (node,) = ray.nodes()
    prometheus = Prometheus(tmp_path, healthy.groups, node["MetricsExportPort"])
    port = free_port()
    try:
        served = deploy(healthy.serve_config, port)
        prometheus.wait_ready()
        with locust(served.url, tmp_path):
            started = time.time()
            # Healthy: wait for the rules to see the traffic, then watch it for HEALTHY_S.
            deadline = time.monotonic() + FIRING_TIMEOUT_S
            while not prometheus.query(f'{P95_RECORD}{{application="{APP}"}} >= 0'):
                assert time.monotonic() < deadline, "the rules never recorded a p95 of the app"
                time.sleep(EVALUATION_S)
            seen = time.time()
            time.sleep(HEALTHY_S)
            healthy_end = time.time()
            during = f"{healthy_end - started:.0f}s"
            quiet = prometheus.query(f'count_over_time(ALERTS{{namespace="{NAMESPACE}"}}[{during}])', time=healthy_end)
            # The fault, through the spec: a user_config that Serve applies in place.
            deploy(render(repo, FAULT_DELAY_S).serve_config, port)
            faulted = time.time()
            deadline = time.monotonic() + FIRING_TIMEOUT_S
            while not any(
                a["labels"]["alertname"] == LATENCY_ALERT and a["state"] == "firing" for a in prometheus.alerts()
            ):
                assert time.monotonic() < deadline, f"{LATENCY_ALERT} not firing {FIRING_TIMEOUT_S} s after the fault"
                time.sleep(EVALUATION_S / 2)
            fired = time.time()
        pending_at = sample_times(prometheus, "pending", fired)[0]
        firing_at = sample_times(prometheus, "firing", fired)[0]
        since_fault = f'count_over_time(ALERTS{{namespace="{NAMESPACE}"}}[{fired - faulted + 1:.0f}s])'
        fault_alerts = prometheus.query(f"count by (alertname, alertstate) ({since_fault})", time=fired)
        print_series(
            prometheus,
            started,
            fired + 2,  # the grid's last step at or after the first firing evaluation
            {"rules saw traffic": seen, "fault": faulted, "pending": pending_at, "firing": firing_at},
        )
        print(
            f"\ntimings: rules saw the traffic {seen - started:.1f} s after Locust started; healthy for"
            f" {healthy_end - seen:.1f} s with no alert; fault to pending {pending_at - faulted:.1f} s, pending to"
            f" firing {firing_at - pending_at:.1f} s (for: {FOR[LATENCY_FOR]}, evaluation every {EVALUATION_S} s);"
            f" whole test {time.monotonic() - began:.1f} s"
        )
    finally:
        prometheus.stop()
        serve.shutdown()

    assert quiet == [], f"alerts while healthy: {quiet}"
    for_s = float(FOR[LATENCY_FOR].removesuffix("s"))
    assert for_s <= firing_at - pending_at <= for_s + EVALUATION_S
    assert {(a["metric"]["alertname"], a["metric"]["alertstate"]) for a in fault_alerts} == {
        (LATENCY_ALERT, "pending"),
        (LATENCY_ALERT, "firing"),
    }
