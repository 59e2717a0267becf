"""Labels in any script on the real zero-shot app, Ray and MariaDB: every 200 is logged, the replica keeps running.

Issue 20: a predicted label Ray could not take as a metric tag ("⚽ sports") killed the prediction-log writer; every
later answer of the replica went unlogged, /stats still said dropped_rows 0, and the failed health checks had the
replica replaced. The zero-shot app of the dev env runs alone here, logging into a database of its own.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from localrun.serve import deploy
from serve_apps.common.prediction_log import prediction_labels, predictions
from tests.integration.services import MariaDbDatabase
from tests.integration.single_app import free_port, single_app_config

APP = "zero-shot"
# The request of the issue, and its ASCII twin.
FOOTBALL = {"text": "The striker scored twice.", "labels": ["⚽ sports", "cooking"]}
PLAIN = {"text": "The striker scored twice.", "labels": ["sports", "cooking"]}
REQUESTS = 60
REQUEST_TIMEOUT_S = 30.0
ROWS_TIMEOUT_S = 30.0
# Two of the dev env's health-check periods (2 s): a replica whose writer died would fail them here.
HEALTH_CHECKS_S = 5.0


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


def replicas() -> set[tuple[str, str]]:
    """(actor name, actor id) of each Serve replica of the app: a replaced replica has a new name and id."""
    import ray

    named = ray.util.list_named_actors(all_namespaces=True)
    return {
        (actor["name"], ray.get_actor(actor["name"], namespace=actor["namespace"])._actor_id.hex())
        for actor in named
        if actor["name"].startswith(f"SERVE_REPLICA::{APP}#")
    }


def logged(database: MariaDbDatabase, request_ids: set[str]) -> dict[str, list[str]]:
    """Labels logged per request id, once every id has its row (or ROWS_TIMEOUT_S passed)."""
    engine = sa.create_engine(database.url)
    query = (
        sa.select(predictions.c.request_id, prediction_labels.c.label)
        .join(prediction_labels, prediction_labels.c.prediction_id == predictions.c.id)
        .where(predictions.c.app == APP)
    )
    try:
        deadline = time.monotonic() + ROWS_TIMEOUT_S
        while True:
            with engine.connect() as connection:
                rows = connection.execute(query).all()
            labels: dict[str, list[str]] = {}
            for request_id, label in rows:
                labels.setdefault(request_id, []).append(label)
            if set(labels) >= request_ids or time.monotonic() > deadline:
                return labels
            time.sleep(0.5)
    finally:
        engine.dispose()


def test_a_label_in_any_script_is_logged_and_the_replica_keeps_running(app_url: str, database: MariaDbDatabase) -> None:
    before = replicas()
    assert len(before) == 1
    answered: dict[str, str] = {}  # request id -> predicted label
    with httpx.Client(timeout=REQUEST_TIMEOUT_S) as client:
        for index in range(REQUESTS):
            request_id = f"it-labels-{index:02}-{uuid.uuid4()}"
            body = FOOTBALL if index % 3 == 0 else PLAIN
            response = client.post(f"{app_url}/predict", json=body, headers={"x-request-id": request_id})
            if response.status_code == 200:
                answered[request_id] = response.json()["labels"][0]
        time.sleep(HEALTH_CHECKS_S)
        health = client.get(f"{app_url}/healthz")
        stats = client.get(f"{app_url}/stats").json()
    assert len(answered) == REQUESTS
    assert "⚽ sports" in answered.values()
    # Rows logged == 200 answers, each with the label as sent (the top label of a single-label request).
    assert logged(database, set(answered)) == {request_id: [label] for request_id, label in answered.items()}
    assert health.status_code == 200, health.text
    assert replicas() == before
    expected_counts: dict[str, int] = {}
    for label in answered.values():
        expected_counts[label] = expected_counts.get(label, 0) + 1
    assert stats["counts"] == expected_counts
    assert (stats["predictions"], stats["dropped_rows"], stats["writer_restarts"]) == (REQUESTS, 0, 0)
