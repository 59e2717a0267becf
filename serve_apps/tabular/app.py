"""Ray Serve app: breast-cancer diagnosis from 30 cell-nucleus features (POST /predict, GET /healthz, GET /stats).

Top-level imports stay light (the render step imports this module for TabularArgs); xgboost and joblib are
imported when a replica starts.
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
    from serve_apps.tabular.model import TabularModel

NUM_FEATURES = 30
# Most rows the request model accepts, whatever Args.max_instances says: that limit's largest value.
INSTANCES_CEILING = 100_000


class TabularArgs(BaseModel):
    """Arguments of the tabular app (the `args` of its Serve application)."""

    model_config = ConfigDict(extra="forbid")

    model: ModelArtifact = Field(
        description="joblib of the XGBClassifier built by `python -m serve_apps.build_models`."
    )
    class_names: list[str] = Field(
        default=["malignant", "benign"],
        min_length=2,
        description="Name of each class, by class id (load_breast_cancer's target_names).",
    )
    max_instances: int = Field(default=1000, ge=1, le=INSTANCES_CEILING, description="Most rows in one request.")
    prediction_log: PredictionLogSettings = Field(
        default_factory=PredictionLogSettings, description="Buffering of the prediction log."
    )


class TabularRequest(BaseModel):
    """POST /predict body."""

    model_config = ConfigDict(extra="forbid")

    instances: list[Annotated[list[FeatureValue], Field(min_length=NUM_FEATURES, max_length=NUM_FEATURES)]] = Field(
        min_length=1,
        max_length=INSTANCES_CEILING,
        description=(
            "Rows of load_breast_cancer's 30 features, in its order; at most Args.max_instances (default 1000)."
        ),
    )


api = make_api(title="Tabular classifier", description="Breast-cancer diagnosis with an XGBoost model.")
add_try_it_page(api, "tabular")


@serve.deployment
@serve.ingress(api)
class TabularClassifier(ModelReplica):
    """Classifies rows with the XGBoost model handed over as joblib."""

    model: "TabularModel"

    def __init__(self, args: TabularArgs) -> None:
        from serve_apps.tabular.model import TabularModel

        self._args = args
        super().__init__(
            args.model,
            args.prediction_log,
            lambda path: TabularModel(path, args.class_names, num_threads=assigned_cpus()),
        )

    @api.post("/predict")
    def predict(self, request: TabularRequest, http_request: Request) -> ClassPredictions:
        """Predict the class and class probabilities of every row."""
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


def app_builder(args: TabularArgs) -> Application:
    """The Serve application; Ray validates the config's `args` into TabularArgs."""
    # The decorators made TabularClassifier a Deployment; mypy does not apply class decorators.
    return TabularClassifier.bind(args)  # type: ignore[attr-defined]
