"""A new version whose model cannot be had (corrupted S3 object, S3 unreachable) never replaces a running one.

The dev env's iris app runs with its model from S3. It is redeployed with an artifact whose bytes do not match
its sha256, or with S3 out of reach; the new replicas must not become healthy, Serve must say why, and the old
replica must answer every request meanwhile and afterwards.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest

from localrun.serve import DeployError, deploy
from serve_apps.publish_models import publish
from tests.integration.single_app import free_port, single_app_config

# Run by `nox -s reliability`, not in CI, for CI's time budget (about a minute here). Until deployments rendered
# max_surge_percent (spec default 100), Ray stopped the old replica before starting the new one, and a request
# timed out during the failed rollout in every run.
pytestmark = pytest.mark.reliability

REPO_ROOT = Path(__file__).parents[2]
APP = "iris"
DEPLOY_TIMEOUT_S = 120.0
REQUEST_TIMEOUT_S = 10.0
BODY = {"instances": [[5.1, 3.5, 1.4, 0.2]]}


def iris_config(model: dict[str, str], env_vars: dict[str, str]) -> dict[str, Any]:
    config = single_app_config("dev", APP, env_vars)
    (app,) = config["applications"]
    return {**config, "applications": [{**app, "args": {**app["args"], "model": model}}]}


def aws_env() -> dict[str, str]:
    return {name: value for name, value in os.environ.items() if name.startswith("AWS_")}


@pytest.fixture(scope="module")
def published(s3_endpoint: str) -> dict[str, str]:
    bucket = f"faults-{uuid.uuid4().hex[:8]}"
    boto3.client("s3").create_bucket(Bucket=bucket)
    return dict(publish(REPO_ROOT / "models", bucket, prefix="faults")["iris"].model_dump())


@pytest.fixture
def running(ray_cluster: Any, published: dict[str, str], tmp_path: Path) -> Iterator[tuple[str, int]]:
    """iris serving the published model; yields its URL and the proxy port (to redeploy on)."""
    from ray import serve

    port = free_port()
    config = iris_config(published, {**aws_env(), "MODEL_CACHE_DIR": str(tmp_path / "v1")})
    try:
        yield deploy(config, port).url + config["applications"][0]["route_prefix"], port
    finally:
        serve.shutdown()


def redeploy_while_serving(url: str, port: int, config: dict[str, Any]) -> tuple[str, list[int | str]]:
    """Redeploy `config` while a client keeps predicting; the DeployError's message and every status seen."""
    statuses: list[int | str] = []
    stop = threading.Event()

    def predict() -> None:
        with httpx.Client(timeout=REQUEST_TIMEOUT_S) as client:
            while not stop.is_set():
                try:
                    statuses.append(client.post(f"{url}/predict", json=BODY).status_code)
                except httpx.HTTPError as error:
                    statuses.append(f"{type(error).__name__}: {error}")

    client = threading.Thread(target=predict)
    client.start()
    try:
        with pytest.raises(DeployError) as failed:
            deploy(config, port, timeout_s=DEPLOY_TIMEOUT_S)
    finally:
        stop.set()
        client.join(REQUEST_TIMEOUT_S + 5)
    return str(failed.value), statuses


def test_a_corrupted_object_fails_the_new_version_and_the_old_one_keeps_serving(
    running: tuple[str, int], published: dict[str, str], tmp_path: Path
) -> None:
    url, port = running
    bucket, key = published["uri"].removeprefix("s3://").split("/", 1)
    corrupt_key = f"{key}.corrupt"
    boto3.client("s3").put_object(Bucket=bucket, Key=corrupt_key, Body=b"not the model that was published")
    corrupt = {"uri": f"s3://{bucket}/{corrupt_key}", "sha256": published["sha256"]}
    config = iris_config(corrupt, {**aws_env(), "MODEL_CACHE_DIR": str(tmp_path / "v2")})

    message, statuses = redeploy_while_serving(url, port, config)

    assert f"{corrupt['uri']}: sha256 mismatch: expected {published['sha256']}" in message
    assert statuses and set(statuses) == {200}, f"the old replica answered every request: {set(statuses)}"
    assert httpx.post(f"{url}/predict", json=BODY, timeout=REQUEST_TIMEOUT_S).status_code == 200


def test_unreachable_s3_fails_the_new_version_and_the_old_one_keeps_serving(
    running: tuple[str, int], published: dict[str, str], tmp_path: Path
) -> None:
    url, port = running
    unreachable = {**aws_env(), "AWS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}"}
    env_vars = {**unreachable, "AWS_MAX_ATTEMPTS": "2", "MODEL_CACHE_DIR": str(tmp_path / "v2")}

    message, statuses = redeploy_while_serving(url, port, iris_config(published, env_vars))

    assert f"{published['uri']}: cannot download (Could not connect to the endpoint URL" in message
    assert statuses and set(statuses) == {200}, f"the old replica answered every request: {set(statuses)}"
    assert httpx.post(f"{url}/predict", json=BODY, timeout=REQUEST_TIMEOUT_S).status_code == 200
