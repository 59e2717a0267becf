"""The plain-language app on the session's Ray: whole and streamed generation over HTTP, batched, logged to MySQL.

The model is a tiny T5 built for the test (serve_apps/plain_language/build.py, size "tiny", a few training steps):
what is tested here is the serving around any T5 checkpoint (streams, batching, refusals, the prediction log),
not the quality of the shipped one, which its build measures.
"""

import json
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from ray import serve
from ray.serve.schema import ApplicationStatus
from sqlalchemy import create_engine
from sqlalchemy.engine import Engine

from serve_apps.common.artifact import ModelArtifact, sha256_of
from serve_apps.plain_language.build import build
from tests.integration.test_serve_apps import AppConfig, LocalServe, app_config, wait_for_rows
from tests.unit.serve_apps.tcp_proxy import free_port

pytestmark = pytest.mark.integration

APP = "plain-language"
TEXTS = ["pt c/o SOB x3d, hx of HTN.", "Give 500 mg PO BID for 7d.", "f/u in 2 wks", "NPO after MN"]


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> ModelArtifact:
    path = tmp_path_factory.mktemp("plain-language") / "tiny-t5.tar"
    build(path, size="tiny", steps=20)
    return ModelArtifact(uri=path.resolve().as_uri(), sha256=sha256_of(path))


@pytest.fixture(scope="module")
def db(database: Any) -> Iterator[Engine]:
    engine = create_engine(database.url)
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def base_url(
    ray_cluster: Any, database: Any, model: ModelArtifact, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    env_vars = {"PREDICTION_DB_URL": database.url, "MODEL_CACHE_DIR": str(tmp_path_factory.mktemp("model-cache"))}
    local = LocalServe(free_port(), env_vars)
    app: AppConfig = app_config(
        APP,
        "plain_language",
        "PlainLanguageGenerator",
        model,
        user_config={"batching": {"max_batch_size": 4, "batch_wait_timeout_s": 0.05}},
        max_new_tokens_limit=24,
    )
    try:
        local.deploy([app])
        status, messages = local.settle(APP)
        assert status == ApplicationStatus.RUNNING, messages
        yield f"{local.base_url}/{APP}"
    finally:
        serve.shutdown()


def stream(client: httpx.Client, body: dict[str, Any]) -> tuple[list[tuple[str, Any]], float]:
    """The stream's events as (name, data), and the seconds until the first token event arrived."""
    started = time.perf_counter()
    first_token_s = float("nan")
    events: list[tuple[str, Any]] = []
    with client.stream("POST", "/generate/stream", json=body) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        name = None
        for line in response.iter_lines():
            if line.startswith("event: "):
                name = line.removeprefix("event: ")
            elif line.startswith("data: "):
                if name == "token" and not events:
                    first_token_s = time.perf_counter() - started
                events.append((str(name), json.loads(line.removeprefix("data: "))))
    return events, first_token_s


def test_a_stream_s_pieces_add_up_to_the_whole_text_and_match_generate(base_url: str) -> None:
    with httpx.Client(base_url=base_url, timeout=60) as client:
        events, _ = stream(client, {"text": TEXTS[0], "max_new_tokens": 16})
        whole = client.post("/generate", json={"text": TEXTS[0], "max_new_tokens": 16})
    tokens = [data for name, data in events if name == "token"]
    (done,) = [data for name, data in events if name == "done"]
    assert events[-1][0] == "done"
    assert [t["index"] for t in tokens] == list(range(len(tokens)))
    assert "".join(t["text"] for t in tokens) == done["text"]
    assert done["tokens"] == len(tokens)
    assert whole.status_code == 200
    # Greedy decoding: the same text whether streamed or whole, alone or in a batch.
    assert whole.json()["text"] == done["text"]
    assert whole.json()["finish_reason"] == done["finish_reason"]
    if done["finish_reason"] == "length":
        assert done["tokens"] <= 16


def test_concurrent_requests_are_each_answered_and_logged_with_their_text(base_url: str, db: Engine) -> None:
    ids = [f"it-{uuid.uuid4().hex}" for _ in range(8)]

    def one(index: int) -> dict[str, Any]:
        body = {"text": TEXTS[index % len(TEXTS)], "max_new_tokens": 12}
        with httpx.Client(base_url=base_url, timeout=60, headers={"x-request-id": ids[index]}) as client:
            if index % 2:
                return client.post("/generate", json=body).json()
            events, _ = stream(client, body)
            return next(data for name, data in events if name == "done")

    with ThreadPoolExecutor(len(ids)) as pool:
        answers = list(pool.map(one, range(len(ids))))
    rows = {row.request_id: row for row in wait_for_rows(db, set(ids))}
    assert set(rows) == set(ids)
    for request_id, answer in zip(ids, answers, strict=True):
        logged = json.loads(rows[request_id].output_json)
        assert logged["text"] == answer["text"]
        assert logged["tokens"] == answer["tokens"]
        assert logged["ttft_ms"] >= 0


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/generate/stream", {"text": TEXTS[0], "num_beams": 2}, "num_beams"),
        ("/generate", {"text": TEXTS[0], "max_new_tokens": 25}, "max_new_tokens"),  # over the app's limit of 24
        ("/generate", {"text": TEXTS[0], "num_beams": 2, "temperature": 0.5}, None),
        ("/generate", {"text": "   "}, "text"),
    ],
)
def test_what_the_app_cannot_do_is_a_422_naming_the_field(
    base_url: str, path: str, body: dict[str, Any], field: str | None
) -> None:
    answer = httpx.post(f"{base_url}{path}", json=body, timeout=30)
    assert answer.status_code == 422
    if field is not None:
        assert [field] == answer.json()["detail"][0]["loc"][1:]


def test_beam_search_and_sampling_answer_whole(base_url: str) -> None:
    with httpx.Client(base_url=base_url, timeout=60) as client:
        beams = client.post("/generate", json={"text": TEXTS[1], "num_beams": 3, "max_new_tokens": 10})
        first = client.post("/generate", json={"text": TEXTS[1], "temperature": 1.0, "seed": 7, "max_new_tokens": 10})
        again = client.post("/generate", json={"text": TEXTS[1], "temperature": 1.0, "seed": 7, "max_new_tokens": 10})
    assert beams.status_code == 200 and beams.json()["tokens"] <= 10
    assert first.status_code == 200
    assert first.json()["text"] == again.json()["text"]  # a seed repeats a sampled text


def test_the_try_it_page_and_health(base_url: str, model: ModelArtifact) -> None:
    page = httpx.get(f"{base_url}/", timeout=10)
    assert page.status_code == 200 and "generate/stream" in page.text
    health = httpx.get(f"{base_url}/healthz", timeout=10).json()
    assert health == {"status": "ok", "app": APP, "model_sha256": model.sha256}
