"""The plain-language app's HTTP API: its Args, the request and response models and the server-sent events of
`POST /generate/stream`, and the rules a request must meet beyond its own fields (they depend on the Args).

Import-light (pydantic and the shared API helpers): the render step reads PlainLanguageArgs, and the load test
reads the models and the event names, without the model's runtime.

The stream (`text/event-stream`) is one `token` event per generated token, `data: {"index": i, "text": "<piece>"}`
with i counting from 0, then one `done` event whose data is the Generation (`text` is the pieces joined, `tokens`
their count); a failure after the stream started is an `error` event, `data: {"detail": "..."}`, and ends it.
"""

from typing import Annotated, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from serve_apps.common.api import reject
from serve_apps.common.artifact import ModelArtifact
from serve_apps.common.schemas import UTF8, NotBlank, PredictionLogSettings

# Ceilings of the request model, whatever the Args say: the largest value each Args limit may take.
TEXT_CHARS_CEILING = 100_000
MAX_NEW_TOKENS_CEILING = 512
BEAMS_CEILING = 8
# What a request that states no max_new_tokens gets, unless Args.max_new_tokens_limit is lower.
DEFAULT_MAX_NEW_TOKENS = 64
# numpy's legacy seeding, which samplers built on it take, accepts 32-bit seeds only.
SEED_CEILING = 2**32 - 1
STREAM_MEDIA_TYPE = "text/event-stream"
TOKEN_EVENT = "token"  # noqa: S105 - an event name, not a secret
DONE_EVENT = "done"
ERROR_EVENT = "error"


class PlainLanguageArgs(BaseModel):
    """Arguments of the plain-language app (the `args` of its Serve application)."""

    model_config = ConfigDict(extra="forbid")

    # Read by render (render/spec/builders.py): an app whose Args stream tokens may declare slo.ttft_p95_ms, and its
    # dashboard row and alerts cover time to first token, inter-token latency, tokens/s and queue depth.
    streams_tokens: ClassVar[bool] = True

    model: ModelArtifact = Field(
        description="The T5 checkpoint built by `python -m serve_apps.build_models`, verified by its sha256."
    )
    backend: Literal["onnx", "transformers"] = Field(
        default="onnx",
        description=(
            "onnx: ONNX Runtime, encoder and decoder with past key values; transformers: PyTorch's generate(),"
            " the reference the export is measured against."
        ),
    )
    num_threads: int = Field(default=1, ge=1, le=256, description="Intra-op threads per model call.")
    max_new_tokens_limit: int = Field(
        default=128,
        ge=1,
        le=MAX_NEW_TOKENS_CEILING,
        description=(
            "Most tokens one request may ask to generate (its max_new_tokens). A stream holds a replica's slot for"
            " its whole length, so this bounds how long one request keeps it."
        ),
    )
    max_input_chars: int = Field(
        default=2000, ge=1, le=TEXT_CHARS_CEILING, description="Longest text accepted, in characters."
    )
    max_beams: int = Field(default=4, ge=1, le=BEAMS_CEILING, description="Most beams a request may search with.")
    prediction_log: PredictionLogSettings = Field(
        default_factory=PredictionLogSettings, description="Buffering of the prediction log."
    )


class GenerateRequest(BaseModel):
    """POST /generate and /generate/stream body."""

    model_config = ConfigDict(extra="forbid")

    text: Annotated[str, StringConstraints(min_length=1, max_length=TEXT_CHARS_CEILING), UTF8, NotBlank] = Field(
        description="Clinical text to rewrite in plain words; at most Args.max_input_chars characters (default 2000).",
        examples=["Pt c/o SOB x3d, hx of CHF."],
    )
    max_new_tokens: int | None = Field(
        default=None,
        strict=True,
        ge=1,
        le=MAX_NEW_TOKENS_CEILING,
        description=(
            "Most tokens to generate; at most Args.max_new_tokens_limit (default 128). Unset:"
            f" {DEFAULT_MAX_NEW_TOKENS}, or the limit when it is lower."
        ),
    )
    num_beams: int = Field(
        default=1,
        strict=True,
        ge=1,
        le=BEAMS_CEILING,
        description="Beams of the search; 1 is greedy. At most Args.max_beams (default 4); /generate/stream takes 1.",
    )
    temperature: float = Field(
        default=0.0,
        strict=True,
        allow_inf_nan=False,
        ge=0,
        le=2,
        description="0 picks the likeliest token at each step; above 0 samples, flatter as it grows.",
    )
    seed: int | None = Field(
        default=None,
        strict=True,
        ge=0,
        le=SEED_CEILING,
        description="Seed of the sampling (temperature above 0), to repeat a sampled text; unset: a fresh one.",
    )

    @model_validator(mode="after")
    def beams_or_sampling(self) -> "GenerateRequest":
        if self.num_beams > 1 and self.temperature > 0:
            raise ValueError(
                f"num_beams must be 1 when temperature is above 0 (got {self.num_beams} beams at temperature"
                f" {self.temperature:g}): beam search keeps the likeliest texts, sampling draws one"
            )
        return self


class Generation(BaseModel):
    """POST /generate response, and the data of the stream's `done` event."""

    text: str = Field(description="The generated text.")
    tokens: int = Field(ge=0, description="Tokens generated; on the stream, the number of `token` events.")
    finish_reason: Literal["eos", "length"] = Field(
        description="eos: the model ended the text; length: max_new_tokens was reached first."
    )
    ttft_ms: float = Field(ge=0, description="Time from the parsed request to the first token, in milliseconds.")


class TokenEvent(BaseModel):
    """The data of one `token` event of the stream."""

    index: int = Field(ge=0, description="Position of the token in the text, from 0.")
    text: str = Field(description="The token's piece of the text; the pieces joined are Generation.text.")


class StreamError(BaseModel):
    """The data of the `error` event that ends a stream which failed after it started."""

    detail: str = Field(description="What went wrong.")


def sse_event(event: str, data: BaseModel) -> str:
    """One server-sent event: its name and its data as one line of JSON (JSON escapes every line break)."""
    return f"event: {event}\ndata: {data.model_dump_json()}\n\n"


def max_new_tokens(request: GenerateRequest, args: PlainLanguageArgs) -> int:
    """The tokens `request` may generate: what it asks, else DEFAULT_MAX_NEW_TOKENS within the Args' limit."""
    if request.max_new_tokens is not None:
        return request.max_new_tokens
    return min(DEFAULT_MAX_NEW_TOKENS, args.max_new_tokens_limit)


def within_limits(request: GenerateRequest, args: PlainLanguageArgs) -> None:
    """Reject (422, naming the field) what the request model's ceilings let through but the app's Args do not."""
    if len(request.text) > args.max_input_chars:
        reject(["text"], f"text must be at most {args.max_input_chars} characters", len(request.text))
    if request.max_new_tokens is not None and request.max_new_tokens > args.max_new_tokens_limit:
        reject(
            ["max_new_tokens"], f"max_new_tokens must be at most {args.max_new_tokens_limit}", request.max_new_tokens
        )
    if request.num_beams > args.max_beams:
        reject(["num_beams"], f"num_beams must be at most {args.max_beams}", request.num_beams)


def streamable(request: GenerateRequest) -> None:
    """Reject (422) a request /generate/stream cannot stream: beam search settles its text only at the end."""
    if request.num_beams > 1:
        reject(
            ["num_beams"],
            "num_beams must be 1 on /generate/stream: beam search knows its text only when it ends; POST /generate",
            request.num_beams,
        )
