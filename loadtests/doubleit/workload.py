"""DoubleIt traffic: a few random numbers per request."""

import random
from typing import Any

from loadtests.workload import field, require

MAX_VALUES = 16
MAGNITUDE = 1e6


class DoubleItWorkload:
    """1 to MAX_VALUES numbers in [-MAGNITUDE, MAGNITUDE] per request."""

    def request(self, rng: random.Random) -> dict[str, Any]:
        """Random floats; their doubles are exact in float64."""
        return {"values": [rng.uniform(-MAGNITUDE, MAGNITUDE) for _ in range(rng.randint(1, MAX_VALUES))]}

    def check(self, request: dict[str, Any], body: Any) -> None:
        """Exactly 2 * x for every x sent, in order (float64 doubling and JSON's shortest repr are both exact)."""
        values = field(body, "values", list)
        sent = request["values"]
        require(len(values) == len(sent), f"{len(values)} values for {len(sent)} sent")
        for index, (got, x) in enumerate(zip(values, sent, strict=True)):
            require(got == 2 * x, f"values[{index}] is {got!r}, not 2 * {x!r}")
