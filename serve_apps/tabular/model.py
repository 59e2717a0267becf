"""Breast-cancer classification with the XGBoost model from its joblib file; no Ray."""

from collections.abc import Sequence
from pathlib import Path

import joblib
import numpy as np

from serve_apps.common.schemas import ClassPrediction

NUM_FEATURES = 30


class TabularModel:
    """The joblib'd XGBClassifier and the names of its classes."""

    def __init__(self, path: Path, class_names: Sequence[str], num_threads: int = 1) -> None:
        # Unpickling runs code from the file: the caller passes a path whose sha256 was verified.
        self._classifier = joblib.load(path)
        self._classifier.set_params(n_jobs=num_threads)
        classes = len(self._classifier.classes_)
        if classes != len(class_names):
            raise ValueError(f"{path}: the model has {classes} classes, class_names names {len(class_names)}")
        if self._classifier.n_features_in_ != NUM_FEATURES:
            raise ValueError(
                f"{path}: the model takes {self._classifier.n_features_in_} features, the app sends {NUM_FEATURES}"
            )
        self.class_names = list(class_names)

    def predict(self, rows: Sequence[Sequence[float]]) -> list[ClassPrediction]:
        """One prediction per row of NUM_FEATURES values, in load_breast_cancer's feature order."""
        probabilities = self._classifier.predict_proba(np.asarray(rows, dtype=np.float64))
        predictions = []
        for row in probabilities:
            class_id = int(np.argmax(row))
            predictions.append(
                ClassPrediction(
                    class_name=self.class_names[class_id],
                    class_id=class_id,
                    probabilities=dict(zip(self.class_names, (float(p) for p in row), strict=True)),
                )
            )
        return predictions
