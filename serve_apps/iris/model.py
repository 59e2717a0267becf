"""Iris classification with ONNX Runtime; no Ray."""

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from serve_apps.common.onnx_session import onnx_session
from serve_apps.common.schemas import ClassPrediction

INPUT_NAME = "features"
LABEL_OUTPUT = "label"
PROBABILITIES_OUTPUT = "probabilities"
CLASS_NAMES_METADATA_KEY = "class_names"
NUM_FEATURES = 4


class IrisModel:
    """The ONNX iris classifier; class names come from the artifact's metadata."""

    def __init__(self, path: Path, num_threads: int = 1) -> None:
        self._session = onnx_session(path, num_threads)
        metadata = self._session.get_modelmeta().custom_metadata_map
        if CLASS_NAMES_METADATA_KEY not in metadata:
            raise ValueError(f"{path}: no {CLASS_NAMES_METADATA_KEY!r} in the ONNX metadata; not an iris artifact")
        self.class_names: list[str] = json.loads(metadata[CLASS_NAMES_METADATA_KEY])
        features = self._session.get_inputs()[0].shape[1]
        if features != NUM_FEATURES:
            raise ValueError(f"{path}: the model takes {features} features, the iris app sends {NUM_FEATURES}")

    def predict(self, rows: Sequence[Sequence[float]]) -> list[ClassPrediction]:
        """One prediction per row of sepal length, sepal width, petal length, petal width (cm)."""
        labels, probabilities = self._session.run(
            [LABEL_OUTPUT, PROBABILITIES_OUTPUT], {INPUT_NAME: np.asarray(rows, dtype=np.float32)}
        )
        return [
            ClassPrediction(
                class_name=self.class_names[int(label)],
                class_id=int(label),
                probabilities=dict(zip(self.class_names, (float(p) for p in row), strict=True)),
            )
            for label, row in zip(labels, probabilities, strict=True)
        ]
