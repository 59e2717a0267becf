"""What the peers of `nox -s bench` need to answer as the served app does, and how each is configured.

Standard library only: BentoML's virtualenv imports it too. The bench hands ModelSettings to each server in the
environment ($BENCH_ZERO_SHOT) and records the peers' settings in its report.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

SETTINGS_ENV = "BENCH_ZERO_SHOT"

# benchmarks/tuned_fastapi.py, as `nox -s bench -- --tune-fastapi --repetitions 3 --duration-s 12` chose them on
# 2026-12-04 (reports/bench/tuning-20261204T205118.json; median req/s at 16 clients): 2 workers 784 vs 1 worker
# 521; 1 ONNX thread 885 vs 2 threads 519; batch 32 882, 8 867, 16 646; wait 2 ms 747, 5 ms 688, 0 ms 607. With 2
# workers the rate is bimodal (about 880 or 620 req/s): the kernel spreads the 16 keep-alive connections over the
# two processes unevenly at times, and then one of them is the bottleneck at 1 core. Each can be overridden in the
# service's environment under its name; UVICORN_WORKERS goes to uvicorn's --workers.
TUNED_FASTAPI: dict[str, int | float] = {
    "UVICORN_WORKERS": 2,  # processes, each with its own model, batcher and worker thread
    "TUNED_THREADS": 1,  # ONNX Runtime intra-op threads of the worker thread's model calls
    "TUNED_MAX_BATCH_SIZE": 32,  # most requests in one model call
    "TUNED_MAX_WAIT_MS": 2,  # longest the oldest request of a batch that is not full waits for more
}

# benchmarks/bentoml_service.py, as BentoML's documentation recommends for CPU workloads (that module says why).
BENTOML: dict[str, Any] = {
    "encoder_workers": "cpu_count",  # @bentoml.service(workers=...) of the model service: one process per core
    "ingress_workers": 1,  # BentoML's default for the service that takes the HTTP requests
    "onnx_threads": 1,  # per encoder process: workers x threads = cores
    # The dispatcher's ceiling on a batch: the raw model's best measured batch, and 64 clients over 2 workers.
    "max_batch_size": 32,
    # BentoML answers 503 to a request it predicts cannot be answered within this; far above any latency of the
    # bench (64 closed-loop clients at a few hundred requests/s wait ~0.2 s), so that it batches and never sheds.
    "max_latency_ms": 2000,
    # Since 1.4.31 the ingress's client to the encoder replaces its connection pool every 100 requests (and 300 s)
    # and closes the old one under requests still in flight: about one request in ten failed here at 16 clients
    # ("Server disconnected", BentoML issue #5540). The encoder's `runner_connection` setting lifts the limits.
    "runner_connection": {"max_requests": 2**31 - 1, "max_age": 1e9},
}


@dataclass(frozen=True)
class ModelSettings:
    """The int8 artifact and the served app's scoring defaults (serve_apps.zero_shot.app.ZeroShotArgs)."""

    model_path: str
    hypothesis_template: str
    temperature: float
    multi_label_threshold: float

    @classmethod
    def served_defaults(cls, model_path: str) -> ModelSettings:
        """`model_path` with the served app's own scoring defaults (imported here: the peers' venvs lack Ray)."""
        from serve_apps.zero_shot.app import ZeroShotArgs

        fields = ZeroShotArgs.model_fields
        return cls(
            model_path=model_path,
            hypothesis_template=fields["hypothesis_template"].default,
            temperature=fields["temperature"].default,
            multi_label_threshold=fields["multi_label_threshold"].default,
        )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> ModelSettings:
        """The settings the bench put into $BENCH_ZERO_SHOT."""
        return cls(**json.loads(environ[SETTINGS_ENV]))

    def env(self) -> dict[str, str]:
        """The environment variable that carries these settings to a server."""
        return {SETTINGS_ENV: json.dumps(asdict(self))}
