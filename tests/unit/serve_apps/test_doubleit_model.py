"""The DoubleIt TorchScript artifact, without Ray."""

import sys
from pathlib import Path

import pytest

from serve_apps.doubleit.model import DoubleItModel


@pytest.fixture(scope="module")
def model(built_models: dict[str, Path]) -> DoubleItModel:
    return DoubleItModel(built_models["doubleit"])


def test_doubles_exactly(model: DoubleItModel) -> None:
    values = [0.0, 1.0, -2.5, 0.1, 1 / 3, 123456789.123, 2.0**53 + 2, 5e-324, sys.float_info.max / 2]
    assert model.predict(values) == [2 * value for value in values]


def test_keeps_order_and_length(model: DoubleItModel) -> None:
    values = [float(i) for i in range(1000)]
    assert model.predict(values) == [2.0 * i for i in range(1000)]
