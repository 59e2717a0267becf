"""HTTP fuzz of every app from its own OpenAPI schema (schemathesis): no 5xx, no hang, the prediction log consistent.

The dev env's four apps run on the session's Ray and log into a database of this module. For each app, schemathesis
generates valid and invalid requests for every operation of GET <prefix>/openapi.json; every answer must come within
REQUEST_TIMEOUT_S and be below 500. Afterwards the prediction table holds exactly one row per 2xx answer of the
app's POST /predict, and its /stats counts them.
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

from localrun.serve import deploy
from tests.integration.services import MariaDbDatabase
from tests.integration.single_app import apps_config, free_port

APPS = ("doubleit", "iris", "tabular", "zero-shot")
# Each request's deadline: a generated request that hangs fails its example (hypothesis' own deadline stays off, as
# a slow answer on two shared cores is not a defect).
REQUEST_TIMEOUT_S = 10.0
# Per operation and mode; each app has a handful of operations, so the module stays under two minutes on two shared
# cores, deploy included.
MAX_EXAMPLES = 50
ROWS_TIMEOUT_S = 30.0

predicted: dict[str, list[str]] = {app: [] for app in APPS}  # app -> request ids of its 2xx POST /predict answers


@pytest.fixture(scope="module")
def base_url(ray_cluster: Any, database: MariaDbDatabase, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The dev env's four apps, logging into the database of this module."""
    from ray import serve

    env_vars = {"PREDICTION_DB_URL": database.url, "MODEL_CACHE_DIR": str(tmp_path_factory.mktemp("cache"))}
    try:
        yield deploy(apps_config("dev", APPS, env_vars), free_port()).url
    finally:
        serve.shutdown()


def fuzz(app: str, operation: Any, mode: GenerationMode, app_url: str) -> None:
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
            predicted[app].extend(response.headers["x-request-id"])  # schemathesis gives each header as a list

    try:
        check()
    except Unsatisfiable:
        # No invalid request exists for an operation without parameters or body (GET /healthz).
        assert mode is GenerationMode.NEGATIVE, f"no valid request of {operation.method} {operation.path}"


# schemathesis' own pytest plugin (schema.parametrize) fails on this pytest (no `Function._nodeid`), so the
# operations are looped over here; hypothesis still reports the smallest failing request.
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
@pytest.mark.parametrize("app", APPS)
def test_no_input_makes_a_5xx_or_hangs(app: str, mode: GenerationMode, base_url: str) -> None:
    app_url = f"{base_url}/{app}"
    results = list(schemathesis.openapi.from_url(f"{app_url}/openapi.json").get_all_operations())
    assert all(isinstance(result, Ok) for result in results), results
    operations = [result.ok() for result in results if isinstance(result, Ok)]
    assert any(operation.path == "/predict" for operation in operations)
    for operation in operations:
        fuzz(app, operation, mode, app_url)


@pytest.mark.parametrize("app", APPS)
def test_the_prediction_log_holds_one_row_per_successful_prediction(
    app: str, base_url: str, database: MariaDbDatabase
) -> None:
    assert predicted[app], "the fuzz above got at least one prediction through"
    engine = sa.create_engine(database.url)
    query = sa.text("SELECT request_id FROM prediction_log WHERE app = :app")
    try:
        deadline = time.monotonic() + ROWS_TIMEOUT_S
        while True:
            with engine.connect() as connection:
                logged = [row.request_id for row in connection.execute(query, {"app": app})]
            if len(logged) >= len(predicted[app]) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
    finally:
        engine.dispose()
    assert sorted(logged) == sorted(predicted[app])
    stats = httpx.get(f"{base_url}/{app}/stats", timeout=REQUEST_TIMEOUT_S).json()
    assert (stats["predictions"], stats["dropped_rows"]) == (len(predicted[app]), 0)
