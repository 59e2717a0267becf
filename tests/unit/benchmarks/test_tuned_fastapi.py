"""The hand-tuned FastAPI peer: its micro-batcher takes what queued while the worker thread was busy, and the
service answers the served app's request with the served app's response."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from benchmarks import tuned_fastapi
from benchmarks.peer_config import TUNED_FASTAPI, ModelSettings
from benchmarks.tuned_fastapi import MicroBatcher
from serve_apps.zero_shot.app import hypotheses
from serve_apps.zero_shot.model import Query, Scoring, ZeroShotModel


class Recorder:
    """A batch function that doubles its items, records each batch and its thread, and can be held."""

    def __init__(self, hold_first: bool = False) -> None:
        self.batches: list[list[int]] = []
        self.threads: set[int] = set()
        self.running = 0
        self.most_running = 0
        self.release = threading.Event()
        self.started = threading.Event()
        if not hold_first:
            self.release.set()

    def __call__(self, items: Sequence[int]) -> list[int]:
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        self.batches.append(list(items))
        self.threads.add(threading.get_ident())
        self.started.set()
        self.release.wait(5)
        if -1 in items:
            self.running -= 1
            raise ValueError("refused")
        self.running -= 1
        return [item * 2 for item in items]


async def _started(recorder: Recorder) -> None:
    await asyncio.to_thread(recorder.started.wait, 5)


def test_requests_queued_while_the_thread_is_busy_form_the_next_batch() -> None:
    async def scenario() -> list[int]:
        recorder = Recorder(hold_first=True)
        batcher: MicroBatcher[int, int] = MicroBatcher(recorder, max_batch_size=32, max_wait_s=0)
        first = asyncio.ensure_future(batcher(1))
        await _started(recorder)
        rest = [asyncio.ensure_future(batcher(i)) for i in range(2, 7)]
        await asyncio.sleep(0.01)
        recorder.release.set()
        results = await asyncio.gather(first, *rest)
        await batcher.close()
        assert recorder.batches == [[1], [2, 3, 4, 5, 6]]
        return results

    assert asyncio.run(scenario()) == [2, 4, 6, 8, 10, 12]


def test_max_batch_size_splits_the_queue() -> None:
    async def scenario() -> list[list[int]]:
        recorder = Recorder(hold_first=True)
        batcher: MicroBatcher[int, int] = MicroBatcher(recorder, max_batch_size=2, max_wait_s=0)
        first = asyncio.ensure_future(batcher(0))
        await _started(recorder)
        rest = [asyncio.ensure_future(batcher(i)) for i in range(1, 6)]
        await asyncio.sleep(0.01)
        recorder.release.set()
        await asyncio.gather(first, *rest)
        await batcher.close()
        return recorder.batches

    assert asyncio.run(scenario()) == [[0], [1, 2], [3, 4], [5]]


def test_the_wait_lets_later_requests_join_the_oldest() -> None:
    async def scenario() -> list[list[int]]:
        recorder = Recorder()
        batcher: MicroBatcher[int, int] = MicroBatcher(recorder, max_batch_size=8, max_wait_s=0.2)
        first = asyncio.ensure_future(batcher(1))
        await asyncio.sleep(0.02)
        await asyncio.gather(first, batcher(2))
        await batcher.close()
        return recorder.batches

    assert asyncio.run(scenario()) == [[1, 2]]


def test_a_lone_request_waits_no_longer_than_the_wait() -> None:
    async def scenario() -> float:
        batcher: MicroBatcher[int, int] = MicroBatcher(Recorder(), max_batch_size=8, max_wait_s=0.05)
        started = time.monotonic()
        assert await batcher(3) == 6
        elapsed = time.monotonic() - started
        await batcher.close()
        return elapsed

    assert 0.045 <= asyncio.run(scenario()) < 1


def test_a_full_batch_does_not_wait() -> None:
    async def scenario() -> float:
        batcher: MicroBatcher[int, int] = MicroBatcher(Recorder(), max_batch_size=2, max_wait_s=10)
        started = time.monotonic()
        await asyncio.gather(batcher(1), batcher(2))
        elapsed = time.monotonic() - started
        await batcher.close()
        return elapsed

    assert asyncio.run(scenario()) < 5


def test_one_batch_at_a_time_in_one_thread() -> None:
    async def scenario() -> Recorder:
        recorder = Recorder()
        batcher: MicroBatcher[int, int] = MicroBatcher(recorder, max_batch_size=2, max_wait_s=0)
        await asyncio.gather(*(batcher(i) for i in range(20)))
        await batcher.close()
        return recorder

    recorder = asyncio.run(scenario())
    assert recorder.most_running == 1
    assert len(recorder.threads) == 1
    assert threading.get_ident() not in recorder.threads  # the event loop's thread stays free


def test_an_error_fails_its_batch_only() -> None:
    async def scenario() -> tuple[list[object], list[int]]:
        recorder = Recorder(hold_first=True)
        batcher: MicroBatcher[int, int] = MicroBatcher(recorder, max_batch_size=8, max_wait_s=0)
        first = asyncio.ensure_future(batcher(1))
        await _started(recorder)
        failing = [asyncio.ensure_future(batcher(i)) for i in (-1, 5)]
        await asyncio.sleep(0.01)
        recorder.release.set()
        outcomes = await asyncio.gather(first, *failing, return_exceptions=True)
        after = await asyncio.gather(batcher(7))
        await batcher.close()
        return outcomes, after

    outcomes, after = asyncio.run(scenario())
    assert outcomes[0] == 2
    assert [type(o) for o in outcomes[1:]] == [ValueError, ValueError]
    assert after == [14]


def test_a_request_whose_client_left_is_not_computed() -> None:
    async def scenario() -> list[list[int]]:
        recorder = Recorder(hold_first=True)
        batcher: MicroBatcher[int, int] = MicroBatcher(recorder, max_batch_size=8, max_wait_s=0)
        first = asyncio.ensure_future(batcher(1))
        await _started(recorder)
        gone = asyncio.ensure_future(batcher(2))
        kept = asyncio.ensure_future(batcher(3))
        await asyncio.sleep(0.01)
        gone.cancel()
        recorder.release.set()
        await asyncio.gather(first, kept)
        await batcher.close()
        return recorder.batches

    assert asyncio.run(scenario()) == [[1], [3]]


def test_settings_come_from_the_environment_over_the_tuned_defaults() -> None:
    tuned = tuned_fastapi.tuning({"TUNED_MAX_BATCH_SIZE": "4"})
    assert tuned["TUNED_MAX_BATCH_SIZE"] == 4
    assert tuned["TUNED_THREADS"] == TUNED_FASTAPI["TUNED_THREADS"]


def test_the_service_answers_the_served_apps_request_as_the_model_does(
    built_models: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = ModelSettings.served_defaults(str(built_models["zero_shot"]))
    for name, value in settings.env().items():
        monkeypatch.setenv(name, value)
    body = {"text": "The striker scored twice in the second half.", "labels": ["sports", "politics", "cooking"]}
    with TestClient(tuned_fastapi.app) as client:
        assert client.get("/healthz").status_code == 200
        answer = client.post("/predict", json=body)
        refused = client.post("/predict", json={"text": " ", "labels": ["sports"]})

    model = ZeroShotModel(
        Path(settings.model_path), Scoring(settings.temperature, settings.multi_label_threshold), num_threads=1
    )
    labels = tuple(body["labels"])
    (expected,) = model.classify(
        [Query(body["text"], labels, hypotheses(settings.hypothesis_template, labels), multi_label=False)]
    )
    assert answer.status_code == 200
    assert answer.json() == {
        "sequence": body["text"],
        "labels": expected.labels,
        "scores": pytest.approx(expected.scores),
    }
    assert refused.status_code == 422  # the served app's request model: blank text refused
