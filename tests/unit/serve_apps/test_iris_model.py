"""The iris ONNX artifact in ONNX Runtime, without Ray."""

from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_iris

from serve_apps.iris.model import IrisModel


@pytest.fixture(scope="module")
def model(built_models: dict[str, Path]) -> IrisModel:
    return IrisModel(built_models["iris"])


def test_class_names_come_from_the_artifact(model: IrisModel) -> None:
    assert model.class_names == ["setosa", "versicolor", "virginica"]


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        ([5.1, 3.5, 1.4, 0.2], "setosa"),  # load_iris row 0
        ([7.0, 3.2, 4.7, 1.4], "versicolor"),  # row 50
        ([6.3, 3.3, 6.0, 2.5], "virginica"),  # row 100
    ],
)
def test_known_samples(model: IrisModel, row: list[float], expected: str) -> None:
    (prediction,) = model.predict([row])
    assert prediction.class_name == expected
    assert prediction.class_id == model.class_names.index(expected)
    assert max(prediction.probabilities, key=prediction.probabilities.__getitem__) == expected
    assert sum(prediction.probabilities.values()) == pytest.approx(1.0, abs=1e-5)


def test_accuracy_on_the_data_set(model: IrisModel) -> None:
    iris = load_iris()
    predicted = [p.class_id for p in model.predict(iris.data.tolist())]
    assert np.mean(np.array(predicted) == iris.target) >= 0.95
