"""Tabular traffic: rows of sklearn's breast-cancer data set (30 features each)."""

import random
from collections.abc import Sequence
from typing import Any

from sklearn.datasets import load_breast_cancer

from loadtests.workload import check_class_predictions

MAX_ROWS = 4


class TabularWorkload:
    """1 to MAX_ROWS patients per request, checked against the class names the app was given."""

    def __init__(self, class_names: Sequence[str]) -> None:
        self._rows: list[list[float]] = load_breast_cancer().data.tolist()
        self.class_names = list(class_names)

    def request(self, rng: random.Random) -> dict[str, Any]:
        """Random rows of the data set."""
        return {"instances": rng.sample(self._rows, k=rng.randint(1, MAX_ROWS))}

    def check(self, request: dict[str, Any], body: Any) -> None:
        """One prediction per row: a class of `class_names` with probabilities in [0, 1] (check_class_predictions)."""
        check_class_predictions(body, len(request["instances"]), self.class_names)
