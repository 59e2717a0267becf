"""The serving metrics, exported through Ray's metrics agent (Prometheus).

Outside a Ray worker (unit tests, the build) `ray.util.metrics` records nowhere, so the same code runs there.
Ray registers metrics by name, so there is one `ServingMetrics` per process, made on first use.
"""

import collections
import functools
import threading
from collections.abc import Iterable

from ray.util.metrics import Counter, Gauge, Histogram

# Milliseconds; spans a small ONNX model (~1 ms) to a batched transformer under load (~1 s).
LATENCY_BOUNDARIES_MS = [1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0]
# Zero-shot labels come from clients: past this many distinct values per process they are counted as
# OTHER_LABEL, so a client cannot blow up the number of Prometheus series.
MAX_LABEL_VALUES = 100
OTHER_LABEL = "__other__"


class ServingMetrics:
    """Metric handles, each tagged with the Ray Serve application name."""

    def __init__(self) -> None:
        self._predictions = Counter(
            "serving_predictions",
            description="Predictions answered, per predicted label or class.",
            tag_keys=("app", "label"),
        )
        self._latency_ms = Histogram(
            "serving_prediction_latency_ms",
            description="Time from parsed request to ready response inside the replica, in milliseconds.",
            boundaries=LATENCY_BOUNDARIES_MS,
            tag_keys=("app",),
        )
        self._log_buffer_rows = Gauge(
            "serving_prediction_log_buffer_rows",
            description="Prediction-log rows waiting in the replica's buffer for the database.",
            tag_keys=("app",),
        )
        self._log_dropped_rows = Counter(
            "serving_prediction_log_dropped_rows",
            description="Prediction-log rows dropped because the buffer was full (the oldest go first).",
            tag_keys=("app",),
        )
        self._log_write_failures = Counter(
            "serving_prediction_log_write_failures",
            description="Failed attempts to write a batch of prediction-log rows; the batch is retried.",
            tag_keys=("app",),
        )
        self._label_values: set[str] = set()
        self._lock = threading.Lock()

    def predictions(self, app: str, labels: Iterable[Iterable[str]], latencies_ms: Iterable[float]) -> None:
        """Count answered requests: one count per predicted label of each, one latency observation each."""
        counts = collections.Counter(self.label_tag(label) for predicted in labels for label in predicted)
        for label, count in counts.items():
            self._predictions.inc(count, tags={"app": app, "label": label})
        tags = {"app": app}
        for latency_ms in latencies_ms:
            self._latency_ms.observe(latency_ms, tags=tags)

    def log_buffer(self, app: str, rows: int) -> None:
        """Set the number of rows waiting for the database."""
        self._log_buffer_rows.set(rows, tags={"app": app})

    def log_dropped(self, app: str, rows: int) -> None:
        """Count rows dropped from a full buffer."""
        self._log_dropped_rows.inc(rows, tags={"app": app})

    def log_write_failed(self, app: str) -> None:
        """Count one failed batch write."""
        self._log_write_failures.inc(1, tags={"app": app})

    def label_tag(self, label: str) -> str:
        """The tag value that counts `label`: itself, or OTHER_LABEL once MAX_LABEL_VALUES others were seen."""
        with self._lock:
            if label in self._label_values:
                return label
            if len(self._label_values) < MAX_LABEL_VALUES:
                self._label_values.add(label)
                return label
        return OTHER_LABEL


@functools.cache
def serving_metrics() -> ServingMetrics:
    """The process-wide metric handles."""
    return ServingMetrics()
