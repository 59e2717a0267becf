"""Request batching that forms a batch when the model is free: what queued meanwhile, up to max_batch_size.

Used instead of `@serve.batch`, whose queue (Ray 2.60) forms the next batch as soon as its first request arrives,
before the running batch has finished (batches wait for `max_concurrent_batches` only once formed). While one batch
runs, the requests behind it become a queue of batches of one or two, each paying the model's per-call cost: on
this repository's 2-core benchmark that halved the zero-shot throughput, and a longer `batch_wait_timeout_s`
traded latency for only part of it back. Here a batch is taken when the model is free, so it holds everything that
queued while the previous one ran; `batch_wait_timeout_s` is how long the oldest waiting request may wait for more
to join it when the batch is not full. A request that finds the model idle (no batch running, none queued) goes at
once: nothing is in flight whose clients would join it, so the wait would only add to its latency.

`max_concurrent_batches` (default 1) lets that many batches run at once, each taken when a slot frees: while one
batch is in the model, the event loop answers the previous one and the next forms, so the model and the HTTP work
overlap instead of taking turns. A slot frees as its batch ends, before that batch's clients have their answers
and send again, so with no wait the next batch is the one or two requests already queued; a few milliseconds of
wait keep batches whole (README, Benchmarks). The same settings as `@serve.batch`, retuned in place from
`reconfigure()` (user_config `batching`).

A failing item fails only its own request. A batch function that can tell which items it cannot answer before
doing the work raises `ItemErrors`: those items get their errors and the rest are called again once. Any other
error is bisected: the halves are called in turn, a half that succeeds is answered at once, and a failing half is
split again down to the single item, which gets the error it raised alone. One bad item in a batch of n costs about
2·log2(n) calls (n-1 items are answered from log2(n) of them); a half whose sibling succeeded is known to fail and
is split without being called whole. A model that fails every item costs 2n-1 calls, each failing.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


class ItemErrors(Exception):
    """Raised by a batch function for the items it cannot answer, each by its index in the batch with its own error."""

    def __init__(self, errors: Mapping[int, Exception]) -> None:
        super().__init__(f"{len(errors)} items refused: " + "; ".join(f"{i}: {e}" for i, e in sorted(errors.items())))
        self.errors = dict(errors)


class Batcher(Generic[Item, Result]):
    """Calls `function(items) -> results` (same order, same length) in worker threads, `max_concurrent_batches`
    batches at a time.

    Awaiting `batcher(item)` queues the item and returns its result; the event loop stays free for requests while
    batches run, and every request that arrives meanwhile joins the next batch.
    """

    def __init__(
        self,
        function: Callable[[Sequence[Item]], list[Result]],
        max_batch_size: int,
        batch_wait_timeout_s: float,
        max_concurrent_batches: int = 1,
    ) -> None:
        self._function = function
        self.max_batch_size = max_batch_size
        self.batch_wait_timeout_s = batch_wait_timeout_s
        self.max_concurrent_batches = max_concurrent_batches
        self._queue: deque[tuple[Item, asyncio.Future[Result], float]] = deque()
        self._arrived = asyncio.Event()
        self._slot_freed = asyncio.Event()
        self._running: set[asyncio.Task[bool]] = set()
        # When the last batch ended (None while one runs): an item queued after it found the model idle.
        self._idle_since: float | None = float("-inf")
        self._answering = 0  # batches whose items are not all answered yet
        self._worker: asyncio.Task[None] | None = None

    def set_max_batch_size(self, max_batch_size: int) -> None:
        """Most items in one call, from the next batch on."""
        self.max_batch_size = max_batch_size

    def set_batch_wait_timeout_s(self, batch_wait_timeout_s: float) -> None:
        """Longest the oldest queued item waits for a fuller batch, from the next batch on."""
        self.batch_wait_timeout_s = batch_wait_timeout_s

    def set_max_concurrent_batches(self, max_concurrent_batches: int) -> None:
        """Most batches running at once, from the next batch on (running ones finish)."""
        self.max_concurrent_batches = max_concurrent_batches
        self._slot_freed.set()

    @property
    def queued(self) -> int:
        """Items waiting for a batch."""
        return len(self._queue)

    async def __call__(self, item: Item) -> Result:
        """The result of `item`, computed in a batch with the items queued beside it."""
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future, time.monotonic()))
        self._arrived.set()
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._run())
        return await future

    async def _run(self) -> None:
        while self._queue:
            while len(self._running) >= self.max_concurrent_batches:
                self._slot_freed.clear()
                await self._slot_freed.wait()
            await self._wait_for_more()
            batch = [self._queue.popleft() for _ in range(min(len(self._queue), self.max_batch_size))]
            live = [(item, future) for item, future, _ in batch if not future.done()]  # done: the client went away
            if live:
                self._idle_since = None
                self._answering += 1
                task = asyncio.create_task(self._answer(live))
                self._running.add(task)
                task.add_done_callback(self._batch_done)

    def _batch_done(self, task: asyncio.Task[bool]) -> None:
        self._running.discard(task)
        self._slot_freed.set()

    async def _answer(self, live: list[tuple[Item, asyncio.Future[Result]]]) -> bool:
        try:
            return await self._call(live)
        finally:
            # Here, not in _batch_done: a client may send its next request before the task's done callbacks run.
            self._answering -= 1
            if not self._answering:
                self._idle_since = time.monotonic()

    async def _call(self, live: list[tuple[Item, asyncio.Future[Result]]], failed: Exception | None = None) -> bool:
        """Answer every item of `live`, failing only the items at fault; `failed` is the error with which a call of
        exactly these items already failed, so that it is not repeated. True when one call answered them all."""
        pending = [entry for entry in live if not entry[1].done()]  # done: the client went away
        if len(pending) < len(live):
            live, failed = pending, None  # a failure of the whole set says nothing of what is left
        if not live:
            return False
        if failed is None:
            try:
                results = await asyncio.to_thread(self._function, [item for item, _ in live])
                if len(results) != len(live):
                    raise RuntimeError(f"the batch function returned {len(results)} results for {len(live)} items")
            except ItemErrors as refused:
                named = {index: error for index, error in refused.errors.items() if 0 <= index < len(live)}
                if not named:
                    return await self._call(live, refused)
                for index, error in named.items():
                    _fail(live[index][1], error)
                await self._call([entry for index, entry in enumerate(live) if index not in named])
                return False
            except Exception as error:
                return await self._call(live, error)
            for (_, future), result in zip(live, results, strict=True):
                if not future.done():
                    future.set_result(result)
            return True
        if len(live) == 1:
            _fail(live[0][1], failed)
            return False
        half = len(live) // 2
        first, second = live[:half], live[half:]
        # The first half answered in one call: the failure is in the second, which would fail again whole.
        await self._call(second, failed if await self._call(first) else None)
        return False

    async def _wait_for_more(self) -> None:
        """Until the batch is full or the oldest item has waited batch_wait_timeout_s; not at all when the oldest
        item arrived at an idle model."""
        oldest = self._queue[0][2]
        if self._idle_since is not None and oldest >= self._idle_since:
            return
        while len(self._queue) < self.max_batch_size:
            left = oldest + self.batch_wait_timeout_s - time.monotonic()
            if left <= 0:
                return
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), left)
            except TimeoutError:
                return


def _fail(future: asyncio.Future[Result], error: Exception) -> None:
    if not future.done():
        future.set_exception(error)
