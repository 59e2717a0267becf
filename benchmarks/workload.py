"""The zero-shot requests every system of the benchmark answers: the evaluation sentences against all the labels."""

from __future__ import annotations

from typing import Any

from serve_apps.zero_shot.evaluate import load_eval_set


def request_bodies() -> list[dict[str, Any]]:
    """One POST /predict body per evaluation sentence, each with every candidate label of the set (6)."""
    eval_set = load_eval_set()
    return [{"text": example.text, "labels": list(eval_set.labels)} for example in eval_set.examples]
