"""The bench's generation part: the streaming client's figures against real servers (the naive peer on a tiny T5,
and a scripted server for the failures a model does not make on demand), the summary math, the text check."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.responses import JSONResponse, StreamingResponse

from benchmarks import generation
from benchmarks.generation import Streamed
from benchmarks.naive_generate import make_app
from benchmarks.peers import free_port
from localrun.serve import LOCAL_HOST
from serve_apps.plain_language.build import build
from serve_apps.plain_language.model import GenerationRequest, PlainLanguageModel

NOTE = "Pt c/o SOB x3d, hx of HTN."
PIECES = ["The", " patient", " is", " fine."]


@pytest.fixture(scope="module")
def tiny_archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-init tiny T5: it writes nonsense, the same on every backend."""
    archive = tmp_path_factory.mktemp("tiny") / "tiny.tar"
    build(archive, size="tiny", steps=0)
    return archive


def serving(app: FastAPI) -> Iterator[str]:
    """`app` under uvicorn in a thread on a free port, until the generator is closed; its base URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host=LOCAL_HOST, port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError(f"uvicorn did not start on port {port}")
        time.sleep(0.05)
    yield f"http://{LOCAL_HOST}:{port}"
    server.should_exit = True
    thread.join()


@pytest.fixture(scope="module")
def naive(tiny_archive: Path) -> Iterator[str]:
    """The naive peer on the tiny archive; its /generate/stream URL."""
    for base in serving(make_app(tiny_archive)):
        yield f"{base}/generate/stream"


def scripted_app() -> FastAPI:
    """What a streaming server may do: answer whole, fail after its first token, end without `done`, refuse."""
    app = FastAPI()

    def events(names_and_data: list[tuple[str, object]]) -> StreamingResponse:
        async def body() -> AsyncIterator[str]:
            for name, data in names_and_data:
                yield f"event: {name}\ndata: {json.dumps(data)}\n\n"
                await asyncio.sleep(0)

        return StreamingResponse(body(), media_type="text/event-stream")

    tokens = [("token", {"index": i, "text": piece}) for i, piece in enumerate(PIECES)]
    done = {"text": "".join(PIECES), "tokens": len(PIECES), "finish_reason": "eos", "ttft_ms": 1.0}

    @app.post("/whole")
    def whole() -> StreamingResponse:
        return events([*tokens, ("done", done)])

    @app.post("/other-text")
    def other_text() -> StreamingResponse:
        return events([("token", {"index": 0, "text": "Other."}), ("done", {**done, "text": "Other.", "tokens": 1})])

    @app.post("/fails")
    def fails() -> StreamingResponse:
        return events([tokens[0], ("error", {"detail": "generation failed: out of memory"})])

    @app.post("/cut")
    def cut() -> StreamingResponse:
        return events(tokens[:2])

    @app.post("/refuses")
    def refuses() -> JSONResponse:
        return JSONResponse({"detail": "no"}, status_code=422)

    return app


@pytest.fixture(scope="module")
def scripted() -> Iterator[str]:
    yield from serving(scripted_app())


def streamed(url: str, body: dict[str, object]) -> Streamed:
    async def once() -> Streamed:
        async with aiohttp.ClientSession() as session:
            return await generation.stream(session, url, json.dumps(body).encode())

    return asyncio.run(once())


def test_a_stream_gives_its_first_token_time_tokens_and_text(scripted: str) -> None:
    result = streamed(f"{scripted}/whole", {"text": NOTE})
    assert result.error is None
    assert result.ttft_s is not None
    assert 0 < result.ttft_s <= result.total_s
    assert (result.tokens, result.text, result.pieces) == (4, "The patient is fine.", "The patient is fine.")


def test_the_naive_peer_streams_what_the_model_writes(naive: str, tiny_archive: Path) -> None:
    (expected,) = PlainLanguageModel.load(tiny_archive, "onnx").generate([GenerationRequest(NOTE)])
    result = streamed(naive, {"text": NOTE})
    assert result.error is None
    assert result.ttft_s is not None
    assert (result.text, result.pieces) == (expected.text, expected.text)
    assert result.tokens == expected.tokens - (expected.finish_reason == "eos")


def test_an_error_event_is_an_error(scripted: str) -> None:
    result = streamed(f"{scripted}/fails", {"text": NOTE})
    assert result.error == "error event: generation failed: out of memory"
    assert result.tokens == 0


def test_a_stream_that_ends_without_done_is_an_error(scripted: str) -> None:
    assert streamed(f"{scripted}/cut", {"text": NOTE}).error == "the stream ended without a done event"


@pytest.mark.parametrize("body", [{"text": "   "}, {"text": NOTE, "num_beams": 2}, {"text": NOTE, "temperature": 0.5}])
def test_a_refused_request_is_an_http_error(naive: str, body: dict[str, object]) -> None:
    result = streamed(naive, body)
    assert (result.error, result.ttft_s, result.tokens) == ("HTTP 422", None, 0)


def test_a_refused_connection_is_an_error() -> None:
    assert streamed(f"http://{LOCAL_HOST}:{free_port()}/generate/stream", {"text": NOTE}).error == (
        "ClientConnectorError"
    )


def test_same_text_passes_when_the_systems_agree(scripted: str) -> None:
    assert generation.check_same_text({"a": f"{scripted}/whole", "b": f"{scripted}/whole"}, NOTE) == "".join(PIECES)


@pytest.mark.parametrize(
    ("path", "reason"), [("other-text", "b: 'Other.'"), ("fails", "b: error event"), ("refuses", "b: HTTP 422")]
)
def test_same_text_refuses_to_measure_systems_that_differ(scripted: str, path: str, reason: str) -> None:
    with pytest.raises(RuntimeError, match=f"differently; not measuring:\n(.*\n)?{reason}"):
        generation.check_same_text({"a": f"{scripted}/whole", "b": f"{scripted}/{path}"}, NOTE)


def record(ttft_s: float | None, total_s: float, tokens: int, error: str | None = None) -> Streamed:
    return Streamed(ttft_s, total_s, ended=0.0, tokens=tokens, text="", pieces="", error=error)


def test_figures_count_tokens_over_the_window_and_time_the_good_requests() -> None:
    requests = [record(0.01 * i, 0.1 * i, tokens=10) for i in range(1, 21)]
    requests += [record(None, 5.0, 0, "HTTP 503"), record(0.5, 9.0, 0, "error event: boom")]
    result = generation.figures("served", 8, requests, window_s=4.0)
    assert (result.requests, result.errors, result.tokens) == (22, 2, 200)
    assert (result.tokens_per_s, result.rps) == (50.0, 5.0)
    assert (result.ttft_p50_ms, result.ttft_p95_ms) == pytest.approx((100.0, 190.0))
    assert (result.request_p50_ms, result.request_p95_ms) == pytest.approx((1000.0, 1900.0))


def test_figures_of_an_empty_window_are_zero() -> None:
    result = generation.figures("naive", 1, [], window_s=2.0)
    assert (result.requests, result.tokens_per_s, result.ttft_p95_ms) == (0, 0.0, 0.0)


def test_the_client_process_reports_its_window(scripted: str, tmp_path: Path) -> None:
    notes = tmp_path / "notes.json"
    notes.write_text(json.dumps([NOTE, "BP 120/80."]))
    result = generation.measure("served", f"{scripted}/whole", notes, clients=2, warmup_s=0.2, duration_s=1.0)
    assert (result.system, result.clients, result.window_s, result.errors) == ("served", 2, 1.0, 0)
    assert result.requests > 0
    assert result.tokens == 4 * result.requests
    assert result.foreign_cores >= 0  # measured over the window the client marked
