"""The naive generation peer of `nox -s bench`: the plain-language rewrite as a first hand-written service does it.

FastAPI + uvicorn (one worker) + transformers/torch fp32: the Hugging Face checkpoint in the plain-language archive
loaded with `T5ForConditionalGeneration.from_pretrained`, one greedy `generate` call per request, with no batching
across requests, no ONNX and no cache of its own. `POST /generate/stream` runs `generate` in a thread and forwards
what transformers' `TextIteratorStreamer` hands over, as the served app's server-sent events
(serve_apps/plain_language/api.py), so that one client reads both. The streamer holds text back until a word ends:
a `token` event here carries a word or more, and the first arrives a token or so after the first token.

Run: `NAIVE_GENERATE_ARCHIVE=models/plain_language/plain-t5.tar uvicorn --factory benchmarks.naive_generate:from_env`
(the benchmark starts it so, pinned to the same cores as Ray).
"""

from __future__ import annotations

import os
import tarfile
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import torch
from fastapi import FastAPI
from fastapi.responses import StreamingResponse
from transformers import AutoTokenizer, T5ForConditionalGeneration, TextIteratorStreamer

from serve_apps.common.api import reject
from serve_apps.plain_language.api import (
    DEFAULT_MAX_NEW_TOKENS,
    DONE_EVENT,
    ERROR_EVENT,
    STREAM_MEDIA_TYPE,
    TOKEN_EVENT,
    GenerateRequest,
    Generation,
    StreamError,
    TokenEvent,
    sse_event,
)

ARCHIVE_VARIABLE = "NAIVE_GENERATE_ARCHIVE"


def from_env() -> FastAPI:
    """The app for uvicorn's --factory, on the archive $NAIVE_GENERATE_ARCHIVE names."""
    return make_app(Path(os.environ[ARCHIVE_VARIABLE]))


def make_app(archive: Path) -> FastAPI:
    """The service over the checkpoint in `archive` (a tar as serve_apps/plain_language/build.py writes it)."""
    with tempfile.TemporaryDirectory(prefix="naive-generate-") as checkpoint:
        with tarfile.open(archive) as tar:
            tar.extractall(checkpoint, filter="data")
        tokenizer = AutoTokenizer.from_pretrained(checkpoint)
        model = T5ForConditionalGeneration.from_pretrained(checkpoint).eval()
    eos = model.config.eos_token_id
    app = FastAPI(title="Naive plain-language generator")

    def generation(ids: list[int], text: str, started: float, first: float | None) -> Generation:
        """The Generation of the ids generate() returned after the decoder's start token."""
        ended = bool(ids) and ids[-1] == eos
        return Generation(
            text=text,
            tokens=len(ids) - ended,
            finish_reason="eos" if ended else "length",
            ttft_ms=((first or time.perf_counter()) - started) * 1000,
        )

    @app.post("/generate")
    def generate(request: GenerateRequest) -> Generation:
        """The whole rewrite of one request."""
        started = time.perf_counter()
        inputs = tokenizer(request.text, return_tensors="pt")
        with torch.inference_mode():
            output = model.generate(**inputs, max_new_tokens=greedy(request), do_sample=False, num_beams=1)
        ids = output[0, 1:].tolist()
        return generation(ids, tokenizer.decode(ids, skip_special_tokens=True), started, None)

    @app.post("/generate/stream", response_class=StreamingResponse)
    def generate_stream(request: GenerateRequest) -> StreamingResponse:
        """The rewrite of one request, streamed as the streamer releases it."""
        started = time.perf_counter()
        inputs = tokenizer(request.text, return_tensors="pt")
        streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
        outputs: list[torch.Tensor] = []
        failures: list[Exception] = []
        limit = greedy(request)

        def run() -> None:
            try:
                with torch.inference_mode():  # per thread: the request's thread does not lend it to this one
                    outputs.append(
                        model.generate(**inputs, max_new_tokens=limit, do_sample=False, num_beams=1, streamer=streamer)
                    )
            except Exception as error:
                failures.append(error)
                streamer.end()  # else the reader waits for text forever

        thread = threading.Thread(target=run, daemon=True)
        thread.start()

        def events() -> Iterator[str]:
            pieces: list[str] = []
            first = None
            for piece in streamer:
                if piece:  # the streamer hands over "" for each token that does not end a word
                    first = first or time.perf_counter()
                    yield sse_event(TOKEN_EVENT, TokenEvent(index=len(pieces), text=piece))
                    pieces.append(piece)
            thread.join()
            if failures:
                yield sse_event(ERROR_EVENT, StreamError(detail=str(failures[0])))
                return
            yield sse_event(DONE_EVENT, generation(outputs[0][0, 1:].tolist(), "".join(pieces), started, first))

        # Starlette iterates a plain iterator in its thread pool: the event loop never waits on the queue.
        return StreamingResponse(events(), media_type=STREAM_MEDIA_TYPE)

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        """200 once the model is loaded (it loads before the app exists)."""
        return {"status": "ok"}

    return app


def greedy(request: GenerateRequest) -> int:
    """The tokens `request` may generate (the served app's default when it states none); 422 unless it is greedy,
    the only decoding this service offers."""
    if request.num_beams != 1:
        reject(["num_beams"], "this service decodes greedily: num_beams must be 1", request.num_beams)
    if request.temperature != 0:
        reject(["temperature"], "this service decodes greedily: temperature must be 0", request.temperature)
    return request.max_new_tokens or DEFAULT_MAX_NEW_TOKENS
