"""DoubleIt traffic: random numbers the app accepts, answers checked to be their exact doubles."""

import random

import pytest

from loadtests.doubleit.workload import MAX_VALUES, DoubleItWorkload
from loadtests.workload import InvalidResponse
from serve_apps.doubleit.app import DoubleItRequest

WORKLOAD = DoubleItWorkload()
REQUEST = {"values": [1.5, -0.1, 3]}


def test_requests_are_accepted_by_the_app() -> None:
    rng = random.Random(11)
    for _ in range(50):
        request = WORKLOAD.request(rng)
        DoubleItRequest.model_validate(request)
        assert 1 <= len(request["values"]) <= MAX_VALUES


def test_exact_doubles_pass() -> None:
    WORKLOAD.check(REQUEST, {"values": [3.0, -0.2, 6.0]})


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ([3.0, -0.2], "2 values for 3 sent"),
        ([3.0, -0.20000000000000004, 6.0], r"values\[1\] is -0.20000000000000004, not 2 \* -0.1"),
        ([3.0, -0.2, "6"], r"values\[2\] is '6', not 2 \* 3"),
    ],
)
def test_anything_but_the_exact_doubles_is_rejected(values: list[object], message: str) -> None:
    with pytest.raises(InvalidResponse, match=message):
        WORKLOAD.check(REQUEST, {"values": values})
