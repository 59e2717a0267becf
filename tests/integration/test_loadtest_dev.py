"""CI latency gate: a short load test of the dev environment through the code path of `python -m loadtests`.

Every app of deployments/dev runs on the session's Ray (`ray_cluster`) and gets CI_RUN's load; the test fails
naming each SLO of the dev spec that is violated, measured vs limit. Locust's files: reports/loadtest/dev/<app>/.
Against a stub app, the gate itself is shown to fail on wrong answers and on slow ones.
"""

import contextlib
import http.server
import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from loadtests.run import AppReport, LoadOptions, run_app, run_load_tests, table
from loadtests.spec import ROOT, locustfile_of
from render.spec.load import load_specs
from render.spec.models import App

# About 10 s per app in all (Locust start-up included): long enough for hundreds of requests per app at its
# min_rps, short enough for every commit. Users: as many as each app's SLOs call for (loadtests.slo.users_needed).
CI_RUN = LoadOptions(duration_s=8)


@pytest.mark.alone
def test_dev_meets_its_slos(ray_cluster: Any, capsys: pytest.CaptureFixture[str]) -> None:
    spec = load_specs(ROOT, ["dev"])["dev"]
    reports = run_load_tests(ROOT, spec, spec.apps, host=None, options=CI_RUN)
    with capsys.disabled():
        print(f"\nload test of dev ({CI_RUN.duration_s} s per app):\n{table(reports)}")
    broken = [str(violation) for report in reports for violation in report.violations]
    assert not broken, "SLO violated:\n" + "\n".join(broken)


class StubDoubleIt(http.server.BaseHTTPRequestHandler):
    """At `url`, /doubleit/healthz answers 200 and /doubleit/predict `answer(values)` after `delay_s`."""

    url = ""
    answer: Callable[[list[float]], list[float]] = staticmethod(lambda values: [2 * x for x in values])
    delay_s = 0.0

    def do_GET(self) -> None:
        self._reply(200 if self.path == "/doubleit/healthz" else 404, {})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        time.sleep(self.delay_s)
        self._reply(200, {"values": type(self).answer(body["values"])})

    def _reply(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        with contextlib.suppress(ConnectionError):  # Locust hangs up on requests in flight when its run ends
            self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def stub_doubleit() -> Iterator[type[StubDoubleIt]]:
    """A stand-in for the doubleit app at `stub.url`; tests set its `answer` and `delay_s`."""

    class Handler(StubDoubleIt):  # a class per test: what one test sets never reaches the next
        pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    Handler.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield Handler
    server.shutdown()
    thread.join()


def dev_doubleit() -> App:
    return next(app for app in load_specs(ROOT, ["dev"])["dev"].apps if app.name == "doubleit")


def drive_stub(stub: type[StubDoubleIt], reports: Path) -> AppReport:
    """A 3 s load test of the dev spec's doubleit app, sent to the stub."""
    app = dev_doubleit()
    return run_app(ROOT, "dev", app, locustfile_of(ROOT, app), stub.url, LoadOptions(duration_s=3), reports)


def test_a_wrong_answer_counts_as_a_failed_request(stub_doubleit: type[StubDoubleIt], tmp_path: Path) -> None:
    stub_doubleit.answer = staticmethod(lambda values: [2 * x + 1 for x in values])
    report = drive_stub(stub_doubleit, tmp_path)
    assert report.measurement.requests > 0
    assert report.measurement.failures == report.measurement.requests
    assert [violation.field for violation in report.violations] == ["error_rate"]
    assert "invalid answer: values[0] is" in (report.report_dir / "locust_failures.csv").read_text()


def test_a_slow_app_breaks_its_p95_slo(stub_doubleit: type[StubDoubleIt], tmp_path: Path) -> None:
    stub_doubleit.delay_s = 2 * dev_doubleit().slo.p95_ms / 1000
    report = drive_stub(stub_doubleit, tmp_path)
    assert report.measurement.failures == 0
    assert "p95_ms" in [violation.field for violation in report.violations]
