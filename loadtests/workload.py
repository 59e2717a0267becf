"""What a load-test user sends to an app and what every answer must satisfy; pure, so unit tests need no Locust.

A check raises InvalidResponse with a message short enough for Locust's failure table; Locust counts the request
as failed, which is how a wrong answer counts against the app's `error_rate` SLO.
"""

import json
import math
import random
from collections.abc import Sequence
from typing import Any, Protocol

from loadtests.sse import Event

HTTP_OK = 200
# Probabilities come out of float32 models; their sum is 1 to about 1e-7, far inside this.
SUM_TOLERANCE = 1e-3
BODY_EXCERPT_CHARS = 200


class InvalidResponse(Exception):
    """An answer that breaks the app's API contract."""


class Workload(Protocol):
    """The requests one app receives under load, and the contract of its answers."""

    def request(self, rng: random.Random) -> dict[str, Any]:
        """One POST <route_prefix>/predict body."""
        ...

    def check(self, request: dict[str, Any], body: Any) -> None:
        """Raise InvalidResponse unless `body` (decoded JSON) is a correct answer to `request`."""
        ...


class StreamingWorkload(Workload, Protocol):
    """An app that also streams its answer as server-sent events; `request` and `check` are its whole answers."""

    def stream_request(self, rng: random.Random) -> dict[str, Any]:
        """One body to stream the answer of."""
        ...

    def check_stream(self, request: dict[str, Any], events: Sequence[Event]) -> None:
        """Raise InvalidResponse unless `events` (the whole stream, in order) are a correct answer to `request`."""
        ...


def problem(workload: Workload, request: dict[str, Any], status: int, text: str | None) -> str | None:
    """Why an HTTP answer to `request` is a failure (wrong status, not JSON, breaks the contract), or None."""
    if status != HTTP_OK:
        return f"HTTP {status}: {(text or '')[:BODY_EXCERPT_CHARS]}"
    try:
        body = json.loads(text or "")
    except ValueError:
        return f"not JSON: {(text or '')[:BODY_EXCERPT_CHARS]!r}"
    try:
        workload.check(request, body)
    except InvalidResponse as error:
        return f"invalid answer: {error}"
    return None


def stream_problem(workload: StreamingWorkload, request: dict[str, Any], events: Sequence[Event]) -> str | None:
    """Why the events of a stream that ended are not an answer to `request`, or None."""
    try:
        workload.check_stream(request, events)
    except InvalidResponse as error:
        return f"invalid stream: {error}"
    return None


def require(condition: bool, message: str) -> None:
    """Raise InvalidResponse(message) unless `condition` holds."""
    if not condition:
        raise InvalidResponse(message)


def field(body: Any, key: str, kind: type | tuple[type, ...]) -> Any:
    """`body[key]`, required to be of `kind`."""
    require(isinstance(body, dict), f"expected a JSON object, got {type(body).__name__}")
    require(key in body, f"no {key!r} in {sorted(body)}")
    value = body[key]
    require(isinstance(value, kind), f"{key} is {type(value).__name__}, not {_kind_name(kind)}")
    return value


def is_probability(value: Any) -> bool:
    """A JSON number in [0, 1]."""
    return isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value <= 1


def sums_to_one(values: Sequence[float]) -> bool:
    """The values add up to 1, within SUM_TOLERANCE."""
    return math.isclose(math.fsum(values), 1.0, abs_tol=SUM_TOLERANCE)


def check_class_predictions(body: Any, rows: int, class_names: Sequence[str]) -> None:
    """A ClassPredictions answer (iris, tabular): one prediction per row, each consistent with `class_names`.

    Each prediction names a class of `class_names`, its `class_id` is that class's index, its probabilities cover
    exactly `class_names`, lie in [0, 1], sum to 1, and the named class is the most probable one.
    """
    predictions = field(body, "predictions", list)
    require(len(predictions) == rows, f"{len(predictions)} predictions for {rows} rows")
    for index, prediction in enumerate(predictions):
        name = field(prediction, "class", str)
        require(name in class_names, f"predictions[{index}].class {name!r} not in {list(class_names)}")
        class_id = field(prediction, "class_id", int)
        require(
            class_id == class_names.index(name),
            f"predictions[{index}].class_id {class_id} but {name!r} is class {class_names.index(name)}",
        )
        probabilities = field(prediction, "probabilities", dict)
        require(
            sorted(probabilities) == sorted(class_names),
            f"predictions[{index}].probabilities has classes {sorted(probabilities)}, not {sorted(class_names)}",
        )
        values = list(probabilities.values())
        require(all(map(is_probability, values)), f"predictions[{index}].probabilities {values} not all in [0, 1]")
        require(sums_to_one(values), f"predictions[{index}].probabilities sum to {math.fsum(values)}, not 1")
        require(
            probabilities[name] >= max(values) - SUM_TOLERANCE,
            f"predictions[{index}].class {name!r} has probability {probabilities[name]}, below {max(values)}",
        )


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(k.__name__ for k in kinds)
