"""The hand-tuned peer of `nox -s bench`: zero-shot classification as a strong engineer writes it in an afternoon.

uvicorn + FastAPI + ONNX Runtime on the int8 artifact, no Ray: an asyncio micro-batcher hands batches to ONE worker
thread, which runs the model (the toolkit's ZeroShotModel: same tokenizer, encoder and scoring as the served app)
while the event loop parses the next requests. Request and response are the served app's (ZeroShotRequest,
ZeroShotResponse); no prediction log, no metrics, no per-request limits beyond the request model's.

Its tunables (benchmarks/peer_config.py, TUNED_FASTAPI) are read from the environment, so that uvicorn's worker
processes see them; `nox -s bench -- --tune-fastapi` measures them one at a time (docs/benchmarks.md#peers).

Run: `BENCH_ZERO_SHOT='{...}' uvicorn benchmarks.tuned_fastapi:app --workers 2 --no-access-log` (the bench starts it
so, pinned to the same cores as the others; benchmarks/peers.py says what BENCH_ZERO_SHOT holds).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Generic, TypeVar

from fastapi import FastAPI, Request

from benchmarks.peer_config import TUNED_FASTAPI, ModelSettings
from serve_apps.zero_shot.app import ZeroShotRequest, ZeroShotResponse, hypotheses
from serve_apps.zero_shot.model import Classification, Query, Scoring, ZeroShotModel

Item = TypeVar("Item")
Result = TypeVar("Result")


class MicroBatcher(Generic[Item, Result]):
    """Calls `function(items) -> results` (same order, same length) in one worker thread, one batch at a time.

    A batch is taken when the thread is free: every request queued meanwhile, up to max_batch_size; when fewer
    queued, it waits until its oldest request has waited max_wait_s for more. An error fails the requests of its
    batch only.
    """

    def __init__(self, function: Callable[[Sequence[Item]], list[Result]], max_batch_size: int, max_wait_s: float):
        self._function = function
        self._max_batch_size = max_batch_size
        self._max_wait_s = max_wait_s
        self._queue: asyncio.Queue[tuple[Item, asyncio.Future[Result], float]] = asyncio.Queue()
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="model")
        self._loop_task: asyncio.Task[None] | None = None

    async def __call__(self, item: Item) -> Result:
        """The result of `item`, computed in a batch with the requests queued beside it."""
        if self._loop_task is None:
            self._loop_task = asyncio.create_task(self._run())
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((item, future, time.monotonic()))
        return await future

    async def close(self) -> None:
        """Stop taking batches and let the worker thread finish."""
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
        self._thread.shutdown(wait=True)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self._queue.get()]
            deadline = batch[0][2] + self._max_wait_s
            while len(batch) < self._max_batch_size:
                if not self._queue.empty():
                    batch.append(self._queue.get_nowait())
                    continue
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(self._queue.get(), left))
                except TimeoutError:
                    break
            live = [(item, future) for item, future, _ in batch if not future.done()]  # done: the client left
            if not live:
                continue
            try:
                results = await loop.run_in_executor(self._thread, self._function, [item for item, _ in live])
            except Exception as error:
                for _, future in live:
                    if not future.done():
                        future.set_exception(error)
                continue
            for (_, future), result in zip(live, results, strict=True):
                if not future.done():
                    future.set_result(result)


def tuning(environ: Mapping[str, str] = os.environ) -> dict[str, float]:
    """TUNED_FASTAPI's settings, each overridden by its variable in `environ`."""
    return {name: float(environ.get(name, default)) for name, default in TUNED_FASTAPI.items()}


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Load the model and start the batcher in each worker process."""
    settings = ModelSettings.from_env()
    scoring = Scoring(temperature=settings.temperature, multi_label_threshold=settings.multi_label_threshold)
    tuned = tuning()
    model = ZeroShotModel(Path(settings.model_path), scoring, num_threads=int(tuned["TUNED_THREADS"]))
    batcher: MicroBatcher[Query, Classification] = MicroBatcher(
        model.classify, int(tuned["TUNED_MAX_BATCH_SIZE"]), tuned["TUNED_MAX_WAIT_MS"] / 1000
    )
    app.state.template = settings.hypothesis_template
    app.state.classify = batcher
    yield
    await batcher.close()


app = FastAPI(title="Hand-tuned zero-shot classifier", lifespan=lifespan)


@app.post("/predict")
async def predict(body: ZeroShotRequest, request: Request) -> ZeroShotResponse:
    """Score the candidate labels for the text."""
    template = body.hypothesis_template or request.app.state.template
    labels = tuple(body.labels)
    query = Query(text=body.text, labels=labels, hypotheses=hypotheses(template, labels), multi_label=body.multi_label)
    result = await request.app.state.classify(query)
    return ZeroShotResponse(sequence=result.sequence, labels=result.labels, scores=result.scores)


@app.get("/healthz")
def healthz() -> dict[str, str]:
    """200 once the model is loaded (lifespan runs before the server accepts requests)."""
    return {"status": "ok"}
