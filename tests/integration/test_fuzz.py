"""HTTP fuzz of one app from its own OpenAPI schema (schemathesis): no 5xx, no hang, the prediction log consistent.

The dev env's iris app runs alone and logs into a database of this module. Schemathesis generates valid and invalid
requests for every operation of GET <prefix>/openapi.json; every answer must come within REQUEST_TIMEOUT_S and be
below 500. Afterwards the prediction table holds exactly one row per 2xx answer of POST /predict.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.core.result import Ok
from schemathesis.generation.modes import GenerationMode

from serve_apps.local import deploy
from tests.integration.services import MariaDbDatabase
from tests.integration.single_app import free_port, single_app_config

APP = "iris"
REQUEST_TIMEOUT_S = 10.0
# Per operation and mode; iris has a handful, so the module stays well under a minute on two shared cores.
MAX_EXAMPLES = 25
ROWS_TIMEOUT_S = 30.0

predicted: list[str] = []


@pytest.fixture(scope="module")
def database(mysql_url: str) -> Iterator[MariaDbDatabase]:
    db = MariaDbDatabase(mysql_url)
    db.create()
    try:
        yield db
    finally:
        db.drop()


@pytest.fixture(scope="module")
def app_url(ray_cluster: Any, database: MariaDbDatabase, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from ray import serve

    env_vars = {"PREDICTION_DB_URL": database.url, "MODEL_CACHE_DIR": str(tmp_path_factory.mktemp("cache"))}
    config = single_app_config("dev", APP, env_vars)
    (app,) = config["applications"]
    try:
        yield deploy(config, free_port()).url + app["route_prefix"]
    finally:
        serve.shutdown()


def fuzz(operation: Any, mode: GenerationMode, app_url: str) -> None:
    """Send MAX_EXAMPLES generated requests of one operation; hypothesis shrinks a failing one."""

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    def check(case: Any) -> None:
        response = case.call(base_url=app_url, timeout=REQUEST_TIMEOUT_S)
        assert response.status_code < 500, f"{case.as_curl_command()}: {response.status_code} {response.text[:500]}"
        if case.method == "POST" and case.path == "/predict" and 200 <= response.status_code < 300:
            predicted.extend(response.headers["x-request-id"])

    try:
        check()
    except Unsatisfiable:
        # No invalid request exists for an operation without parameters or body (GET /healthz).
        assert mode is GenerationMode.NEGATIVE, f"no valid request of {operation.method} {operation.path}"


# schemathesis' own pytest plugin (schema.parametrize) fails on this pytest (no `Function._nodeid`), so the
# operations are looped over here; hypothesis still reports the smallest failing request.
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_input_makes_a_5xx_or_hangs(mode: GenerationMode, app_url: str) -> None:
    results = list(schemathesis.openapi.from_url(f"{app_url}/openapi.json").get_all_operations())
    assert all(isinstance(result, Ok) for result in results), results
    operations = [result.ok() for result in results if isinstance(result, Ok)]
    assert any(operation.path == "/predict" for operation in operations)
    for operation in operations:
        fuzz(operation, mode, app_url)


def test_the_prediction_log_holds_one_row_per_successful_prediction(app_url: str, database: MariaDbDatabase) -> None:
    assert predicted, "the fuzz above got at least one prediction through"
    engine = sa.create_engine(database.url)
    query = sa.text("SELECT request_id FROM prediction_log WHERE app = :app")
    try:
        deadline = time.monotonic() + ROWS_TIMEOUT_S
        while True:
            with engine.connect() as connection:
                logged = [row.request_id for row in connection.execute(query, {"app": APP})]
            if len(logged) >= len(predicted) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
    finally:
        engine.dispose()
    assert sorted(logged) == sorted(predicted)
    assert httpx.get(f"{app_url}/stats", timeout=REQUEST_TIMEOUT_S).json()["predictions"] == len(predicted)
