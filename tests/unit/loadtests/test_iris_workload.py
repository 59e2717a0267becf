"""Iris traffic: rows of the bundled data set that the app accepts, answers checked against the three species."""

import random

import pytest
from sklearn.datasets import load_iris

from loadtests.iris.workload import MAX_ROWS, IrisWorkload
from loadtests.workload import InvalidResponse
from serve_apps.iris.app import IrisRequest

WORKLOAD = IrisWorkload()


def test_requests_are_dataset_rows_the_app_accepts() -> None:
    rows = {tuple(row) for row in load_iris().data.tolist()}
    rng = random.Random(3)
    for _ in range(50):
        request = WORKLOAD.request(rng)
        IrisRequest.model_validate(request)
        assert 1 <= len(request["instances"]) <= MAX_ROWS
        assert all(tuple(row) in rows for row in request["instances"])


def test_classes_are_the_three_species() -> None:
    assert WORKLOAD.class_names == ["setosa", "versicolor", "virginica"]


def test_an_answer_naming_another_class_is_rejected() -> None:
    request = {"instances": [[5.1, 3.5, 1.4, 0.2]]}
    body = {"predictions": [{"class": "rose", "class_id": 0, "probabilities": {"rose": 1.0}}]}
    with pytest.raises(InvalidResponse, match="'rose' not in"):
        WORKLOAD.check(request, body)
