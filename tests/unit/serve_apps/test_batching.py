"""The batcher: a batch is what queued while the model was busy, up to max_batch_size, in request order."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Sequence

import pytest

from serve_apps.common.batching import Batcher, ItemErrors


class Recorder:
    """A batch function that doubles its items, records each batch, and can be held until released."""

    def __init__(self, hold_first: bool = False) -> None:
        self.batches: list[list[int]] = []
        self.release = threading.Event()
        self.started = threading.Event()
        if not hold_first:
            self.release.set()

    def __call__(self, items: Sequence[int]) -> list[int]:
        self.batches.append(list(items))
        self.started.set()
        self.release.wait(5)
        return [item * 2 for item in items]


async def _started(recorder: Recorder) -> None:
    await asyncio.to_thread(recorder.started.wait, 5)


def test_items_queued_while_a_batch_runs_form_the_next_batch() -> None:
    async def scenario() -> tuple[list[int], list[list[int]]]:
        recorder = Recorder(hold_first=True)
        batcher: Batcher[int, int] = Batcher(recorder, max_batch_size=32, batch_wait_timeout_s=0)
        first = asyncio.ensure_future(batcher(1))
        await _started(recorder)
        rest = [asyncio.ensure_future(batcher(i)) for i in range(2, 7)]
        await asyncio.sleep(0.01)
        recorder.release.set()
        return await asyncio.gather(first, *rest), recorder.batches

    results, batches = asyncio.run(scenario())
    assert results == [2, 4, 6, 8, 10, 12]
    assert batches == [[1], [2, 3, 4, 5, 6]]


def test_max_batch_size_splits_the_queue() -> None:
    async def scenario() -> list[list[int]]:
        recorder = Recorder(hold_first=True)
        batcher: Batcher[int, int] = Batcher(recorder, max_batch_size=2, batch_wait_timeout_s=0)
        first = asyncio.ensure_future(batcher(0))
        await _started(recorder)
        rest = [asyncio.ensure_future(batcher(i)) for i in range(1, 6)]
        await asyncio.sleep(0.01)
        recorder.release.set()
        await asyncio.gather(first, *rest)
        return recorder.batches

    assert asyncio.run(scenario()) == [[0], [1, 2], [3, 4], [5]]


def test_the_wait_lets_later_items_join_a_batch() -> None:
    async def scenario() -> list[list[int]]:
        recorder = Recorder(hold_first=True)
        batcher: Batcher[int, int] = Batcher(
            recorder, max_batch_size=8, batch_wait_timeout_s=0.2, max_concurrent_batches=2
        )
        first = asyncio.ensure_future(batcher(0))
        await _started(recorder)
        # A slot is free, but a batch runs: 1 waits for company instead of going alone.
        second = asyncio.ensure_future(batcher(1))
        await asyncio.sleep(0.02)
        third = asyncio.ensure_future(batcher(2))
        await asyncio.sleep(0.3)
        recorder.release.set()
        await asyncio.gather(first, second, third)
        return recorder.batches

    assert asyncio.run(scenario()) == [[0], [1, 2]]


def test_a_request_at_an_idle_model_does_not_wait() -> None:
    async def scenario() -> list[float]:
        batcher: Batcher[int, int] = Batcher(Recorder(), max_batch_size=8, batch_wait_timeout_s=10)
        loop = asyncio.get_running_loop()
        took = []
        for item in range(3):  # each after the previous batch ended
            started = loop.time()
            await batcher(item)
            took.append(loop.time() - started)
        return took

    assert max(asyncio.run(scenario())) < 5


def test_a_full_batch_does_not_wait() -> None:
    async def scenario() -> float:
        batcher: Batcher[int, int] = Batcher(Recorder(), max_batch_size=2, batch_wait_timeout_s=10)
        loop = asyncio.get_running_loop()
        started = loop.time()
        await asyncio.gather(batcher(1), batcher(2))
        return loop.time() - started

    assert asyncio.run(scenario()) < 5


def test_retuning_applies_to_the_next_batch() -> None:
    async def scenario() -> list[list[int]]:
        recorder = Recorder(hold_first=True)
        batcher: Batcher[int, int] = Batcher(recorder, max_batch_size=32, batch_wait_timeout_s=0)
        first = asyncio.ensure_future(batcher(0))
        await _started(recorder)
        batcher.set_max_batch_size(1)
        batcher.set_batch_wait_timeout_s(0)
        rest = [asyncio.ensure_future(batcher(i)) for i in (1, 2)]
        await asyncio.sleep(0.01)
        recorder.release.set()
        await asyncio.gather(first, *rest)
        return recorder.batches

    assert asyncio.run(scenario()) == [[0], [1], [2]]


def test_a_failing_batch_fails_its_items_only() -> None:
    calls: list[list[int]] = []

    def flaky(items: Sequence[int]) -> list[int]:
        calls.append(list(items))
        if len(calls) == 1:
            raise ValueError("model failed")
        return list(items)

    async def scenario() -> int:
        batcher: Batcher[int, int] = Batcher(flaky, max_batch_size=8, batch_wait_timeout_s=0)
        with pytest.raises(ValueError, match="model failed"):
            await batcher(1)
        return await batcher(2)

    assert asyncio.run(scenario()) == 2


def test_a_wrong_number_of_results_is_an_error() -> None:
    async def scenario() -> None:
        batcher: Batcher[int, int] = Batcher(lambda items: [], max_batch_size=8, batch_wait_timeout_s=0)
        await batcher(1)

    with pytest.raises(RuntimeError, match="returned 0 results for 1 items"):
        asyncio.run(scenario())


def test_a_cancelled_request_is_left_out_of_its_batch() -> None:
    async def scenario() -> list[list[int]]:
        recorder = Recorder(hold_first=True)
        batcher: Batcher[int, int] = Batcher(recorder, max_batch_size=8, batch_wait_timeout_s=0)
        first = asyncio.ensure_future(batcher(1))
        await _started(recorder)
        gone = asyncio.ensure_future(batcher(2))
        kept = asyncio.ensure_future(batcher(3))
        await asyncio.sleep(0.01)
        gone.cancel()
        recorder.release.set()
        await asyncio.gather(first, kept)
        return recorder.batches

    assert asyncio.run(scenario()) == [[1], [3]]


class Overlap:
    """A batch function that records how many calls run at once. Each call holds until `expected` calls ran at once
    (or HOLD_LIMIT_S passed), then OVERLAP_S more, so that a call beyond `expected` would overlap it. (A fixed hold
    of 0.3 s let a thread that started late on a loaded CI machine look like too little overlap.)"""

    HOLD_LIMIT_S = 10.0
    OVERLAP_S = 0.2

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.changed = threading.Condition()
        self.running = 0
        self.most = 0
        self.batches: list[list[int]] = []

    def __call__(self, items: Sequence[int]) -> list[int]:
        with self.changed:
            self.running += 1
            self.most = max(self.most, self.running)
            self.batches.append(list(items))
            self.changed.notify_all()
            self.changed.wait_for(lambda: self.most >= self.expected, timeout=self.HOLD_LIMIT_S)
        time.sleep(self.OVERLAP_S)
        with self.changed:
            self.running -= 1
        return [item * 2 for item in items]


@pytest.mark.parametrize("concurrent", [1, 2, 3])
def test_max_concurrent_batches_is_how_many_run_at_once(concurrent: int) -> None:
    async def scenario() -> tuple[list[int], Overlap]:
        overlap = Overlap(expected=concurrent)
        batcher: Batcher[int, int] = Batcher(
            overlap, max_batch_size=2, batch_wait_timeout_s=0, max_concurrent_batches=concurrent
        )
        results = await asyncio.gather(*(batcher(i) for i in range(8)))
        return results, overlap

    results, overlap = asyncio.run(scenario())
    assert results == [i * 2 for i in range(8)]
    assert overlap.most == concurrent
    assert sorted(i for batch in overlap.batches for i in batch) == list(range(8))


def test_raising_max_concurrent_batches_lets_a_waiting_batch_start() -> None:
    async def scenario() -> int:
        overlap = Overlap(expected=2)
        batcher: Batcher[int, int] = Batcher(overlap, max_batch_size=1, batch_wait_timeout_s=0)
        calls = [asyncio.ensure_future(batcher(i)) for i in range(2)]
        await asyncio.sleep(0.05)  # the first batch runs, the second waits for its slot
        batcher.set_max_concurrent_batches(2)
        await asyncio.gather(*calls)
        return overlap.most

    assert asyncio.run(scenario()) == 2


class Picky:
    """A batch function that doubles its items, raising for the whole batch when any item is negative."""

    def __init__(self) -> None:
        self.calls: list[list[int]] = []

    def __call__(self, items: Sequence[int]) -> list[int]:
        self.calls.append(list(items))
        bad = [item for item in items if item < 0]
        if bad:
            raise ValueError(f"bad item {bad[0]}")
        return [item * 2 for item in items]


async def _one_batch(function: Callable[[Sequence[int]], list[int]], items: list[int]) -> list[int | BaseException]:
    """The outcome of each item, sent as one full batch."""
    batcher: Batcher[int, int] = Batcher(function, max_batch_size=len(items), batch_wait_timeout_s=10)
    return await asyncio.gather(*(batcher(item) for item in items), return_exceptions=True)


def test_an_item_that_raises_fails_alone_and_the_rest_is_answered() -> None:
    picky = Picky()
    items = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, -13]
    outcomes = asyncio.run(_one_batch(picky, items))
    assert outcomes[:12] == [item * 2 for item in items[:12]]
    assert isinstance(outcomes[12], ValueError) and str(outcomes[12]) == "bad item -13"
    # Bisection: each half that passes is answered; the half beside it is known to fail, so it is split without
    # being called whole. 5 calls, against 1 + 13 one by one; every good item is computed once after the first.
    assert picky.calls[1:] == [[1, 2, 3, 4, 5, 6], [7, 8, 9], [10, 11], [12]]


def test_each_of_two_bad_items_gets_its_own_error() -> None:
    outcomes = asyncio.run(_one_batch(Picky(), [-1, 2, 3, 4, 5, -6, 7]))
    assert [str(outcome) for outcome in outcomes] == ["bad item -1", "4", "6", "8", "10", "bad item -6", "14"]


def test_items_the_function_names_fail_and_the_rest_is_called_once_more() -> None:
    calls: list[list[int]] = []

    def naming(items: Sequence[int]) -> list[int]:
        calls.append(list(items))
        refused = {index: ValueError(f"refused {item}") for index, item in enumerate(items) if item < 0}
        if refused:
            raise ItemErrors(refused)
        return [item * 2 for item in items]

    outcomes = asyncio.run(_one_batch(naming, [1, -2, 3, -4]))
    assert [str(outcome) for outcome in outcomes] == ["2", "refused -2", "6", "refused -4"]
    assert calls == [[1, -2, 3, -4], [1, 3]]


def test_a_model_that_fails_every_item_fails_each_with_its_error() -> None:
    calls: list[list[int]] = []

    def broken(items: Sequence[int]) -> list[int]:
        calls.append(list(items))
        raise RuntimeError("model broken")

    outcomes = asyncio.run(_one_batch(broken, [1, 2, 3, 4]))
    assert all(isinstance(outcome, RuntimeError) for outcome in outcomes)
    assert len(calls) == 2 * 4 - 1


def test_queued_counts_the_items_waiting_for_a_batch() -> None:
    async def scenario() -> list[int]:
        recorder = Recorder(hold_first=True)
        batcher: Batcher[int, int] = Batcher(recorder, max_batch_size=8, batch_wait_timeout_s=0)
        first = asyncio.ensure_future(batcher(0))
        await _started(recorder)
        rest = [asyncio.ensure_future(batcher(i)) for i in (1, 2)]
        await asyncio.sleep(0.01)
        waiting = batcher.queued  # 1 and 2, behind the running batch
        recorder.release.set()
        await asyncio.gather(first, *rest)
        return [waiting, batcher.queued]

    assert asyncio.run(scenario()) == [2, 0]
