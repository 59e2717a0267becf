"""Ray Serve app: doubles numbers with a TorchScript module (POST /predict, GET /healthz, GET /stats).

Top-level imports stay light (the render step imports this module for DoubleItArgs); torch is imported when a
replica starts.
"""

import sys
import time
from typing import TYPE_CHECKING, Annotated

from fastapi import Request
from pydantic import BaseModel, ConfigDict, Field
from ray import serve
from ray.serve import Application

from serve_apps.common.api import make_api, reject
from serve_apps.common.artifact import ModelArtifact
from serve_apps.common.page import add_try_it_page
from serve_apps.common.replica import ModelReplica, ReplicaStats, assigned_cpus
from serve_apps.common.schemas import FiniteFloat, Health, PredictionLogSettings

if TYPE_CHECKING:
    from serve_apps.doubleit.model import DoubleItModel

# Past half the largest float the double would be infinite, which JSON cannot carry.
LARGEST_DOUBLABLE = sys.float_info.max / 2
# Most values the request model accepts, whatever Args.max_values says: that limit's largest value.
VALUES_CEILING = 1_000_000


class DoubleItArgs(BaseModel):
    """Arguments of the doubleit app (the `args` of its Serve application)."""

    model_config = ConfigDict(extra="forbid")

    model: ModelArtifact = Field(description="TorchScript module built by `python -m serve_apps.build_models`.")
    max_values: int = Field(default=10_000, ge=1, le=VALUES_CEILING, description="Most values in one request.")
    prediction_log: PredictionLogSettings = Field(
        default_factory=PredictionLogSettings, description="Buffering of the prediction log."
    )


class DoubleItRequest(BaseModel):
    """POST /predict body."""

    model_config = ConfigDict(extra="forbid")

    values: list[Annotated[FiniteFloat, Field(ge=-LARGEST_DOUBLABLE, le=LARGEST_DOUBLABLE)]] = Field(
        min_length=1,
        max_length=VALUES_CEILING,
        description="Numbers to double; at most Args.max_values (default 10000).",
        examples=[[1, 2.5, -3]],
    )


class DoubleItResponse(BaseModel):
    """POST /predict response."""

    values: list[float] = Field(description="2 * x for every x, in request order; exact (float64).")


api = make_api(title="DoubleIt", description="Doubles numbers with a TorchScript module.")
add_try_it_page(api, "doubleit")


@serve.deployment
@serve.ingress(api)
class DoubleIt(ModelReplica):
    """Runs the scripted doubling module."""

    model: "DoubleItModel"

    def __init__(self, args: DoubleItArgs) -> None:
        from serve_apps.doubleit.model import DoubleItModel

        self._args = args
        super().__init__(args.model, args.prediction_log, lambda path: DoubleItModel(path, num_threads=assigned_cpus()))

    @api.post("/predict")
    def predict(self, request: DoubleItRequest, http_request: Request) -> DoubleItResponse:
        """Double every value."""
        started = time.perf_counter()
        if len(request.values) > self._args.max_values:
            reject(["values"], f"at most {self._args.max_values} values per request", len(request.values))
        response = DoubleItResponse(values=self.model.predict(request.values))
        self.record(http_request, request, response, [], started)
        return response

    @api.get("/healthz")
    def healthz(self) -> Health:
        """200 once the model is loaded."""
        return self.health_report()

    @api.get("/stats")
    def stats(self) -> ReplicaStats:
        """Logged requests and latency percentiles (doubling has no classes to count)."""
        return self.prediction_stats()


def app_builder(args: DoubleItArgs) -> Application:
    """The Serve application; Ray validates the config's `args` into DoubleItArgs."""
    # The decorators made DoubleIt a Deployment; mypy does not apply class decorators.
    return DoubleIt.bind(args)  # type: ignore[attr-defined]
