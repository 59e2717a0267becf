"""The HTTP stacks measured in-process: the same answer from each, their CPU per request, the report."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from starlette.types import Receive, Scope, Send

from benchmarks import http_stacks

BODY = json.dumps({"text": "The striker scored twice.", "labels": ["sports", "cooking"]}).encode()


@pytest.mark.parametrize("name", sorted(http_stacks.STACKS))
def test_each_stack_answers_the_labels_at_equal_scores(name: str) -> None:
    status, content = asyncio.run(http_stacks.answer(http_stacks.STACKS[name](), BODY))

    assert status == 200
    assert json.loads(content) == {
        "sequence": "The striker scored twice.",
        "labels": ["sports", "cooking"],
        "scores": [0.5, 0.5],
    }


def test_the_toolkit_stack_runs_the_served_apps_middlewares() -> None:
    # The toolkit's own body check answers a body that is not JSON (fastapi's own handler would say json_invalid too,
    # but without the byte offset in loc).
    status, content = asyncio.run(http_stacks.answer(http_stacks.toolkit_app(), b'{"text": "x", "labels": [}'))

    assert status == 422
    assert json.loads(content)["detail"][0]["loc"] == ["body", 25]


def test_a_stack_answering_otherwise_is_caught_before_anything_is_timed() -> None:
    async def wrong(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b'{"sequence": "", "labels": [], "scores": []}'})

    stacks = {"fastapi": http_stacks.STACKS["fastapi"](), "wrong": wrong}

    with pytest.raises(RuntimeError, match="differently"):
        asyncio.run(http_stacks.check(stacks, [BODY]))


def test_main_prints_each_stack_against_bare_and_writes_the_figures(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert http_stacks.main(tmp_path, requests=20, repetitions=2) == 0

    figures = json.loads((tmp_path / "http_stacks.json").read_text())
    assert set(figures["us_per_request"]) == {"fastapi", "toolkit", "bare"}
    for stack in figures["us_per_request"].values():
        assert 0 < stack["min"] <= stack["median"] <= stack["max"]
    printed = capsys.readouterr().out
    assert "x bare" in printed
    assert f"wrote {tmp_path / 'http_stacks.json'}" in printed
