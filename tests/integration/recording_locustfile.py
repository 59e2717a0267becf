"""A locustfile that runs one app's load-test user (E2E_APP_PACKAGE, e.g. iris) and records every answer.

Each answer goes to E2E_RECORD (JSON lines: the request id Serve returned, the status and the body), so the
end-to-end test can hold the prediction log against exactly what the clients saw.
"""

import importlib
import json
import os
from typing import Any

from locust import User, events

_module = importlib.import_module(f"loadtests.{os.environ['E2E_APP_PACKAGE']}.locustfile")
globals().update(
    {name: value for name, value in vars(_module).items() if isinstance(value, type) and issubclass(value, User)}
)
_record = open(os.environ["E2E_RECORD"], "a", encoding="utf-8")  # noqa: SIM115 - open for the whole run


@events.request.add_listener
def record(response: Any, exception: BaseException | None, **_: Any) -> None:
    """Append the request id, status and body of one answer."""
    headers = getattr(response, "headers", None) or {}
    line = {
        "request_id": headers.get("x-request-id"),
        "status": getattr(response, "status_code", 0),
        "body": getattr(response, "text", None),
        "failed": exception is not None,
    }
    _record.write(json.dumps(line) + "\n")
    _record.flush()
