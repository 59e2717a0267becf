"""Ray Serve app: clinical shorthand rewritten in plain words by a T5 model (POST /generate, POST /generate/stream,
GET /healthz, GET /stats, /docs, the try-it page at /).

The API (request, response, the stream's server-sent events) is serve_apps/plain_language/api.py; generation is
serve_apps/plain_language/model.py. Requests are batched (serve_apps/common/batching.py): the requests that queued
while the model was busy are decoded together, streaming and whole ones alike, each leaving the batch when it ends;
user_config `batching` retunes it in place. A batch runs in a worker thread and hands each streamed token to its
request's queue on the event loop, so tokens reach the client while the batch still runs.

Top-level imports stay light (the render step imports this module for PlainLanguageArgs); numpy, onnxruntime and
tokenizers are imported when a replica starts.
"""

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fastapi import Request
from fastapi.responses import StreamingResponse
from ray import serve
from ray.serve import Application

from serve_apps.common.api import make_api, reject
from serve_apps.common.batching import Batcher, ItemErrors
from serve_apps.common.metrics import serving_metrics
from serve_apps.common.page import add_try_it_page
from serve_apps.common.replica import ModelReplica, ReplicaStats, parse_user_config
from serve_apps.common.schemas import BatchedUserConfig, Health
from serve_apps.plain_language.api import (
    DONE_EVENT,
    ERROR_EVENT,
    STREAM_MEDIA_TYPE,
    TOKEN_EVENT,
    GenerateRequest,
    Generation,
    PlainLanguageArgs,
    StreamError,
    TokenEvent,
    max_new_tokens,
    sse_event,
    streamable,
    within_limits,
)

if TYPE_CHECKING:
    from serve_apps.plain_language.model import GenerationRequest, PlainLanguageModel

# Batching defaults, used until user_config `batching` says otherwise: a decoding step of 8 sequences costs little
# more than one of 1 on this small model, and a stream's first token waits at most this long for company.
MAX_BATCH_SIZE = 8
BATCH_WAIT_TIMEOUT_S = 0.01
# A proxy must not buffer the stream (nginx and Cloud Run's frontend honour this header) nor transform it.
STREAM_HEADERS = {"cache-control": "no-cache, no-transform", "x-accel-buffering": "no"}
_END = None  # put on a job's queue after its last piece


@dataclass
class Job:
    """One request in a batch: what to generate, when its handling began, and where its pieces go when it streams."""

    request: "GenerationRequest"
    started: float  # time.perf_counter() when the request was parsed
    loop: asyncio.AbstractEventLoop
    pieces: "asyncio.Queue[str | None] | None" = None  # None: the client wants the whole text at the end
    first_token_at: float | None = None
    last_token_at: float = 0.0
    tokens: int = 0
    streamed: list[str] = field(default_factory=list)

    def ttft_ms(self) -> float:
        assert self.first_token_at is not None
        return (self.first_token_at - self.started) * 1000


class GenerationFailed(Exception):
    """Generation of a batch failed after its requests had tokens: they cannot be generated again."""


api = make_api(
    title="Plain-language rewriter",
    description="Rewrite clinical shorthand in plain words, whole or streamed token by token.",
)
add_try_it_page(api, "plain_language")


@serve.deployment
@serve.ingress(api)
class PlainLanguageGenerator(ModelReplica):
    """Generates with a T5 checkpoint in ONNX Runtime (or transformers), decoding batched requests together."""

    model: "PlainLanguageModel"

    def __init__(self, args: PlainLanguageArgs) -> None:
        from serve_apps.plain_language.model import PlainLanguageModel

        self._args = args
        super().__init__(
            args.model,
            args.prediction_log,
            lambda path: PlainLanguageModel.load(path, backend=args.backend, num_threads=args.num_threads),
        )
        self._metrics = serving_metrics()
        self._batcher: Batcher[Job, Generation] = Batcher(self._generate_batch, MAX_BATCH_SIZE, BATCH_WAIT_TIMEOUT_S)

    def reconfigure(self, user_config: dict[str, Any]) -> None:
        """Apply user_config; `batching` retunes the batcher in place."""
        config = parse_user_config(BatchedUserConfig, user_config, self.app_name)
        if config.batching is not None:
            self._batcher.set_max_batch_size(config.batching.max_batch_size)
            self._batcher.set_batch_wait_timeout_s(config.batching.batch_wait_timeout_s)
            self._batcher.set_max_concurrent_batches(config.batching.max_concurrent_batches)

    def _generate_batch(self, jobs: Sequence[Job]) -> list[Generation]:
        """The batch function (a worker thread): decode the jobs together, hand each streamed piece to its job's
        queue as its step ends, and count tokens, time to first token and the gaps between tokens."""
        self._metrics.generation_queue(self.app_name, self._batcher.queued)
        decoding = self.model.stream_batch([job.request for job in jobs])
        try:
            while True:
                try:
                    steps = next(decoding)
                except StopIteration as done:
                    results = done.value
                    break
                self._took_step(jobs, steps)
        except Exception as error:
            if not any(job.tokens for job in jobs):
                raise  # nothing reached a client: the batcher answers the requests named, or tries halves again
            # A request whose tokens reached its client cannot start again: each fails, none is generated again.
            raise ItemErrors({i: GenerationFailed(f"generation failed: {error}") for i in range(len(jobs))}) from error
        for job in jobs:
            if job.pieces is not None:
                job.loop.call_soon_threadsafe(job.pieces.put_nowait, _END)
        finished = time.perf_counter()
        return [
            Generation(
                text=result.text,
                # Streamed: the token events sent. Otherwise the model's count, its end-of-sequence token left out.
                tokens=job.tokens if job.pieces is not None else result.tokens - (result.finish_reason == "eos"),
                finish_reason=result.finish_reason,
                # A beam search has no first token before its end.
                ttft_ms=job.ttft_ms() if job.first_token_at is not None else (finished - job.started) * 1000,
            )
            for job, result in zip(jobs, results, strict=True)
        ]

    def _took_step(self, jobs: Sequence[Job], steps: Sequence[tuple[int, str]]) -> None:
        now = time.perf_counter()
        first, gaps = [], []
        for index, piece in steps:
            job = jobs[index]
            if job.first_token_at is None:
                job.first_token_at = now
                first.append(job.ttft_ms())
            else:
                gaps.append((now - job.last_token_at) * 1000)
            job.last_token_at = now
            job.tokens += 1
            if job.pieces is not None:
                job.loop.call_soon_threadsafe(job.pieces.put_nowait, piece)
        self._metrics.first_tokens(self.app_name, first)
        self._metrics.tokens_generated(self.app_name, len(steps), gaps)

    def _job(self, request: GenerateRequest, streams: bool) -> Job:
        """The request as the model takes it; 422 for what the Args do not allow."""
        started = time.perf_counter()
        within_limits(request, self._args)
        if streams:
            streamable(request)
        from serve_apps.plain_language.model import GenerationRequest

        seed = request.seed if request.seed is not None else time.time_ns() % (2**32)
        generation = GenerationRequest(
            text=request.text,
            max_new_tokens=max_new_tokens(request, self._args),
            num_beams=request.num_beams,
            temperature=request.temperature,
            seed=seed,
        )
        loop = asyncio.get_running_loop()
        return Job(generation, started, loop, asyncio.Queue() if streams else None)

    async def _answer(self, job: Job) -> Generation:
        """The job's Generation; 422 for a text the model refuses (too many tokens)."""
        self._metrics.generation_queue(self.app_name, self._batcher.queued + 1)
        try:
            return await self._batcher(job)
        except ValueError as error:
            reject(["text"], str(error), None)

    @api.post("/generate")
    async def generate(self, request: GenerateRequest, http_request: Request) -> Generation:
        """Rewrite the text in plain words; the whole text at once."""
        job = self._job(request, streams=False)
        generation = await self._answer(job)
        self.record(http_request, request, generation, [generation.finish_reason], job.started)
        return generation

    @api.post("/generate/stream", response_class=StreamingResponse)
    async def generate_stream(self, request: GenerateRequest, http_request: Request) -> StreamingResponse:
        """Rewrite the text in plain words, one server-sent `token` event per token, then `done` with the whole
        Generation (api.py describes the events)."""
        job = self._job(request, streams=True)
        answer = asyncio.ensure_future(self._answer(job))
        assert job.pieces is not None
        # Until the first piece a failure is an HTTP error (a 422 for a refused text); after it, an `error` event.
        first = asyncio.ensure_future(job.pieces.get())
        await asyncio.wait({answer, first}, return_when=asyncio.FIRST_COMPLETED)
        if answer.done() and not first.done():
            first.cancel()
            answer.result()  # raises the request's error, if any
        events = self._events(job, request, http_request, answer, first)
        return StreamingResponse(events, media_type=STREAM_MEDIA_TYPE, headers=STREAM_HEADERS)

    async def _events(
        self,
        job: Job,
        request: GenerateRequest,
        http_request: Request,
        answer: "asyncio.Future[Generation]",
        first: "asyncio.Future[str | None]",
    ) -> AsyncIterator[str]:
        assert job.pieces is not None
        index = 0
        piece: str | None = await first if not first.cancelled() else _END
        try:
            while piece is not _END:
                yield sse_event(TOKEN_EVENT, TokenEvent(index=index, text=piece))
                index += 1
                piece = await job.pieces.get()
            generation = await answer
        except Exception as error:  # the stream has started: the client learns it from an event
            yield sse_event(ERROR_EVENT, StreamError(detail=str(error)))
            return
        self.record(http_request, request, generation, [generation.finish_reason], job.started)
        yield sse_event(DONE_EVENT, generation)

    @api.get("/healthz")
    def healthz(self) -> Health:
        """200 once the model is loaded."""
        return self.health_report()

    @api.get("/stats")
    def stats(self) -> ReplicaStats:
        """Logged generations per finish reason and latency percentiles."""
        return self.prediction_stats()


def app_builder(args: PlainLanguageArgs) -> Application:
    """The Serve application; Ray validates the config's `args` into PlainLanguageArgs."""
    # The decorators made PlainLanguageGenerator a Deployment; mypy does not apply class decorators.
    return PlainLanguageGenerator.bind(args)  # type: ignore[attr-defined]
