"""Zero-shot traffic: valid requests from the evaluation set, and the pipeline-shaped answer checked in full."""

import random
from typing import Any

import pytest

from loadtests.workload import InvalidResponse
from loadtests.zero_shot.workload import ZeroShotWorkload
from serve_apps.zero_shot.app import ZeroShotRequest
from serve_apps.zero_shot.evaluate import load_eval_set

WORKLOAD = ZeroShotWorkload()
REQUEST = {"text": "The striker scored twice.", "labels": ["sports", "cooking", "finance"], "multi_label": False}


def answer(**changes: Any) -> dict[str, Any]:
    """A correct answer to REQUEST, with `changes` applied."""
    return {"sequence": REQUEST["text"], "labels": ["sports", "finance", "cooking"], "scores": [0.8, 0.15, 0.05]} | (
        changes
    )


def test_requests_are_evaluation_sentences_with_all_labels_and_valid_for_the_app() -> None:
    eval_set = load_eval_set()
    rng = random.Random(7)
    for _ in range(50):
        request = WORKLOAD.request(rng)
        ZeroShotRequest.model_validate(request)
        assert request["text"] in {example.text for example in eval_set.examples}
        assert sorted(request["labels"]) == sorted(eval_set.labels)


def test_requests_shuffle_the_labels_and_mix_both_modes() -> None:
    rng = random.Random(7)
    requests = [WORKLOAD.request(rng) for _ in range(100)]
    assert len({tuple(request["labels"]) for request in requests}) > 1
    assert {request["multi_label"] for request in requests} == {False, True}


def test_a_correct_answer_passes() -> None:
    WORKLOAD.check(REQUEST, answer())


def test_multi_label_scores_need_not_sum_to_one() -> None:
    WORKLOAD.check({**REQUEST, "multi_label": True}, answer(scores=[0.9, 0.8, 0.01]))


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (answer(sequence="other"), "is not the text sent"),
        (answer(labels=["sports", "finance", "politics"]), "not a permutation"),
        (answer(labels=["sports", "finance"], scores=[0.8, 0.2]), "not a permutation"),
        (answer(scores=[0.8, 0.2]), "2 scores for 3 labels"),
        (answer(scores=[1.2, -0.1, -0.1]), r"not all in \[0, 1\]"),
        (answer(scores=[0.15, 0.8, 0.05]), "not descending"),
        (answer(scores=[0.5, 0.3, 0.1]), "sum to 0.9"),
        (answer(scores="high"), "scores is str, not list"),
        ([], "expected a JSON object"),
    ],
)
def test_a_wrong_answer_is_rejected(body: Any, message: str) -> None:
    with pytest.raises(InvalidResponse, match=message):
        WORKLOAD.check(REQUEST, body)
