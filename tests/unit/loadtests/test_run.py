"""The pieces of a load-test run that need no Serve: the results table and the readiness wait."""

import re
import socket
from pathlib import Path

import pytest

from loadtests.errors import LoadTestError
from loadtests.run import AppReport, table, wait_ready
from loadtests.slo import Measurement
from loadtests.spec import ROOT
from render.spec.load import load_specs
from render.spec.models import Slo

APPS = {app.name: app for app in load_specs(ROOT, ["dev"])["dev"].apps}


def report(app: str, **measured: float) -> AppReport:
    figures = {"requests": 480, "failures": 0, "rps": 57.25, "p50_ms": 21, "p95_ms": 38, **measured}
    return AppReport(APPS[app], 3, Measurement.model_validate(figures), Path("reports"))


def test_the_table_shows_measured_values_limits_and_verdicts() -> None:
    lines = table([report("zero-shot"), report("iris", p95_ms=420, failures=24)]).splitlines()
    assert re.split(r"\s{2,}", lines[0]) == [
        "app",
        "users",
        "requests",
        "req/s (min)",
        "p50 ms",
        "p95 ms (max)",
        "TTFT p95 ms (max)",
        "errors (max)",
        "SLO",
    ]
    zero_shot = APPS["zero-shot"].slo
    assert re.split(r"\s{2,}", lines[1]) == [
        "zero-shot",
        "3",
        "480",
        f"57.2 ({zero_shot.min_rps:g})",
        "21",
        f"38 ({zero_shot.p95_ms:g})",
        "-",
        f"0.00% ({zero_shot.error_rate:.2%})",
        "pass",
    ]
    assert lines[2].startswith("iris") and lines[2].endswith("FAIL: p95_ms, error_rate")


def test_the_table_columns_line_up() -> None:
    header, short, long = table([report("iris"), report("zero-shot", requests=12345)]).splitlines()
    assert header.index("SLO") == short.index("pass") == long.index("pass")
    assert header.index("requests") + len("requests") == short.index("480") + 3 == long.index("12345") + 5


def test_waiting_for_a_closed_port_gives_up_with_the_reason() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(LoadTestError, match=rf"http://127.0.0.1:{port}/iris/healthz is not ready after 0.5 s: "):
        wait_ready(f"http://127.0.0.1:{port}/iris/healthz", 0.5)


def test_the_table_shows_a_ttft_against_its_limit_and_a_missing_one_as_a_dash() -> None:
    streaming = APPS["iris"].model_copy(update={"slo": Slo(p95_ms=2000, error_rate=0.01, min_rps=2, ttft_p95_ms=300)})
    timed = AppReport(
        streaming,
        3,
        Measurement(requests=9, failures=0, rps=2.5, p50_ms=900, p95_ms=1500, ttft_p95_ms=120),
        Path("reports"),
    )
    untimed = AppReport(streaming, 3, Measurement(requests=9, failures=9, rps=2.5, p50_ms=9, p95_ms=9), Path("r"))
    _, first, second = table([timed, untimed]).splitlines()
    assert re.split(r"\s{2,}", first)[6] == "120 (300)"
    assert re.split(r"\s{2,}", second)[6] == "- (300)"
    assert second.endswith("FAIL: error_rate, ttft_p95_ms")
