"""The shared answer checks: HTTP status, JSON, and the ClassPredictions contract of iris and tabular."""

import json
import random
from typing import Any

import pytest

from loadtests.workload import InvalidResponse, check_class_predictions, problem

CLASSES = ["setosa", "versicolor", "virginica"]


class EchoWorkload:
    """Requests {"x": 1}; a correct answer is {"x": 1}."""

    def request(self, rng: random.Random) -> dict[str, Any]:
        return {"x": 1}

    def check(self, request: dict[str, Any], body: Any) -> None:
        if body != request:
            raise InvalidResponse(f"{body} is not {request}")


def minimal_prediction(**changes: Any) -> dict[str, Any]:
    return {
        "class": "versicolor",
        "class_id": 1,
        "probabilities": {"setosa": 0.1, "versicolor": 0.7, "virginica": 0.2},
        **changes,
    }


def check(*predictions: dict[str, Any], rows: int = 1) -> None:
    check_class_predictions({"predictions": list(predictions)}, rows, CLASSES)


def test_a_correct_answer_is_no_problem() -> None:
    assert problem(EchoWorkload(), {"x": 1}, 200, '{"x": 1}') is None


def test_an_http_error_is_a_problem_with_the_body_excerpt() -> None:
    assert problem(EchoWorkload(), {"x": 1}, 503, "overloaded" * 100) == "HTTP 503: " + ("overloaded" * 20)


def test_a_body_that_is_not_json_is_a_problem() -> None:
    assert problem(EchoWorkload(), {"x": 1}, 200, "<html>") == "not JSON: '<html>'"


def test_a_wrong_answer_is_a_problem_with_the_check_message() -> None:
    assert problem(EchoWorkload(), {"x": 1}, 200, json.dumps({"x": 2})) == "invalid answer: {'x': 2} is not {'x': 1}"


def test_class_predictions_pass_when_consistent() -> None:
    check(minimal_prediction(), minimal_prediction(), rows=2)


@pytest.mark.parametrize(
    ("prediction", "message"),
    [
        (minimal_prediction(**{"class": "rose"}), r"class 'rose' not in"),
        (minimal_prediction(class_id=2), r"class_id 2 but 'versicolor' is class 1"),
        (minimal_prediction(probabilities={"setosa": 0.3, "versicolor": 0.7}), r"has classes"),
        (minimal_prediction(probabilities={"setosa": -0.1, "versicolor": 0.9, "virginica": 0.2}), r"not all in"),
        (minimal_prediction(probabilities={"setosa": 0.2, "versicolor": 0.7, "virginica": 0.2}), r"sum to 1.1"),
        (minimal_prediction(probabilities={"setosa": 0.6, "versicolor": 0.3, "virginica": 0.1}), r"below 0.6"),
        ({"class": "setosa"}, r"no 'class_id'"),
        ("setosa", r"expected a JSON object, got str"),
    ],
)
def test_class_predictions_reject_an_inconsistent_prediction(prediction: Any, message: str) -> None:
    with pytest.raises(InvalidResponse, match=message):
        check(prediction)


def test_class_predictions_need_one_prediction_per_row() -> None:
    with pytest.raises(InvalidResponse, match="1 predictions for 2 rows"):
        check(minimal_prediction(), rows=2)


def test_class_predictions_need_a_predictions_list() -> None:
    with pytest.raises(InvalidResponse, match="predictions is dict, not list"):
        check_class_predictions({"predictions": {}}, 1, CLASSES)
