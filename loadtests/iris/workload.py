"""Iris traffic: rows of sklearn's bundled iris measurements."""

import random
from typing import Any

from sklearn.datasets import load_iris

from loadtests.workload import check_class_predictions

MAX_ROWS = 4


class IrisWorkload:
    """1 to MAX_ROWS iris flowers per request, as an online client sends them."""

    def __init__(self) -> None:
        iris = load_iris()
        self._rows: list[list[float]] = iris.data.tolist()
        self.class_names: list[str] = iris.target_names.tolist()

    def request(self, rng: random.Random) -> dict[str, Any]:
        """Random rows of the data set."""
        return {"instances": rng.sample(self._rows, k=rng.randint(1, MAX_ROWS))}

    def check(self, request: dict[str, Any], body: Any) -> None:
        """One prediction per row, each one of the three species (see check_class_predictions)."""
        check_class_predictions(body, len(request["instances"]), self.class_names)
