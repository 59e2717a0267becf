"""Ray Serve app: zero-shot text classification (POST /predict, GET /healthz, GET /stats, /docs).

Request and response follow the Hugging Face zero-shot pipeline: `{"sequence", "labels", "scores"}` with
labels sorted by descending score. Scoring is described in serve_apps/zero_shot/model.py. Concurrent requests
are batched (serve_apps/common/batching.py: a batch is what queued while the model was busy); user_config
`batching` retunes the batch in place.

Top-level imports stay light (the render step imports this module for ZeroShotArgs); onnxruntime, numpy and
tokenizers are imported when a replica starts.
"""

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Request
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator
from ray import serve
from ray.serve import Application

from serve_apps.common.api import make_api, reject
from serve_apps.common.artifact import ModelArtifact
from serve_apps.common.batching import Batcher
from serve_apps.common.page import add_try_it_page
from serve_apps.common.replica import ModelReplica, ReplicaStats, assigned_cpus, parse_user_config
from serve_apps.common.schemas import UTF8, BatchedUserConfig, Health, NotBlank, PredictionLogSettings

if TYPE_CHECKING:
    from serve_apps.zero_shot.model import Classification, Query, ZeroShotModel

LABEL_PLACEHOLDER = "{}"
# Ceilings of the request model, whatever the Args say: the largest value each Args limit may take.
TEXT_CHARS_CEILING = 100_000
LABELS_CEILING = 200
LABEL_CHARS_CEILING = 1000
TEMPLATE_CHARS_CEILING = 1000
# Batching defaults, used until user_config `batching` says otherwise.
MAX_BATCH_SIZE = 16
BATCH_WAIT_TIMEOUT_S = 0.005


def hypotheses(template: str, labels: Sequence[str]) -> tuple[str, ...]:
    """The hypothesis sentence of each label: the template with its {} replaced by the label.

    str.replace rather than str.format: a template from a client may hold other braces.
    """
    return tuple(template.replace(LABEL_PLACEHOLDER, label) for label in labels)


def _check_placeholder(template: str) -> None:
    # Once: a label stated twice in one hypothesis is not what the scores were tuned on.
    count = template.count(LABEL_PLACEHOLDER)
    if count != 1:
        raise ValueError(
            f"the hypothesis template must contain {LABEL_PLACEHOLDER} exactly once, where the label goes; "
            f"found {count}"
        )


Template = Annotated[str, StringConstraints(max_length=TEMPLATE_CHARS_CEILING), UTF8]


class ZeroShotArgs(BaseModel):
    """Arguments of the zero-shot app (the `args` of its Serve application)."""

    model_config = ConfigDict(extra="forbid")

    model: ModelArtifact = Field(
        description="ONNX encoder with its tokenizer, built by `python -m serve_apps.build_models` (int8 or fp32)."
    )
    hypothesis_template: Template = Field(
        default="This text is about {}.",
        description=(
            f"Sentence stating a label, {{}} (exactly once) standing for the label; a request may override it. "
            f"At most {TEMPLATE_CHARS_CEILING} characters."
        ),
    )
    temperature: float = Field(
        default=0.02,
        gt=0,
        le=1,
        description=(
            "Divides cosine similarities before softmax/sigmoid. It sets how peaked the scores are, not which "
            "label wins; 0.02 is close to the lowest log-loss on the evaluation set."
        ),
    )
    multi_label_threshold: float = Field(
        default=0.1,
        ge=-1,
        le=1,
        description=(
            "Cosine at which a label scores 0.5 when multi_label is true; on the evaluation set true labels "
            "average 0.20 and wrong ones 0.01."
        ),
    )
    max_labels: int = Field(default=20, ge=1, le=LABELS_CEILING, description="Most candidate labels in one request.")
    max_text_chars: int = Field(
        default=2000,
        ge=1,
        le=TEXT_CHARS_CEILING,
        description="Longest text accepted, in characters; the encoder reads only its first 256 tokens anyway.",
    )
    max_label_chars: int = Field(
        default=100, ge=1, le=LABEL_CHARS_CEILING, description="Longest candidate label accepted, in characters."
    )
    max_template_chars: int = Field(
        default=200,
        ge=len(LABEL_PLACEHOLDER),
        le=TEMPLATE_CHARS_CEILING,
        description=(
            "Longest hypothesis_template a request may send, in characters. Each distinct hypothesis is embedded "
            "and cached (label_cache_size), so this and max_label_chars bound the cache's memory."
        ),
    )
    num_threads: int | None = Field(
        default=None,
        ge=1,
        le=256,
        description="ONNX Runtime intra-op threads per model call; default: the CPUs Ray assigned to the replica.",
    )
    label_cache_size: int = Field(
        default=1024, ge=0, description="Hypothesis embeddings kept (least recently used go first)."
    )
    prediction_log: PredictionLogSettings = Field(
        default_factory=PredictionLogSettings, description="Buffering of the prediction log."
    )

    @field_validator("hypothesis_template")
    @classmethod
    def template_has_placeholder(cls, template: str) -> str:
        _check_placeholder(template)
        return template


Label = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=LABEL_CHARS_CEILING), UTF8]


class ZeroShotRequest(BaseModel):
    """POST /predict body."""

    model_config = ConfigDict(extra="forbid")

    text: Annotated[str, StringConstraints(max_length=TEXT_CHARS_CEILING), UTF8, NotBlank] = Field(
        description="Text to classify; at most Args.max_text_chars characters (default 2000)."
    )
    labels: list[Label] = Field(
        min_length=1,
        max_length=LABELS_CEILING,
        description=(
            "Candidate labels, unique; at most Args.max_labels (default 20), each at most Args.max_label_chars "
            "characters (default 100) once stripped."
        ),
        examples=[["sports", "cooking"]],
    )
    multi_label: bool = Field(
        default=False,
        strict=True,
        description="Score each label on its own (scores do not sum to 1) instead of choosing one; JSON true/false.",
    )
    hypothesis_template: Template | None = Field(
        default=None,
        description=(
            "Overrides the app's hypothesis template for this request; must contain {} exactly once, at most "
            "Args.max_template_chars characters (default 200)."
        ),
    )

    @field_validator("labels")
    @classmethod
    def labels_are_unique(cls, labels: list[str]) -> list[str]:
        repeated = sorted({label for label in labels if labels.count(label) > 1})
        if repeated:
            raise ValueError(f"labels must be unique; repeated: {repeated}")
        return labels

    @field_validator("hypothesis_template")
    @classmethod
    def template_has_placeholder(cls, template: str | None) -> str | None:
        if template is not None:
            _check_placeholder(template)
        return template


class ZeroShotResponse(BaseModel):
    """POST /predict response, the Hugging Face zero-shot pipeline shape."""

    sequence: str = Field(description="The text classified.")
    labels: list[str] = Field(description="The candidate labels, highest score first.")
    scores: list[float] = Field(description="Score of each label in `labels` order.")


def within_limits(request: ZeroShotRequest, args: ZeroShotArgs) -> None:
    """Reject (422, naming the field) what the request model's ceilings let through but the app's Args do not."""
    if len(request.text) > args.max_text_chars:
        reject(["text"], f"text must be at most {args.max_text_chars} characters", len(request.text))
    if len(request.labels) > args.max_labels:
        reject(["labels"], f"at most {args.max_labels} labels per request", len(request.labels))
    for index, label in enumerate(request.labels):
        if len(label) > args.max_label_chars:
            reject(["labels", index], f"a label must be at most {args.max_label_chars} characters", len(label))
    template = request.hypothesis_template
    if template is not None and len(template) > args.max_template_chars:
        reject(
            ["hypothesis_template"],
            f"hypothesis_template must be at most {args.max_template_chars} characters",
            len(template),
        )


api = make_api(title="Zero-shot classifier", description="Classify text against labels chosen per request.")
add_try_it_page(api, "zero_shot")


@serve.deployment
@serve.ingress(api)
class ZeroShotClassifier(ModelReplica):
    """Embeds texts and label hypotheses with MiniLM in ONNX Runtime and scores labels by cosine."""

    model: "ZeroShotModel"

    def __init__(self, args: ZeroShotArgs) -> None:
        from serve_apps.zero_shot.model import Scoring, ZeroShotModel

        self._args = args
        scoring = Scoring(temperature=args.temperature, multi_label_threshold=args.multi_label_threshold)
        super().__init__(
            args.model,
            args.prediction_log,
            lambda path: ZeroShotModel(
                path, scoring, num_threads=args.num_threads or assigned_cpus(), label_cache_size=args.label_cache_size
            ),
        )
        # The model runs in a worker thread, so that requests keep queueing for the next batch while one runs.
        self._classify: Batcher[Query, Classification] = Batcher(
            self.model.classify, MAX_BATCH_SIZE, BATCH_WAIT_TIMEOUT_S
        )

    def reconfigure(self, user_config: dict[str, Any]) -> None:
        """Apply user_config; `batching` retunes the batcher in place."""
        config = parse_user_config(BatchedUserConfig, user_config, self.app_name)
        if config.batching is not None:
            self._classify.set_max_batch_size(config.batching.max_batch_size)
            self._classify.set_batch_wait_timeout_s(config.batching.batch_wait_timeout_s)
            self._classify.set_max_concurrent_batches(config.batching.max_concurrent_batches)

    @api.post("/predict")
    async def predict(self, request: ZeroShotRequest, http_request: Request) -> ZeroShotResponse:
        """Score the candidate labels for the text."""
        started = time.perf_counter()
        within_limits(request, self._args)
        from serve_apps.zero_shot.model import InvalidInput, Query

        template = request.hypothesis_template or self._args.hypothesis_template
        labels = tuple(request.labels)
        query = Query(
            text=request.text, labels=labels, hypotheses=hypotheses(template, labels), multi_label=request.multi_label
        )
        try:
            result = await self._classify(query)
        except InvalidInput as error:
            reject([error.field], str(error), None)
        response = ZeroShotResponse(sequence=result.sequence, labels=result.labels, scores=result.scores)
        # Counted as predicted: the top label, or in multi-label mode every label scoring at least 0.5.
        if request.multi_label:
            predicted = [label for label, score in zip(result.labels, result.scores, strict=True) if score >= 0.5]
        else:
            predicted = result.labels[:1]
        self.record(http_request, request, response, predicted, started)
        return response

    @api.get("/healthz")
    def healthz(self) -> Health:
        """200 once the model is loaded."""
        return self.health_report()

    @api.get("/stats")
    def stats(self) -> ReplicaStats:
        """Logged predictions per label and latency percentiles."""
        return self.prediction_stats()


def app_builder(args: ZeroShotArgs) -> Application:
    """The Serve application; Ray validates the config's `args` into ZeroShotArgs."""
    # The decorators made ZeroShotClassifier a Deployment; mypy does not apply class decorators.
    return ZeroShotClassifier.bind(args)  # type: ignore[attr-defined]
