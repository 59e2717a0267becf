"""A locustfile that calls the slow app (DRAIN_PATH) without pause and records every request to DRAIN_RECORD
(JSON lines: when it started and ended, wall clock, and whether it failed), for the graceful-shutdown test."""

import json
import os
from typing import Any

from locust import HttpUser, constant, events, task

_record = open(os.environ["DRAIN_RECORD"], "a", encoding="utf-8")  # noqa: SIM115 - open for the whole run


class Caller(HttpUser):
    """Calls the slow app; a refused connection is recorded like any other failure."""

    wait_time = constant(0.05)

    @task
    def call(self) -> None:
        self.client.get(os.environ["DRAIN_PATH"], name="slow")


@events.request.add_listener
def record(start_time: float, response_time: float, exception: BaseException | None, **_: Any) -> None:
    """Append one request: start and end (seconds since the epoch) and whether it failed."""
    line = {"start": start_time, "end": start_time + response_time / 1000, "failed": exception is not None}
    if exception is not None:
        line["error"] = repr(exception)[:200]
    _record.write(json.dumps(line) + "\n")
    _record.flush()
