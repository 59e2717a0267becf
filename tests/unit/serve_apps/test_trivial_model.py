"""The bench's trivial encoder is an artifact the zero-shot app serves as it serves the real one."""

from pathlib import Path

import numpy as np
import onnx

from benchmarks import trivial_model
from serve_apps.common.artifact import fetch
from serve_apps.zero_shot.app import hypotheses
from serve_apps.zero_shot.model import TOKENIZER_METADATA_KEY, Query, Scoring, ZeroShotModel


def test_trivial_encoder_loads_and_scores_like_the_real_one(built_models: dict[str, Path], tmp_path: Path) -> None:
    real = built_models["zero_shot"]
    artifact = trivial_model.build(real, tmp_path / "trivial.onnx")
    # fetch() checks the sha256 the artifact names, as a replica does before loading.
    model = ZeroShotModel(fetch(artifact, tmp_path / "cache"), Scoring(temperature=0.02, multi_label_threshold=0.1))

    def metadata(path: Path) -> dict[str, str]:
        return {p.key: p.value for p in onnx.load(path, load_external_data=False).metadata_props}

    assert metadata(tmp_path / "trivial.onnx")[TOKENIZER_METADATA_KEY] == metadata(real)[TOKENIZER_METADATA_KEY]
    embeddings = model.embed(["short", "a somewhat longer sentence about the weather today"])
    assert embeddings.shape == (2, trivial_model.DIM)
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-5)
    labels = ("cooking", "sports", "finance")
    template = "This text is about {}."
    (result,) = model.classify([Query("The striker scored twice.", labels, hypotheses(template, labels), False)])
    assert sorted(result.labels) == sorted(labels)
    assert abs(sum(result.scores) - 1) < 1e-6
    assert result.scores == sorted(result.scores, reverse=True)
