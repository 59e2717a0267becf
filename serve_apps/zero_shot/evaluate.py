"""The zero-shot evaluation set and the two figures the build reports: accuracy and cosine agreement."""

from pathlib import Path

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from serve_apps.zero_shot.app import hypotheses
from serve_apps.zero_shot.model import Query, ZeroShotModel

EVAL_SET_PATH = Path(__file__).with_name("eval_set.yaml")


class EvalExample(BaseModel):
    """A sentence and its true label."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, description="The sentence to classify.")
    label: str = Field(description="Its true label, one of the set's labels.")


class EvalSet(BaseModel):
    """Sentences classified against the same candidate labels."""

    model_config = ConfigDict(extra="forbid")

    labels: list[str] = Field(min_length=2, description="Candidate labels offered for every sentence.")
    examples: list[EvalExample] = Field(min_length=1, description="The labelled sentences.")

    @model_validator(mode="after")
    def example_labels_are_candidates(self) -> "EvalSet":
        unknown = sorted({example.label for example in self.examples} - set(self.labels))
        if unknown:
            raise ValueError(f"examples use labels that are not candidates: {unknown}")
        return self


def load_eval_set(path: Path = EVAL_SET_PATH) -> EvalSet:
    """Read and validate an evaluation set YAML file."""
    return EvalSet.model_validate(yaml.safe_load(path.read_text()))


def accuracy(model: ZeroShotModel, eval_set: EvalSet, hypothesis_template: str) -> float:
    """Share of sentences whose top label is the true one."""
    labels = tuple(eval_set.labels)
    stated = hypotheses(hypothesis_template, labels)
    queries = [
        Query(text=example.text, labels=labels, hypotheses=stated, multi_label=False) for example in eval_set.examples
    ]
    results = model.classify(queries)
    hits = sum(result.labels[0] == example.label for result, example in zip(results, eval_set.examples, strict=True))
    return hits / len(eval_set.examples)


def mean_cosine(model: ZeroShotModel, reference: ZeroShotModel, eval_set: EvalSet) -> float:
    """Mean cosine similarity between the two models' embeddings of the evaluation sentences."""
    texts = [example.text for example in eval_set.examples]
    return float(np.mean(np.sum(model.embed(texts) * reference.embed(texts), axis=1)))
