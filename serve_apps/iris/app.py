"""Ray Serve app: iris species from flower measurements (POST /predict, GET /healthz, GET /stats, /docs).

Top-level imports stay light (the render step imports this module for IrisArgs); the model code is imported
when a replica starts.
"""

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
from serve_apps.common.schemas import ClassPredictions, FeatureValue, Health, PredictionLogSettings

if TYPE_CHECKING:
    from serve_apps.iris.model import IrisModel

NUM_FEATURES = 4
# Most rows the request model accepts, whatever Args.max_instances says: that limit's largest value.
INSTANCES_CEILING = 100_000


class IrisArgs(BaseModel):
    """Arguments of the iris app (the `args` of its Serve application)."""

    model_config = ConfigDict(extra="forbid")

    model: ModelArtifact = Field(description="The ONNX classifier built by `python -m serve_apps.build_models`.")
    max_instances: int = Field(default=1000, ge=1, le=INSTANCES_CEILING, description="Most rows in one request.")
    prediction_log: PredictionLogSettings = Field(
        default_factory=PredictionLogSettings, description="Buffering of the prediction log."
    )


class IrisRequest(BaseModel):
    """POST /predict body."""

    model_config = ConfigDict(extra="forbid")

    instances: list[Annotated[list[FeatureValue], Field(min_length=NUM_FEATURES, max_length=NUM_FEATURES)]] = Field(
        min_length=1,
        max_length=INSTANCES_CEILING,
        description=(
            "Rows of sepal length, sepal width, petal length, petal width (cm); at most Args.max_instances "
            "(default 1000)."
        ),
        examples=[[[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]],
    )


api = make_api(title="Iris classifier", description="Iris species from four flower measurements.")
add_try_it_page(api, "iris")


@serve.deployment
@serve.ingress(api)
class IrisClassifier(ModelReplica):
    """Classifies iris flowers with the ONNX model; one request may carry many rows."""

    model: "IrisModel"

    def __init__(self, args: IrisArgs) -> None:
        from serve_apps.iris.model import IrisModel

        self._args = args
        super().__init__(args.model, args.prediction_log, lambda path: IrisModel(path, num_threads=assigned_cpus()))

    @api.post("/predict")
    def predict(self, request: IrisRequest, http_request: Request) -> ClassPredictions:
        """Predict the species of every row."""
        started = time.perf_counter()
        if len(request.instances) > self._args.max_instances:
            reject(["instances"], f"at most {self._args.max_instances} rows per request", len(request.instances))
        response = ClassPredictions(predictions=self.model.predict(request.instances))
        self.record(http_request, request, response, [p.class_name for p in response.predictions], started)
        return response

    @api.get("/healthz")
    def healthz(self) -> Health:
        """200 once the model is loaded."""
        return self.health_report()

    @api.get("/stats")
    def stats(self) -> ReplicaStats:
        """Logged predictions per class and latency percentiles."""
        return self.prediction_stats()


def app_builder(args: IrisArgs) -> Application:
    """The Serve application; Ray validates the config's `args` into IrisArgs."""
    # The decorators made IrisClassifier a Deployment; mypy does not apply class decorators.
    return IrisClassifier.bind(args)  # type: ignore[attr-defined]
