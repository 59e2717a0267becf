"""The tabular joblib artifact behind TabularModel, compared with the same file used in-process."""

from pathlib import Path

import joblib
import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split

from serve_apps.tabular.build import SEED
from serve_apps.tabular.model import TabularModel

CLASS_NAMES = ["malignant", "benign"]


@pytest.fixture(scope="module")
def held_out() -> tuple[np.ndarray, np.ndarray]:
    features, labels = load_breast_cancer(return_X_y=True)
    _, test_features, _, test_labels = train_test_split(
        features, labels, test_size=0.2, random_state=SEED, stratify=labels
    )
    return test_features, test_labels


def test_predictions_equal_the_in_process_model(
    built_models: dict[str, Path], held_out: tuple[np.ndarray, np.ndarray]
) -> None:
    features, _ = held_out
    in_process = joblib.load(built_models["tabular"])
    served = TabularModel(built_models["tabular"], CLASS_NAMES).predict(features.tolist())
    expected = in_process.predict_proba(features)
    assert [p.class_id for p in served] == in_process.predict(features).tolist()
    assert [p.class_name for p in served] == [CLASS_NAMES[i] for i in in_process.predict(features)]
    np.testing.assert_allclose([[p.probabilities[n] for n in CLASS_NAMES] for p in served], expected, rtol=1e-6)


def test_held_out_accuracy(built_models: dict[str, Path], held_out: tuple[np.ndarray, np.ndarray]) -> None:
    features, labels = held_out
    served = TabularModel(built_models["tabular"], CLASS_NAMES).predict(features.tolist())
    assert np.mean([p.class_id for p in served] == labels) >= 0.93


def test_class_names_must_match_the_model(built_models: dict[str, Path]) -> None:
    with pytest.raises(ValueError, match="the model has 2 classes, class_names names 3"):
        TabularModel(built_models["tabular"], ["a", "b", "c"])
