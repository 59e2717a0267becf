"""The base of every app's deployment: verified artifact, prediction log, health, stats, user_config.

Top-level imports stay light (the render step imports the apps, hence this module); the prediction log and its
SQLAlchemy come in when a replica starts.
"""

import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from fastapi import HTTPException, Request
from pydantic import BaseModel, Field, ValidationError
from ray import serve

from serve_apps.common.artifact import ModelArtifact, fetch
from serve_apps.common.schemas import Health, PredictionLogSettings, PredictionStats, UserConfig

# Ray Serve's proxy sets this header on every request (and returns it to the client).
REQUEST_ID_HEADER = "x-request-id"
CLOSE_TIMEOUT_S = 5.0

Config = TypeVar("Config", bound=BaseModel)


# Here rather than in schemas.py beside PredictionStats: the writer thread it reports on is this module's concern.
class ReplicaStats(PredictionStats):
    """GET /stats: PredictionStats, plus how often this replica's prediction-log writer had to be started again."""

    writer_restarts: int = Field(
        description="Times this replica started its prediction-log writer thread again after an error stopped it."
    )


def assigned_cpus() -> int:
    """Whole CPUs Ray assigned to this replica (at least 1): the thread count for its inference runtime."""
    import ray

    cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 1.0)
    return max(1, int(cpus))


def parse_user_config(model: type[Config], user_config: Mapping[str, Any], app: str) -> Config:
    """Validate user_config into `model`; an unknown key or a bad value raises ValueError naming it."""
    try:
        return model.model_validate(user_config)
    except ValidationError as error:
        problems = "; ".join(
            f"user_config.{'.'.join(str(part) for part in item['loc'])}: {item['msg']}" for item in error.errors()
        )
        accepted = ", ".join(sorted(model.model_fields)) or "none"
        raise ValueError(f"{app}: {problems}. Hint: user_config keys this app accepts: {accepted}") from None


class ModelReplica:
    """Fetches and verifies the artifact, loads the model, logs every answered request, answers /healthz and /stats.

    Subclasses declare the type of `model` (the object `load` returns).
    """

    model: Any

    def __init__(
        self, artifact: ModelArtifact, log_settings: PredictionLogSettings, load: Callable[[Path], Any]
    ) -> None:
        """`load` turns the verified local copy of `artifact` into the model."""
        from serve_apps.common.prediction_log import PredictionLog, default_db_url

        # Not `self.app`: Ray's ASGI ingress wrapper, a base of the served class, owns that name.
        self.app_name = serve.get_replica_context().app_name
        self.model_sha256 = artifact.sha256
        # fetch() raises ArtifactError before anything opens the model file.
        self.model = load(fetch(artifact))
        self.prediction_log: PredictionLog = PredictionLog(default_db_url(), self.app_name, log_settings)

    def reconfigure(self, user_config: dict[str, Any]) -> None:
        """Apply in-place tunables; this app has none, so any key is an error."""
        parse_user_config(UserConfig, user_config, self.app_name)

    def check_health(self) -> None:
        """Raise when the replica cannot do its job (no model, a log writer that cannot be started again), so Ray
        replaces it. A writer thread that died is started again here."""
        if self.__dict__.get("model") is None:
            raise RuntimeError(f"{self.app_name}: the model is not loaded")
        problem = self.prediction_log.writer_problem()
        if problem is not None:
            raise RuntimeError(f"{self.app_name}: {problem}")

    def record(
        self, http_request: Request, request: BaseModel, response: BaseModel, labels: Sequence[str], started: float
    ) -> None:
        """Log one answered request; `started` is the time.perf_counter() at which handling began."""
        self.prediction_log.record(
            request_id=http_request.headers.get(REQUEST_ID_HEADER, ""),
            model_sha256=self.model_sha256,
            request=request,
            response=response,
            labels=labels,
            latency_ms=(time.perf_counter() - started) * 1000,
        )

    def health_report(self) -> Health:
        """The GET /healthz body; 503 naming the problem when the prediction log cannot write."""
        problem = self.prediction_log.writer_problem()
        if problem is not None:
            raise HTTPException(status_code=503, detail=f"{self.app_name}: {problem}")
        return Health(status="ok", app=self.app_name, model_sha256=self.model_sha256)

    def prediction_stats(self) -> ReplicaStats:
        """The GET /stats body; 503 while the prediction database is unreachable."""
        from sqlalchemy.exc import SQLAlchemyError

        try:
            stats = self.prediction_log.stats()
        except SQLAlchemyError as error:
            # The class name only: the full error may quote SQL parameters, i.e. logged requests.
            detail = f"prediction database unavailable ({type(error).__name__})"
            raise HTTPException(status_code=503, detail=detail) from error
        return ReplicaStats(**stats.model_dump(), writer_restarts=self.prediction_log.writer_restarts)

    def __del__(self) -> None:
        # Ray Serve calls __del__ on graceful shutdown (after the ASGI app's shutdown): write what is buffered.
        # A replica whose __init__ failed has no log to close.
        prediction_log = self.__dict__.get("prediction_log")
        if prediction_log is not None:
            prediction_log.close(CLOSE_TIMEOUT_S)
