"""The raw limit: the zero-shot model called in-process, no server, no HTTP: sentences per second at a batch size.

The same ZeroShotModel class the replica loads, on the benchmark's sentences, with every label hypothesis cached
(as in a warmed replica), so what is timed is tokenising and encoding the texts plus scoring.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks.loadgen import percentile
from benchmarks.workload import request_bodies
from serve_apps.zero_shot.app import ZeroShotArgs, hypotheses
from serve_apps.zero_shot.model import Query, Scoring, ZeroShotModel


@dataclass(frozen=True)
class RawResult:
    """One model variant at one batch size: throughput, batch latency and the cores the loop kept busy."""

    variant: str
    batch_size: int
    threads: int
    sentences_per_s: float
    batch_p50_ms: float
    batch_p95_ms: float
    cpu_cores: float


def queries() -> list[Query]:
    """The benchmark's requests as model queries (default hypothesis template)."""
    template = ZeroShotArgs.model_fields["hypothesis_template"].default
    return [
        Query(
            text=b["text"], labels=tuple(b["labels"]), hypotheses=hypotheses(template, b["labels"]), multi_label=False
        )
        for b in request_bodies()
    ]


def load_model(path: Path, threads: int) -> ZeroShotModel:
    """The model as the replica builds it (default scoring), with `threads` intra-op threads."""
    fields = ZeroShotArgs.model_fields
    scoring = Scoring(
        temperature=fields["temperature"].default, multi_label_threshold=fields["multi_label_threshold"].default
    )
    return ZeroShotModel(path, scoring, num_threads=threads)


def measure(model: ZeroShotModel, variant: str, threads: int, batch_size: int, seconds: float) -> RawResult:
    """Classify consecutive batches of `batch_size` sentences for `seconds` (after one warm-up batch)."""
    pool = queries()
    batches = [[pool[(start + i) % len(pool)] for i in range(batch_size)] for start in range(0, len(pool), batch_size)]
    model.classify(batches[0])  # warm-up: fills the hypothesis cache, lets ONNX Runtime allocate its buffers
    latencies: list[float] = []
    started, cpu_started = time.perf_counter(), time.process_time()
    while time.perf_counter() - started < seconds:
        before = time.perf_counter()
        model.classify(batches[len(latencies) % len(batches)])
        latencies.append(time.perf_counter() - before)
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    latencies.sort()
    return RawResult(
        variant=variant,
        batch_size=batch_size,
        threads=threads,
        sentences_per_s=len(latencies) * batch_size / wall,
        batch_p50_ms=percentile(latencies, 50) * 1000,
        batch_p95_ms=percentile(latencies, 95) * 1000,
        cpu_cores=cpu / wall,
    )
