"""SLO verdicts: each limit is inclusive and each violation names measured vs limit."""

from typing import Any

import pytest

from loadtests.slo import OFFERED_LOAD_FACTOR, Measurement, Pacer, offered_rps, users_needed, violations
from render.spec.models import Slo

SLO = Slo(p95_ms=100, error_rate=0.01, min_rps=50)


def minimal_measurement(**changes: Any) -> Measurement:
    """A run that meets SLO with room to spare, with `changes` applied."""
    return Measurement(**{"requests": 1000, "failures": 0, "rps": 80.0, "p50_ms": 20, "p95_ms": 40, **changes})


def messages(measured: Measurement) -> list[str]:
    return [str(violation) for violation in violations("zero-shot", SLO, measured)]


def test_a_run_within_every_limit_passes() -> None:
    assert messages(minimal_measurement()) == []


def test_limits_are_inclusive() -> None:
    assert messages(minimal_measurement(p95_ms=100, failures=10, rps=50)) == []


def test_p95_above_its_limit_is_named_with_both_values() -> None:
    assert messages(minimal_measurement(p95_ms=143)) == ["zero-shot: p95 143 ms > 100 ms"]


def test_error_rate_above_its_limit_counts_the_failures() -> None:
    assert messages(minimal_measurement(failures=11)) == [
        "zero-shot: error rate 1.10% > 1.00% (11 of 1000 requests failed)"
    ]


def test_throughput_below_min_rps_is_named_with_both_values() -> None:
    assert messages(minimal_measurement(rps=42.06)) == ["zero-shot: throughput 42.1 req/s < 50 req/s"]


def test_every_violation_is_reported_in_slo_field_order() -> None:
    found = violations("iris", SLO, minimal_measurement(p95_ms=900, failures=500, rps=3))
    assert [violation.field for violation in found] == ["p95_ms", "error_rate", "min_rps"]


def test_a_run_without_requests_fails_even_without_a_throughput_slo() -> None:
    idle = Measurement(requests=0, failures=0, rps=0, p50_ms=0, p95_ms=0)
    assert [str(v) for v in violations("iris", Slo(p95_ms=50, error_rate=0, min_rps=0), idle)] == [
        "iris: no request was sent, so no SLO can be shown to hold"
    ]


def test_error_rate_of_an_empty_run_is_zero() -> None:
    assert Measurement(requests=0, failures=0, rps=0, p50_ms=0, p95_ms=0).error_rate == 0


def test_the_offered_load_is_above_min_rps() -> None:
    assert offered_rps(SLO) == pytest.approx(OFFERED_LOAD_FACTOR * 50) and OFFERED_LOAD_FACTOR > 1


@pytest.mark.parametrize(
    ("slo", "users"),
    [
        (Slo(p95_ms=100, error_rate=0.01, min_rps=50), 6),  # 60 req/s x 0.1 s in flight
        (Slo(p95_ms=50, error_rate=0.01, min_rps=50), 3),
        (Slo(p95_ms=60, error_rate=0.01, min_rps=50), 4),  # 3.6, rounded up
        (Slo(p95_ms=100, error_rate=0.01, min_rps=0), 1),  # back to back
    ],
)
def test_users_are_enough_to_offer_the_load_at_the_p95_limit(slo: Slo, users: int) -> None:
    assert users_needed(slo) == users


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_pacer_spaces_send_times_evenly_whoever_asks() -> None:
    clock = Clock()
    pacer = Pacer(rate=50, clock=clock)
    assert [pacer.wait() for _ in range(4)] == pytest.approx([0, 0.02, 0.04, 0.06])


def test_the_pacer_drops_slots_nobody_took_instead_of_bursting() -> None:
    clock = Clock()
    pacer = Pacer(rate=10, clock=clock)
    pacer.wait()
    clock.now += 1.0  # every user was busy for ten slots
    assert [pacer.wait(), pacer.wait()] == pytest.approx([0, 0.1])


def test_a_pacer_without_rate_never_waits() -> None:
    pacer = Pacer(rate=0, clock=Clock())
    assert [pacer.wait() for _ in range(3)] == [0, 0, 0]


STREAMING = Slo(p95_ms=2000, error_rate=0.01, min_rps=2, ttft_p95_ms=300)


def test_a_ttft_within_its_limit_passes_and_the_limit_is_inclusive() -> None:
    assert violations("plain-language", STREAMING, minimal_measurement(rps=5, ttft_p95_ms=300)) == []


def test_a_ttft_above_its_limit_is_named_with_both_values() -> None:
    found = violations("plain-language", STREAMING, minimal_measurement(rps=5, ttft_p95_ms=480))
    assert [(v.field, str(v)) for v in found] == [("ttft_p95_ms", "plain-language: TTFT p95 480 ms > 300 ms")]


def test_a_ttft_slo_without_a_timed_first_token_fails() -> None:
    found = violations("plain-language", STREAMING, minimal_measurement(rps=5))
    assert [str(v) for v in found] == ["plain-language: no stream's first token was timed, so ttft_p95_ms cannot hold"]


def test_an_app_without_a_ttft_slo_is_not_judged_on_ttft() -> None:
    assert messages(minimal_measurement(ttft_p95_ms=10_000)) == []
