"""Tabular traffic: breast-cancer rows the app accepts, answers checked against the class names it was given."""

import random

import pytest
from sklearn.datasets import load_breast_cancer

from loadtests.tabular.workload import MAX_ROWS, TabularWorkload
from loadtests.workload import InvalidResponse
from serve_apps.tabular.app import TabularRequest

WORKLOAD = TabularWorkload(["malignant", "benign"])


def test_requests_are_dataset_rows_the_app_accepts() -> None:
    rows = {tuple(row) for row in load_breast_cancer().data.tolist()}
    rng = random.Random(5)
    for _ in range(50):
        request = WORKLOAD.request(rng)
        TabularRequest.model_validate(request)
        assert 1 <= len(request["instances"]) <= MAX_ROWS
        assert all(tuple(row) in rows for row in request["instances"])


def test_a_correct_answer_passes() -> None:
    prediction = {"class": "benign", "class_id": 1, "probabilities": {"malignant": 0.02, "benign": 0.98}}
    WORKLOAD.check({"instances": [[0.0] * 30]}, {"predictions": [prediction]})


def test_a_probability_outside_zero_to_one_is_rejected() -> None:
    prediction = {"class": "benign", "class_id": 1, "probabilities": {"malignant": -0.5, "benign": 1.5}}
    with pytest.raises(InvalidResponse, match=r"not all in \[0, 1\]"):
        WORKLOAD.check({"instances": [[0.0] * 30]}, {"predictions": [prediction]})
