"""Zero-shot traffic: the evaluation sentences (serve_apps/zero_shot/eval_set.yaml) against their candidate labels."""

import itertools
import random
from collections import Counter
from typing import Any

from loadtests.workload import field, is_probability, require, sums_to_one
from serve_apps.zero_shot.evaluate import EvalSet, load_eval_set

# A client asks for independent per-label scores now and then; both modes share the batch.
MULTI_LABEL_SHARE = 0.25


class ZeroShotWorkload:
    """One evaluation sentence per request, its candidate labels in a fresh order each time."""

    def __init__(self, eval_set: EvalSet | None = None) -> None:
        eval_set = eval_set or load_eval_set()
        self._texts = [example.text for example in eval_set.examples]
        self._labels = list(eval_set.labels)

    def request(self, rng: random.Random) -> dict[str, Any]:
        """A sentence, the shuffled labels and multi_label true for MULTI_LABEL_SHARE of the requests."""
        return {
            "text": rng.choice(self._texts),
            "labels": rng.sample(self._labels, k=len(self._labels)),
            "multi_label": rng.random() < MULTI_LABEL_SHARE,
        }

    def check(self, request: dict[str, Any], body: Any) -> None:
        """The Hugging Face pipeline shape: the text back, the sent labels ranked by descending score in [0, 1].

        Without multi_label the scores are a distribution over the labels, so they also sum to 1.
        """
        sequence = field(body, "sequence", str)
        require(sequence == request["text"], f"sequence {sequence[:60]!r} is not the text sent")
        labels = field(body, "labels", list)
        scores = field(body, "scores", list)
        sent = request["labels"]
        require(
            all(isinstance(label, str) for label in labels) and Counter(labels) == Counter(sent),
            f"labels {labels} are not a permutation of the labels sent {sent}",
        )
        require(len(scores) == len(labels), f"{len(scores)} scores for {len(labels)} labels")
        require(all(map(is_probability, scores)), f"scores {scores} not all in [0, 1]")
        require(all(a >= b for a, b in itertools.pairwise(scores)), f"scores {scores} not descending")
        if not request.get("multi_label", False):
            require(sums_to_one(scores), f"single-label scores sum to {sum(scores)}, not 1")
