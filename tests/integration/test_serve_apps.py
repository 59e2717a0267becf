"""The four serve apps on a local Ray cluster, deployed from a Serve config dict as `serve run config.yaml` does.

The session's Ray (`ray_cluster`, conftest.py; 0.25 CPU per replica). The prediction log goes to the session's
MySQL database (`mysql_url`, conftest.py) through a TCP proxy the tests close and reopen to simulate an outage;
S3 is the session's LocalStack (`s3_endpoint`). Replicas get those settings through each application's
runtime_env, since Ray itself is shared with the other test modules.
"""

import json
import math
import os
import time
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import joblib
import pytest
from ray import serve
from ray.serve._private import api as serve_private_api
from ray.serve.schema import ApplicationStatus, ServeDeploySchema
from sklearn.datasets import load_breast_cancer
from sqlalchemy import create_engine, select
from sqlalchemy.engine import Engine, make_url

from serve_apps.build_models import build_all
from serve_apps.common.artifact import ModelArtifact, file_path
from serve_apps.common.manifest import ManifestEntry, manifest_matches, read_manifest
from serve_apps.common.prediction_log import predictions
from serve_apps.publish_models import publish
from serve_apps.zero_shot.evaluate import load_eval_set
from tests.unit.serve_apps.tcp_proxy import TcpProxy, free_port

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
REPLICA_CPUS = 0.25
DEPLOY_TIMEOUT_S = 180
# Short timeouts so an outage in a test is noticed, and its end, within about a second.
LOG_SETTINGS = {"retry_max_s": 0.5, "connect_timeout_s": 1}
MAX_INSTANCES = 5


@dataclass(frozen=True)
class AppConfig:
    """One application of a Serve config, in the shape render writes."""

    name: str
    import_path: str
    route_prefix: str
    args: dict[str, Any]
    deployments: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "import_path": self.import_path,
            "route_prefix": self.route_prefix,
            "args": self.args,
            "deployments": self.deployments,
        }


def serve_config(apps: Sequence[AppConfig], port: int, env_vars: dict[str, str]) -> dict[str, Any]:
    """A multi-application Serve config (the serveConfigV2 of a RayService); every replica gets `env_vars`."""
    return {
        "proxy_location": "HeadOnly",
        "http_options": {"host": "127.0.0.1", "port": port},
        "applications": [{**app.to_dict(), "runtime_env": {"env_vars": env_vars}} for app in apps],
    }


def app_config(
    name: str,
    package: str,
    deployment: str,
    model: ModelArtifact,
    user_config: dict[str, Any] | None = None,
    **args: Any,
) -> AppConfig:
    options: dict[str, Any] = {"name": deployment, "num_replicas": 1, "ray_actor_options": {"num_cpus": REPLICA_CPUS}}
    if user_config is not None:
        options["user_config"] = user_config
    return AppConfig(
        name=name,
        import_path=f"serve_apps.{package}.app:app_builder",
        route_prefix=f"/{name}",
        args={"model": model.model_dump(), "prediction_log": LOG_SETTINGS, **args},
        deployments=[options],
    )


class LocalServe:
    """Serve on the session's Ray instance, deployed from config dicts through the controller.

    This is the path of `serve run config.yaml` (ray/serve/scripts.py): `serve_start` + `deploy_apps`. The
    controller imports each import_path and calls its builder with the config's `args`, as on a cluster.
    A config replaces the whole set of applications: apps absent from it are removed.
    """

    def __init__(self, port: int, env_vars: dict[str, str]) -> None:
        self.port = port
        self.env_vars = env_vars
        self.base_url = f"http://127.0.0.1:{port}"
        self._client = serve_private_api.serve_start(http_options={"host": "127.0.0.1", "port": port})

    def deploy(self, apps: Sequence[AppConfig]) -> None:
        """Send the config; returns once the controller accepted it."""
        self._client.deploy_apps(ServeDeploySchema.model_validate(serve_config(apps, self.port, self.env_vars)))

    def settle(self, name: str) -> tuple[ApplicationStatus, str]:
        """Wait until the app is RUNNING or DEPLOY_FAILED; returns that and the app's and deployments' messages."""
        deadline = time.monotonic() + DEPLOY_TIMEOUT_S
        while time.monotonic() < deadline:
            status = serve.status().applications.get(name)
            if status is not None and status.status in (ApplicationStatus.RUNNING, ApplicationStatus.DEPLOY_FAILED):
                messages = [status.message, *(d.message for d in status.deployments.values())]
                return status.status, "\n".join(messages)
            time.sleep(0.2)
        raise TimeoutError(f"{name}: still deploying after {DEPLOY_TIMEOUT_S} s")


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The built artifacts: the repo's models/ when it matches its manifest, else a fresh build."""
    models = REPO_ROOT / "models"
    if manifest_matches(models):
        # Its relative file:// URIs resolve against the replicas' cwd, the driver's: the repo root (`cluster`).
        return models
    out = tmp_path_factory.mktemp("models")
    build_all(out)
    return out


@pytest.fixture(scope="session")
def manifest(models_dir: Path) -> dict[str, ManifestEntry]:
    return read_manifest(models_dir)


@pytest.fixture(scope="session")
def db_proxy(mysql_url: str) -> Iterator[TcpProxy]:
    """The replicas' only way to the database; closing it is a database outage."""
    url = make_url(mysql_url)
    proxy = TcpProxy((url.host or "127.0.0.1", url.port or 3306))
    proxy.open()
    yield proxy
    proxy.close()


@pytest.fixture(scope="session")
def db(mysql_url: str) -> Iterator[Engine]:
    """A direct connection to the test database, to read what the replicas logged."""
    engine = create_engine(mysql_url)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def cluster(
    ray_cluster: Any,
    mysql_url: str,
    db_proxy: TcpProxy,
    s3_endpoint: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[LocalServe]:
    """Serve on the session's Ray. Its replicas get the prediction database behind the proxy, their own model cache
    and the AWS settings `s3_endpoint` made; they run in the repo root, where `ray_cluster` started Ray."""
    env_vars = {
        "PREDICTION_DB_URL": make_url(mysql_url)
        .set(host="127.0.0.1", port=db_proxy.port)
        .render_as_string(hide_password=False),
        "MODEL_CACHE_DIR": str(tmp_path_factory.mktemp("model-cache")),
        **{name: value for name, value in os.environ.items() if name.startswith("AWS_")},
    }
    try:
        yield LocalServe(free_port(), env_vars)
    finally:
        serve.shutdown()


@pytest.fixture(scope="session")
def good_apps(manifest: dict[str, ManifestEntry]) -> list[AppConfig]:
    return [
        app_config("doubleit", "doubleit", "DoubleIt", manifest["doubleit"].artifact()),
        app_config("iris", "iris", "IrisClassifier", manifest["iris"].artifact(), max_instances=MAX_INSTANCES),
        app_config("tabular", "tabular", "TabularClassifier", manifest["tabular"].artifact()),
        app_config(
            "zero-shot",
            "zero_shot",
            "ZeroShotClassifier",
            manifest["zero_shot"].artifact(),
            user_config={"batching": {"max_batch_size": 8, "batch_wait_timeout_s": 0.01}},
        ),
    ]


def _answers(url: str) -> bool:
    """Whether `url` answers 200; a request the proxy holds until a starting replica takes it may time out."""
    try:
        return httpx.get(url, timeout=5).status_code == 200
    except httpx.TimeoutException:
        return False


@pytest.fixture(scope="session")
def start_times(cluster: LocalServe, good_apps: list[AppConfig]) -> dict[str, float]:
    """Deploy the apps one at a time; seconds from sending each config to the app's first 200 on /healthz."""
    seconds = {}
    for count, app in enumerate(good_apps, start=1):
        started = time.monotonic()
        cluster.deploy(good_apps[:count])
        while not _answers(f"{cluster.base_url}{app.route_prefix}/healthz"):
            status = serve.status().applications.get(app.name)
            if status is not None and status.status == ApplicationStatus.DEPLOY_FAILED:
                pytest.fail(f"{app.name} failed to deploy: {status.message}")
            if time.monotonic() - started > DEPLOY_TIMEOUT_S:
                pytest.fail(f"{app.name} did not answer within {DEPLOY_TIMEOUT_S} s")
            time.sleep(0.1)
        seconds[app.name] = time.monotonic() - started
    return seconds


@pytest.fixture(scope="session")
def http(start_times: dict[str, float], cluster: LocalServe) -> Iterator[httpx.Client]:
    """A client of the Serve HTTP proxy, once every app answers."""
    with httpx.Client(base_url=cluster.base_url, timeout=60) as client:
        yield client


def wait_for_rows(db: Engine, request_ids: set[str], timeout_s: float = 20) -> list[Any]:
    """The logged rows of `request_ids`, once every id has at least one row."""
    deadline = time.monotonic() + timeout_s
    while True:
        with db.connect() as connection:
            rows = connection.execute(select(predictions).where(predictions.c.request_id.in_(request_ids))).all()
        if {row.request_id for row in rows} == request_ids or time.monotonic() > deadline:
            return list(rows)
        time.sleep(0.2)


def test_apps_start_and_report_their_model(
    http: httpx.Client,
    start_times: dict[str, float],
    manifest: dict[str, ManifestEntry],
    capsys: pytest.CaptureFixture[str],
) -> None:
    with capsys.disabled():
        for name, seconds in start_times.items():
            print(f"\nreplica start (deploy -> first answer) {name}: {seconds:.1f} s", end="")
    model_of = {"doubleit": "doubleit", "iris": "iris", "tabular": "tabular", "zero-shot": "zero_shot"}
    for app, entry in model_of.items():
        health = http.get(f"/{app}/healthz")
        assert health.status_code == 200
        assert health.json() == {"status": "ok", "app": app, "model_sha256": manifest[entry].sha256}
        assert http.get(f"/{app}/docs").status_code == 200
        assert "/predict" in http.get(f"/{app}/openapi.json").json()["paths"]


@pytest.mark.parametrize(
    ("row", "expected"),
    [([5.1, 3.5, 1.4, 0.2], "setosa"), ([7.0, 3.2, 4.7, 1.4], "versicolor"), ([6.3, 3.3, 6.0, 2.5], "virginica")],
)
def test_iris_known_samples(http: httpx.Client, row: list[float], expected: str) -> None:
    response = http.post("/iris/predict", json={"instances": [row]})
    assert response.status_code == 200
    (prediction,) = response.json()["predictions"]
    assert prediction["class"] == expected
    assert prediction["class_id"] == ["setosa", "versicolor", "virginica"].index(expected)
    assert math.isclose(sum(prediction["probabilities"].values()), 1.0, abs_tol=1e-5)


def test_doubleit_is_exact(http: httpx.Client) -> None:
    values = [0, 1, -2.5, 0.1, 1 / 3, 123456789.123, 2.0**53 + 2, 5e-324, 8.98e307]
    response = http.post("/doubleit/predict", json={"values": values})
    assert response.status_code == 200
    assert response.json() == {"values": [2 * value for value in values]}


def test_tabular_equals_in_process_model(http: httpx.Client, manifest: dict[str, ManifestEntry]) -> None:
    features = load_breast_cancer().data[:MAX_INSTANCES]
    response = http.post("/tabular/predict", json={"instances": features.tolist()})
    assert response.status_code == 200
    in_process = joblib.load(file_path(manifest["tabular"].uri))
    expected = in_process.predict_proba(features)
    served = response.json()["predictions"]
    assert [p["class_id"] for p in served] == expected.argmax(axis=1).tolist()
    assert [[p["probabilities"]["malignant"], p["probabilities"]["benign"]] for p in served] == expected.tolist()


def test_zero_shot_eval_set_accuracy(http: httpx.Client) -> None:
    eval_set = load_eval_set()

    def classify(text: str) -> dict[str, Any]:
        response = http.post("/zero-shot/predict", json={"text": text, "labels": eval_set.labels})
        assert response.status_code == 200
        return dict(response.json())

    # Concurrent requests, so that the batcher really batches them.
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(classify, [example.text for example in eval_set.examples]))
    hits = sum(r["labels"][0] == e.label for r, e in zip(results, eval_set.examples, strict=True))
    accuracy = hits / len(eval_set.examples)
    print(f"\nzero-shot accuracy over HTTP (int8): {accuracy:.1%}")
    assert accuracy >= 0.85
    for result, example in zip(results, eval_set.examples, strict=True):
        assert result["sequence"] == example.text
        assert sorted(result["labels"]) == sorted(eval_set.labels)
        assert result["scores"] == sorted(result["scores"], reverse=True)
        assert math.isclose(sum(result["scores"]), 1.0, abs_tol=1e-5)


def test_zero_shot_multi_label(http: httpx.Client) -> None:
    body = {
        "text": "The football club's shares jumped on the stock exchange after the cup win.",
        "labels": ["cooking", "sports", "finance"],
        "multi_label": True,
        "hypothesis_template": "This news is about {}.",
    }
    response = http.post("/zero-shot/predict", json=body)
    assert response.status_code == 200
    scores = dict(zip(response.json()["labels"], response.json()["scores"], strict=True))
    assert scores["sports"] > 0.5 and scores["finance"] > 0.5 > scores["cooking"]


BAD_REQUESTS = [
    ("iris", {"instances": []}, "instances"),
    ("iris", {"instances": [[5.1, 3.5, 1.4]]}, "instances"),
    ("iris", {"instances": [[5.1, 3.5, 1.4, "x"]]}, "instances"),
    ("iris", {"instances": [[5.1, 3.5, 1.4, math.nan]]}, "instances"),
    ("iris", {"instances": [[5.1, 3.5, 1.4, math.inf]]}, "instances"),
    ("iris", {"instances": [[5.1, 3.5, 1.4, 0.2]] * (MAX_INSTANCES + 1)}, "instances"),
    ("iris", {"rows": [[5.1, 3.5, 1.4, 0.2]]}, "instances"),
    ("tabular", {"instances": [[1.0] * 29]}, "instances"),
    ("tabular", {"instances": [[1.0] * 31]}, "instances"),
    ("doubleit", {"values": []}, "values"),
    ("doubleit", {"values": [1, "two"]}, "values"),
    ("doubleit", {"values": [1e308]}, "values"),
    ("zero-shot", {"text": "", "labels": ["a"]}, "text"),
    ("zero-shot", {"text": "  ", "labels": ["a"]}, "text"),
    ("zero-shot", {"text": "x" * 2001, "labels": ["a"]}, "text"),
    ("zero-shot", {"text": "hi", "labels": []}, "labels"),
    ("zero-shot", {"text": "hi", "labels": [f"label {i}" for i in range(21)]}, "labels"),
    ("zero-shot", {"text": "hi", "labels": ["a", "a"]}, "labels"),
    ("zero-shot", {"text": "hi"}, "labels"),
    ("zero-shot", {"text": "hi", "labels": ["a"], "hypothesis_template": "No slot."}, "hypothesis_template"),
]


@pytest.mark.parametrize(("app", "body", "field_name"), BAD_REQUESTS)
def test_bad_request_gets_422_naming_the_field(http: httpx.Client, app: str, body: Any, field_name: str) -> None:
    # json.dumps writes NaN and Infinity, as a careless client would.
    response = http.post(f"/{app}/predict", content=json.dumps(body), headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text
    assert any(field_name in error["loc"] for error in response.json()["detail"]), response.text


def test_malformed_json_gets_422(http: httpx.Client) -> None:
    response = http.post("/iris/predict", content=b'{"instances": [[5.1,', headers={"content-type": "application/json"})
    assert response.status_code == 422


def test_every_answer_is_logged_once_in_mariadb(
    http: httpx.Client, db: Engine, manifest: dict[str, ManifestEntry]
) -> None:
    calls = {
        "doubleit": ({"values": [1, 2]}, "doubleit"),
        "iris": ({"instances": [[5.1, 3.5, 1.4, 0.2]]}, "iris"),
        "tabular": ({"instances": load_breast_cancer().data[:1].tolist()}, "tabular"),
        "zero-shot": ({"text": "The striker scored twice.", "labels": ["sports", "cooking"]}, "zero_shot"),
    }
    answers = {}
    for app, (body, _) in calls.items():
        request_id = f"it-{uuid.uuid4()}"
        response = http.post(f"/{app}/predict", json=body, headers={"x-request-id": request_id})
        assert response.status_code == 200
        assert response.headers["x-request-id"] == request_id
        answers[request_id] = (app, response.json())
    rows = wait_for_rows(db, set(answers))
    assert sorted(row.request_id for row in rows) == sorted(answers)
    for row in rows:
        app, answer = answers[row.request_id]
        assert row.app == app
        assert row.model_sha256 == manifest[calls[app][1]].sha256
        assert json.loads(row.output_json) == answer
        assert row.input_sha256 and row.latency_ms > 0


def test_stats_count_logged_predictions(http: httpx.Client, db: Engine) -> None:
    request_ids = {f"it-{uuid.uuid4()}" for _ in range(3)}
    for request_id in request_ids:
        body = {"instances": [[6.3, 3.3, 6.0, 2.5], [5.1, 3.5, 1.4, 0.2]]}
        assert http.post("/iris/predict", json=body, headers={"x-request-id": request_id}).status_code == 200
    wait_for_rows(db, request_ids)
    stats = http.get("/iris/stats").json()
    assert stats["app"] == "iris"
    assert stats["counts"]["virginica"] >= 3 and stats["counts"]["setosa"] >= 3
    assert stats["predictions"] >= 3
    assert 0 < stats["latency_ms"]["p50"] <= stats["latency_ms"]["p95"] <= stats["latency_ms"]["p99"]


def test_predictions_survive_a_database_outage(http: httpx.Client, db: Engine, db_proxy: TcpProxy) -> None:
    request_ids = [f"it-outage-{i}-{uuid.uuid4()}" for i in range(5)]
    db_proxy.close()
    try:
        for request_id in request_ids:
            response = http.post("/doubleit/predict", json={"values": [1.5]}, headers={"x-request-id": request_id})
            assert response.status_code == 200
        assert http.get("/doubleit/stats").status_code == 503
        time.sleep(1.5)  # several failed write attempts
        assert wait_for_rows(db, set(request_ids), timeout_s=0) == []
    finally:
        db_proxy.open()
    rows = wait_for_rows(db, set(request_ids))
    assert sorted(row.request_id for row in rows) == sorted(request_ids)
    assert http.get("/doubleit/stats").json()["buffered_rows"] == 0


def test_wrong_sha256_or_user_config_fails_the_deploy(
    cluster: LocalServe, good_apps: list[AppConfig], manifest: dict[str, ManifestEntry], http: httpx.Client
) -> None:
    real = manifest["iris"].artifact()
    wrong = ModelArtifact(uri=real.uri, sha256="0" * 64)
    batching = {"batching": {"max_batch_size": 8, "batch_wait_timeout_s": 0.01}}
    bad_apps = [
        app_config("iris-wrong-sha", "iris", "IrisClassifier", wrong),
        app_config("doubleit-batched", "doubleit", "DoubleIt", manifest["doubleit"].artifact(), user_config=batching),
    ]
    cluster.deploy([*good_apps, *bad_apps])
    try:
        status, message = cluster.settle("iris-wrong-sha")
        assert status == ApplicationStatus.DEPLOY_FAILED
        assert f"{real.uri}: sha256 mismatch: expected {wrong.sha256}, got {real.sha256}" in message
        assert http.post("/iris-wrong-sha/predict", json={"instances": [[5.1, 3.5, 1.4, 0.2]]}).status_code != 200
        status, message = cluster.settle("doubleit-batched")
        assert status == ApplicationStatus.DEPLOY_FAILED
        assert "doubleit-batched: user_config.batching: Extra inputs are not permitted" in message
        assert http.get("/iris/healthz").status_code == 200
    finally:
        cluster.deploy(good_apps)


def test_app_serves_an_artifact_published_to_s3(
    cluster: LocalServe, good_apps: list[AppConfig], models_dir: Path, s3_bucket: str, http: httpx.Client
) -> None:
    artifact = publish(models_dir, s3_bucket, "it")["doubleit"]
    assert artifact.uri == f"s3://{s3_bucket}/it/doubleit/doubleit.pt"
    cluster.deploy([*good_apps, app_config("doubleit-s3", "doubleit", "DoubleIt", artifact)])
    try:
        status, message = cluster.settle("doubleit-s3")
        assert status == ApplicationStatus.RUNNING, message
        assert http.post("/doubleit-s3/predict", json={"values": [21]}).json() == {"values": [42.0]}
        assert http.get("/doubleit-s3/healthz").json()["model_sha256"] == artifact.sha256
    finally:
        cluster.deploy(good_apps)


def test_replica_shutdown_writes_its_buffered_rows(
    cluster: LocalServe, good_apps: list[AppConfig], manifest: dict[str, ManifestEntry], http: httpx.Client, db: Engine
) -> None:
    # A flush interval longer than the test: the row can only reach the database through the shutdown flush.
    slow_log = {**LOG_SETTINGS, "flush_interval_s": 10}
    app = app_config(
        "doubleit-slow-log", "doubleit", "DoubleIt", manifest["doubleit"].artifact(), prediction_log=slow_log
    )
    cluster.deploy([*good_apps, app])
    request_id = f"it-shutdown-{uuid.uuid4()}"
    try:
        status, message = cluster.settle(app.name)
        assert status == ApplicationStatus.RUNNING, message
        response = http.post("/doubleit-slow-log/predict", json={"values": [1]}, headers={"x-request-id": request_id})
        assert response.status_code == 200
        assert wait_for_rows(db, {request_id}, timeout_s=1) == []
    finally:
        cluster.deploy(good_apps)
    assert [row.request_id for row in wait_for_rows(db, {request_id})] == [request_id]
