"""Pydantic models the apps share in their Args, user_config and HTTP API.

Import-light (pydantic only): the spec code imports the apps' Args, and through them this module.
"""

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

# Strict: a JSON string such as "5.1" is not a number; no NaN or infinity either. JSON integers are accepted.
FiniteFloat = Annotated[float, Field(strict=True, allow_inf_nan=False)]
# Models compute in float32: a finite input near its limit (3.4e38) overflows inside the model and comes out NaN.
# No real feature is anywhere near this bound; requests beyond it get a 422 instead of a 500.
FEATURE_LIMIT = 1e6
FeatureValue = Annotated[float, Field(strict=True, allow_inf_nan=False, ge=-FEATURE_LIMIT, le=FEATURE_LIMIT)]


def utf8_encodable(value: Any) -> Any:
    """`value`, unless it is a str with no UTF-8 encoding: a lone surrogate, which JSON allows ("\\ud800")."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as error:
            found = f"U+{ord(value[error.start]):04X}"
            raise ValueError(f"must be valid Unicode: lone surrogate {found} at character {error.start}") from None
    return value


# Last in `Annotated[str, StringConstraints(...), UTF8]`, so it runs first: pydantic's constrained str refuses a lone
# surrogate too, but without saying which character; a plain str lets it through to the tokenizer, which raises.
UTF8 = BeforeValidator(utf8_encodable)


def not_blank(text: str) -> str:
    """`text`, unless it holds nothing but whitespace: a model given only padding answers, but about nothing."""
    if not text.strip():
        raise ValueError("must not be empty or blank")
    return text


NotBlank = AfterValidator(not_blank)


class PredictionLogSettings(BaseModel):
    """How a replica buffers and writes its prediction log; the database URL comes from $PREDICTION_DB_URL."""

    model_config = ConfigDict(extra="forbid")

    buffer_rows: int = Field(
        default=10_000,
        ge=1,
        description=(
            "Rows kept while the database is slow or unreachable; past it the oldest rows are dropped and counted."
        ),
    )
    batch_rows: int = Field(default=500, ge=1, description="Most rows written in one transaction.")
    flush_interval_s: float = Field(
        default=0.1, gt=0, le=10, description="Longest a row waits in the buffer while the database is healthy."
    )
    retry_max_s: float = Field(
        default=2.0, gt=0, le=300, description="Longest pause between retries while the database is unreachable."
    )
    connect_timeout_s: int = Field(
        default=3, ge=1, le=60, description="MySQL connect/read/write timeout, so an outage cannot hang the writer."
    )


class BatchingConfig(BaseModel):
    """Request batching of an app's model calls (serve_apps/common/batching.py), carried inside user_config."""

    model_config = ConfigDict(extra="forbid")

    max_batch_size: int = Field(ge=1, le=1024, description="Most requests answered by one model call.")
    batch_wait_timeout_s: float = Field(
        ge=0, le=10, description="Longest the first request of a batch waits for others to join it."
    )
    max_concurrent_batches: int = Field(
        default=1, ge=1, le=16, description="Batches in the model at once; 2 overlaps the model with HTTP work."
    )


class UserConfig(BaseModel):
    """user_config of an app with no in-place tunables: every key is an error."""

    model_config = ConfigDict(extra="forbid")


class BatchedUserConfig(BaseModel):
    """user_config of an app that batches requests."""

    model_config = ConfigDict(extra="forbid")

    batching: BatchingConfig | None = Field(
        default=None, description="Batching to apply in place; absent keeps the current batching."
    )


class Health(BaseModel):
    """GET /healthz: the replica has its model loaded."""

    status: str = Field(description="Always 'ok'; a replica without a model does not answer 200.")
    app: str = Field(description="Ray Serve application name.")
    model_sha256: str = Field(description="SHA-256 of the artifact the replica serves.")


class LatencyPercentiles(BaseModel):
    """Nearest-rank percentiles of logged latencies; null while nothing is logged."""

    p50: float | None = Field(description="Median latency in milliseconds.")
    p95: float | None = Field(description="95th percentile latency in milliseconds.")
    p99: float | None = Field(description="99th percentile latency in milliseconds.")


class PredictionStats(BaseModel):
    """GET /stats: what the prediction log holds for one app, plus this replica's buffer."""

    app: str = Field(description="Ray Serve application name the rows belong to.")
    predictions: int = Field(description="Logged requests of the app, all replicas and model versions.")
    counts: dict[str, int] = Field(description="Logged predictions per label or class.")
    latency_ms: LatencyPercentiles = Field(description="Latency percentiles over the logged requests.")
    buffered_rows: int = Field(description="Rows this replica holds that are not in the database yet.")
    dropped_rows: int = Field(description="Rows this replica dropped from a full buffer since it started.")


class ClassPrediction(BaseModel):
    """The predicted class of one instance."""

    class_name: str = Field(serialization_alias="class", description="Name of the most probable class.")
    class_id: int = Field(description="Index of the most probable class.")
    probabilities: dict[str, float] = Field(description="Probability of every class, by class name.")


class ClassPredictions(BaseModel):
    """POST /predict response of a classifier of feature rows, one prediction per instance in request order."""

    predictions: list[ClassPrediction] = Field(description="One prediction per instance, in request order.")
