"""The load an app's SLOs call for, what a load test measured, and which SLOs (spec `slo`) it breaks; pure.

An SLO is a latency at a throughput: the users together send OFFERED_LOAD_FACTOR x `min_rps` as one even stream,
so that p95 is measured at the throughput the spec promises, whatever the number of users. An app that cannot
keep up falls below `min_rps`; an app with `min_rps: 0` is driven back to back.
"""

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from render.spec.models import Slo

# Room for timer jitter, the first second and the odd answer slower than p95, so a healthy app measures >= min_rps.
OFFERED_LOAD_FACTOR = 1.2


def offered_rps(slo: Slo) -> float:
    """Requests per second the users send in all."""
    return OFFERED_LOAD_FACTOR * slo.min_rps


def users_needed(slo: Slo) -> int:
    """Users enough to keep `offered_rps` going while each answer takes up to `p95_ms` (Little's law), >= 1.

    Fewer could make the load generator, not the app, miss `min_rps`.
    """
    return max(1, math.ceil(offered_rps(slo) * slo.p95_ms / 1000))


class Pacer:
    """Hands out send times 1/rate apart, to whichever user asks first; rate 0 means no wait.

    So the app receives an even stream at `rate` however many users there are (a constant arrival rate, as k6's
    executor of that name): more users only mean more requests can be in flight when answers are slow. A slot
    nobody was free to take is dropped, not made up for with a burst later, so a slow app measures below `rate`.
    """

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._interval = 1 / rate if rate else 0.0
        self._clock = clock
        self._next = 0.0

    def wait(self) -> float:
        """Seconds from now until the caller's send time."""
        now = self._clock()
        slot = max(self._next, now)
        self._next = slot + self._interval
        return slot - now


class Measurement(BaseModel):
    """One app's load-test figures, as Locust computes them over the whole run (the numbers of its HTML report)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    requests: int = Field(ge=0, description="Requests answered or failed.")
    failures: int = Field(ge=0, description="Requests that failed: transport error, HTTP error or invalid body.")
    rps: float = Field(ge=0, description="Requests per second over the run.")
    p50_ms: float = Field(ge=0, description="Median response time, in milliseconds.")
    p95_ms: float = Field(ge=0, description="95th percentile response time, in milliseconds.")
    ttft_p95_ms: float | None = Field(
        default=None, ge=0, description="95th percentile time to a stream's first token, in ms; None: none timed."
    )

    @property
    def error_rate(self) -> float:
        """Failed share of the requests (0 when none was sent)."""
        return self.failures / self.requests if self.requests else 0.0


@dataclass(frozen=True)
class Violation:
    """One SLO an app broke: `field` names the Slo field, `text` says measured vs limit."""

    app: str
    field: str
    text: str

    def __str__(self) -> str:
        return f"{self.app}: {self.text}"


def violations(app: str, slo: Slo, measured: Measurement) -> list[Violation]:
    """Each SLO of `app` that `measured` breaks, in Slo field order; empty when every SLO holds.

    Limits are inclusive: p95 equal to `p95_ms`, an error rate equal to `error_rate` and a throughput equal to
    `min_rps` pass. A run without a single request shows nothing, so it fails; so does a run of an app with a
    `ttft_p95_ms` in which no first token was timed.
    """
    if measured.requests == 0:
        return [Violation(app, "min_rps", "no request was sent, so no SLO can be shown to hold")]
    found = []
    if measured.p95_ms > slo.p95_ms:
        found.append(Violation(app, "p95_ms", f"p95 {measured.p95_ms:g} ms > {slo.p95_ms:g} ms"))
    if measured.error_rate > slo.error_rate:
        found.append(
            Violation(
                app,
                "error_rate",
                f"error rate {measured.error_rate:.2%} > {slo.error_rate:.2%} "
                f"({measured.failures} of {measured.requests} requests failed)",
            )
        )
    if measured.rps < slo.min_rps:
        found.append(Violation(app, "min_rps", f"throughput {measured.rps:.1f} req/s < {slo.min_rps:g} req/s"))
    if slo.ttft_p95_ms is not None:
        if measured.ttft_p95_ms is None:
            found.append(Violation(app, "ttft_p95_ms", "no stream's first token was timed, so ttft_p95_ms cannot hold"))
        elif measured.ttft_p95_ms > slo.ttft_p95_ms:
            found.append(
                Violation(app, "ttft_p95_ms", f"TTFT p95 {measured.ttft_p95_ms:g} ms > {slo.ttft_p95_ms:g} ms")
            )
    return found
