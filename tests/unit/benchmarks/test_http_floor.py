"""The HTTP floor: the zero-shot request and response without a model, the same route under uvicorn and Serve."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from ray.serve import Application

from benchmarks import http_floor, serving


def test_it_answers_the_request_labels_at_equal_scores() -> None:
    client = TestClient(http_floor.api)
    body = {"text": "The striker scored twice.", "labels": ["sports", "cooking", "politics", "health"]}

    answer = client.post("/predict", json=body)

    assert answer.status_code == 200
    assert answer.json() == {"sequence": body["text"], "labels": body["labels"], "scores": [0.25] * 4}


def test_it_validates_the_request_as_the_served_app_does() -> None:
    answer = TestClient(http_floor.api).post("/predict", json={"text": "x", "labels": ["a", "a"]})

    assert answer.status_code == 422
    assert "labels must be unique" in answer.text


def test_the_serve_app_is_deployed_as_the_served_apps_deployment_without_its_model_config() -> None:
    kept = {
        "autoscaling_config": {"min_replicas": 2, "max_replicas": 2},
        "max_ongoing_requests": 64,
        "ray_actor_options": {"num_cpus": 1.0, "memory": 2**30},
    }
    model_only = {"user_config": {"batching": {"max_batch_size": 6}}, "health_check_period_s": 2.0}
    served = {
        "name": "zero-shot",
        "route_prefix": "/zero-shot",
        "import_path": "serve_apps.zero_shot.app:app_builder",
        "args": {"num_threads": 1},
        "logging_config": {"enable_access_log": False},
        "deployments": [{"name": "ZeroShotClassifier", **kept, **model_only}],
    }

    assert serving.floor_app(served) == {
        "name": serving.FLOOR_APP,
        "route_prefix": f"/{serving.FLOOR_APP}",
        "import_path": "benchmarks.http_floor:app_builder",
        "logging_config": {"enable_access_log": False},
        "deployments": [{"name": "HttpFloor", **kept}],
    }
    assert isinstance(http_floor.app_builder({}), Application)
    with pytest.raises(ValueError, match="takes no args"):
        http_floor.app_builder({"model": "x"})
