"""The path a user's commit takes, end to end, against real S3 (LocalStack) and real MySQL (MariaDB).

Models published to S3 → an environment rendered with their s3:// URIs and a Secrets Manager reference to the
database URL → Ray Serve started from the rendered serveConfigV2 → each replica downloads and verifies its model
→ Locust drives every app → the prediction log holds exactly one row per answer, with the output the client saw,
and /stats agrees with the table; concurrent streams of the generation app each get one row with the text they
read. Then an S3 object is replaced with other bytes and the app refuses it.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
import sqlalchemy as sa
import yaml

from loadtests.run import LoadOptions, run_app
from loadtests.sse import EventStream
from localrun.serve import DeployError, deploy
from render.pipeline import render_repo
from render.spec.load import load_specs
from render.write import write_tree
from serve_apps.plain_language.evaluate import held_out
from serve_apps.publish_models import publish
from tests.integration.services import MariaDbDatabase

REPO_ROOT = Path(__file__).parents[2]
ENV = "e2e"
RECORDER = Path(__file__).with_name("recording_locustfile.py")
USERS = 4
LOAD = LoadOptions(users=USERS, duration_s=8)
ROWS_TIMEOUT_S = 30
STREAMS = 8


@pytest.fixture(scope="module")
def e2e_repo(tmp_path_factory: pytest.TempPathFactory, s3_endpoint: str, database: MariaDbDatabase) -> Path:
    """A copy of the repo's spec with an `e2e` env: dev's apps, models from S3, the database URL as a secret."""
    bucket = f"e2e-models-{uuid.uuid4().hex[:8]}"
    boto3.client("s3").create_bucket(Bucket=bucket)
    published = publish(REPO_ROOT / "models", bucket, prefix="e2e")
    secret = f"serving/e2e-{uuid.uuid4().hex[:8]}/prediction-db-url"
    boto3.client("secretsmanager").create_secret(Name=secret, SecretString=database.url)
    repo = tmp_path_factory.mktemp("e2e") / "repo"
    shutil.copytree(REPO_ROOT / "clusters", repo / "clusters")
    for layer in ("base", "dev"):
        shutil.copytree(REPO_ROOT / "deployments" / layer, repo / "deployments" / layer)
    packages = {
        "zero-shot": "zero_shot",
        "iris": "iris",
        "tabular": "tabular",
        "doubleit": "doubleit",
        "plain-language": "plain_language",
    }
    overlay = {
        "extends": "dev",
        "env": {"secrets": {"PREDICTION_DB_URL": {"aws_secrets_manager": secret}}},
        "apps": [{"name": app, "model": published[package].model_dump()} for app, package in packages.items()],
    }
    (repo / "deployments" / ENV).mkdir()
    (repo / "deployments" / ENV / "env.yaml").write_text(yaml.safe_dump(overlay))
    write_tree(render_repo(repo, None, [ENV]).files, repo / "rendered")
    return repo


def rendered_serve_config(repo: Path) -> dict[str, Any]:
    """The serveConfigV2 render wrote for the e2e env, parsed."""
    (service,) = (repo / "rendered" / ENV).glob("ray.io.RayService-*.yaml")
    return yaml.safe_load(yaml.safe_load(service.read_text())["spec"]["serveConfigV2"])


def resolved_secrets(repo: Path) -> dict[str, str]:
    """The env's secret references, read from Secrets Manager as external-secrets would in the cluster."""
    spec = load_specs(repo, [ENV])[ENV]
    client = boto3.client("secretsmanager")
    return {
        name: client.get_secret_value(SecretId=ref.aws_secrets_manager)["SecretString"]
        for name, ref in spec.env.secrets.items()
    }


def with_env_vars(config: dict[str, Any], env_vars: dict[str, str]) -> dict[str, Any]:
    """The config with `env_vars` given to every application's replicas (what the pod env is in the cluster)."""
    return {
        **config,
        "applications": [{**app, "runtime_env": {"env_vars": env_vars}} for app in config["applications"]],
    }


def replica_env(repo: Path, cache_dir: Path) -> dict[str, str]:
    aws = {k: v for k, v in os.environ.items() if k.startswith("AWS_")}
    return {**aws, **resolved_secrets(repo), "MODEL_CACHE_DIR": str(cache_dir)}


@pytest.fixture(scope="module")
def served(ray_cluster: Any, e2e_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from ray import serve

    config = with_env_vars(rendered_serve_config(e2e_repo), replica_env(e2e_repo, tmp_path_factory.mktemp("cache")))
    try:
        yield deploy(config, _free_port()).url
    finally:
        serve.shutdown()


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _rows(database: MariaDbDatabase, app: str) -> list[Any]:
    engine = sa.create_engine(database.url)
    try:
        with engine.connect() as connection:
            query = sa.text("SELECT request_id, output_json FROM prediction_log WHERE app = :app")
            return list(connection.execute(query, {"app": app}))
    finally:
        engine.dispose()


# The generation app's streams are read and held against the log by the test after this one.
@pytest.mark.parametrize("app_name", ["zero-shot", "iris", "tabular", "doubleit"])
def test_every_answer_is_logged_exactly_once_as_the_client_saw_it(
    app_name: str,
    served: str,
    e2e_repo: Path,
    database: MariaDbDatabase,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = next(a for a in load_specs(REPO_ROOT, ["dev"])["dev"].apps if a.name == app_name)
    record = tmp_path / "answers.jsonl"
    monkeypatch.setenv("E2E_APP_PACKAGE", app.import_path.split(".")[1])
    monkeypatch.setenv("E2E_RECORD", str(record))
    report = run_app(REPO_ROOT, "dev", app, RECORDER, served, LOAD, tmp_path / "report")

    answers = [json.loads(line) for line in record.read_text().splitlines()]
    sent = report.measurement.requests
    assert sent > 0
    assert report.measurement.failures == 0
    assert len(answers) == sent
    assert all(a["status"] == 200 and not a["failed"] for a in answers)
    seen = {a["request_id"]: json.loads(a["body"]) for a in answers}
    assert len(seen) == sent, "Serve returned a request id per answer, each unique"

    deadline = time.monotonic() + ROWS_TIMEOUT_S
    rows = _rows(database, app_name)
    while not seen.keys() <= {row.request_id for row in rows}:
        assert time.monotonic() < deadline, f"{len(rows)} rows for {sent} answers after {ROWS_TIMEOUT_S} s"
        time.sleep(0.5)
        rows = _rows(database, app_name)
    logged = {row.request_id: json.loads(row.output_json) for row in rows}
    assert len(logged) == len(rows), "one row per request id"
    assert {request_id: logged[request_id] for request_id in seen} == seen
    # When the run ends Locust stops its users with their last requests in flight: Serve answers and logs those,
    # but no client reads them. At most one per user.
    assert len(rows) - sent <= USERS

    stats = httpx.get(f"{served}{app.route_prefix}/stats", timeout=10).json()
    assert stats["predictions"] == len(rows)


def test_every_stream_is_logged_once_with_the_text_it_streamed(served: str, database: MariaDbDatabase) -> None:
    """N concurrent streams of the plain-language app, its model from S3: N rows, each the text its client read."""
    notes = [pair.source for pair in held_out()[:STREAMS]]
    ids = [f"e2e-stream-{uuid.uuid4().hex}" for _ in notes]

    def read(index: int) -> str:
        pieces, done = [], None
        parser = EventStream()
        headers = {"x-request-id": ids[index]}
        with (
            httpx.Client(base_url=f"{served}/plain-language", timeout=60, headers=headers) as client,
            client.stream("POST", "/generate/stream", json={"text": notes[index]}) as response,
        ):
            assert response.status_code == 200
            for chunk in response.iter_bytes():
                for event in parser.feed(chunk):
                    if event.name == "token":
                        pieces.append(json.loads(event.data)["text"])
                    elif event.name == "done":
                        done = json.loads(event.data)
        assert done is not None and "".join(pieces) == done["text"]
        return done["text"]

    with ThreadPoolExecutor(STREAMS) as pool:
        streamed = dict(zip(ids, pool.map(read, range(STREAMS)), strict=True))
    deadline = time.monotonic() + ROWS_TIMEOUT_S
    while len(rows := [r for r in _rows(database, "plain-language") if r.request_id in streamed]) < STREAMS:
        assert time.monotonic() < deadline, f"{len(rows)} of {STREAMS} rows"
        time.sleep(0.5)
    assert len(rows) == STREAMS
    assert {row.request_id: json.loads(row.output_json)["text"] for row in rows} == streamed


def test_a_replaced_s3_object_is_refused(ray_cluster: Any, e2e_repo: Path, served: str, tmp_path: Path) -> None:
    config = rendered_serve_config(e2e_repo)
    iris = next(a for a in config["applications"] if a["name"] == "iris")
    bucket, key = iris["args"]["model"]["uri"].removeprefix("s3://").split("/", 1)
    boto3.client("s3").put_object(Bucket=bucket, Key=key, Body=b"not the model that was published")
    tampered = {**config, "applications": [iris]}
    with pytest.raises(DeployError) as refused:
        deploy(with_env_vars(tampered, replica_env(e2e_repo, tmp_path / "cache")), _free_port(), timeout_s=120)
    assert f"{iris['args']['model']['uri']}: sha256 mismatch: expected {iris['args']['model']['sha256']}" in str(
        refused.value
    )
