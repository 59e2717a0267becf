"""One bad text fails only its own request: the dev env's zero-shot app, alone on the session's Ray, answers rounds of
concurrent requests in which one text holds a lone surrogate (valid JSON, "\\ud800", that no tokenizer encodes).

Before the fix such a text reached the tokenizer inside a batch, and every request batched with it got a 500.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from localrun.serve import deploy
from tests.integration.single_app import free_port, single_app_config

APP = "zero-shot"
ROUNDS = 10
NORMAL_PER_ROUND = 12
LABELS = ["sports", "cooking", "finance"]
BAD_TEXT = "abc \ud800 def"


@pytest.fixture(scope="module")
def app_url(ray_cluster: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from ray import serve

    config = single_app_config("dev", APP, {"MODEL_CACHE_DIR": str(tmp_path_factory.mktemp("cache"))})
    (app,) = config["applications"]
    try:
        yield deploy(config, free_port()).url + app["route_prefix"]
    finally:
        serve.shutdown()


def test_a_bad_text_fails_only_its_own_request(app_url: str) -> None:
    def post(text: str) -> httpx.Response:
        # json.dumps escapes the surrogate as \ud800, as a client's JSON encoder would; httpx's `json=` would not.
        body = json.dumps({"text": text, "labels": LABELS})
        return client.post("/predict", content=body, headers={"content-type": "application/json"})

    normal: list[httpx.Response] = []
    bad: list[httpx.Response] = []
    with httpx.Client(base_url=app_url, timeout=60) as client, ThreadPoolExecutor(NORMAL_PER_ROUND + 1) as pool:
        for round_number in range(ROUNDS):
            texts = [f"Match {round_number}.{i}: the striker scored twice in the cup final." for i in range(6)]
            texts += [f"Recipe {round_number}.{i}: whisk the eggs and fold in the flour." for i in range(6)]
            # The bad request goes in the middle of the round, so that it would share a batch with the others.
            answers = list(pool.map(post, [*texts[:6], BAD_TEXT, *texts[6:]]))
            normal += answers[:6] + answers[7:]
            bad.append(answers[6])

    failed = [(r.status_code, r.text[:200]) for r in normal if r.status_code != 200]
    assert len(normal) == ROUNDS * NORMAL_PER_ROUND
    assert failed == [], f"{len(failed)} of {len(normal)} normal requests failed: {failed[:3]}"
    assert [r.json()["labels"][0] for r in normal] == (["sports"] * 6 + ["cooking"] * 6) * ROUNDS
    for response in bad:
        assert response.status_code == 422, response.text
        (error,) = response.json()["detail"]
        assert error["loc"] == ["body", "text"], error
        assert "lone surrogate U+D800" in error["msg"], error
