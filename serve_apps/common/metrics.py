"""The serving metrics, exported through Ray's metrics agent (Prometheus).

Outside a Ray worker (unit tests, the build) `ray.util.metrics` records nowhere, so the same code runs there.
Ray registers metrics by name, so there is one `ServingMetrics` per process, made on first use.

Ray sends tag values through its C++ core as ASCII: a value with any other character raises UnicodeEncodeError. A
predicted label is client data in any language, so it becomes a tag through `tag_value()` (see there); the
prediction log keeps the label itself.
"""

import collections
import functools
import hashlib
import threading
from collections.abc import Iterable

from ray.util.metrics import Counter, Gauge, Histogram

# Milliseconds; spans a small ONNX model (~1 ms) to a batched transformer under load (~1 s).
LATENCY_BOUNDARIES_MS = [1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0]
# Milliseconds to a generation's first token: from an encoder pass and one decoder step on an idle replica to a whole
# batch's generation, when a request waits for the next batch, or several when it queues behind them.
TTFT_BOUNDARIES_MS = [5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0, 10000.0, 30000.0, 60000.0]
# Milliseconds between two tokens of one generation: a decoder step of the batch it runs in.
INTER_TOKEN_BOUNDARIES_MS = [1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0]
# Zero-shot labels come from clients: past this many distinct values per process they are counted as
# OTHER_LABEL, so a client cannot blow up the number of Prometheus series.
MAX_LABEL_VALUES = 100
OTHER_LABEL = "__other__"
# Longest tag value; a longer label is counted under its digest.
MAX_TAG_CHARS = 64
DIGEST_PREFIX = "h:"
DIGEST_HEX_CHARS = 12


def tag_value(text: str) -> str:
    """`text` as a metric tag value: printable ASCII, at most MAX_TAG_CHARS long, one value per text.

    The value is Python's `unicode_escape` of the text: printable ASCII stays as it is (`sports`), anything else is
    escaped (`⚽ sports` -> `\\u26bd sports`, a control character -> `\\x00`, a backslash -> `\\\\`, a lone
    surrogate -> `\\ud800`); being reversible, it keeps different texts apart. When that is longer than
    MAX_TAG_CHARS, or starts with DIGEST_PREFIX (so no label can pose as a digest), the value is DIGEST_PREFIX and
    the first DIGEST_HEX_CHARS hex digits of the SHA-256 of the text's UTF-8 (surrogates passed through):
    `h:3f1c0a9b2e7d`.
    """
    escaped = text.encode("unicode_escape").decode("ascii")
    if len(escaped) <= MAX_TAG_CHARS and not escaped.startswith(DIGEST_PREFIX):
        return escaped
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    return DIGEST_PREFIX + digest[:DIGEST_HEX_CHARS]


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
            description=(
                "Prediction-log rows dropped: the buffer was full (the oldest go first), or the database refused "
                "the row on every attempt while it took other rows."
            ),
            tag_keys=("app",),
        )
        self._log_write_failures = Counter(
            "serving_prediction_log_write_failures",
            description="Failed attempts to write a batch of prediction-log rows; the batch is retried.",
            tag_keys=("app",),
        )
        self._log_writer_restarts = Counter(
            "serving_prediction_log_writer_restarts",
            description="Prediction-log writer threads started again after an unexpected error stopped them.",
            tag_keys=("app",),
        )
        self._generation_ttft_ms = Histogram(
            "serving_generation_ttft_ms",
            description="Time from parsed request to the first generated token, queueing included, in milliseconds.",
            boundaries=TTFT_BOUNDARIES_MS,
            tag_keys=("app",),
        )
        self._generation_inter_token_ms = Histogram(
            "serving_generation_inter_token_ms",
            description="Time between two consecutive tokens of one generation, in milliseconds.",
            boundaries=INTER_TOKEN_BOUNDARIES_MS,
            tag_keys=("app",),
        )
        self._generation_tokens = Counter(
            "serving_generation_tokens",
            description="Tokens generated, every request together; its rate is the app's tokens per second.",
            tag_keys=("app",),
        )
        self._generation_queue_depth = Gauge(
            "serving_generation_queue_depth",
            description="Generation requests in the replica waiting for a batch to start them.",
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
        """Count rows dropped: from a full buffer, or refused by the database."""
        self._log_dropped_rows.inc(rows, tags={"app": app})

    def log_write_failed(self, app: str) -> None:
        """Count one failed batch write."""
        self._log_write_failures.inc(1, tags={"app": app})

    def log_writer_restarted(self, app: str) -> None:
        """Count one restart of the writer thread."""
        self._log_writer_restarts.inc(1, tags={"app": app})

    def first_tokens(self, app: str, ttft_ms: Iterable[float]) -> None:
        """Observe the time to first token of generations that just produced their first token."""
        tags = {"app": app}
        for value in ttft_ms:
            self._generation_ttft_ms.observe(value, tags=tags)

    def tokens_generated(self, app: str, tokens: int, inter_token_ms: Iterable[float]) -> None:
        """Count `tokens` new tokens and observe the gaps before those that were not a generation's first."""
        tags = {"app": app}
        if tokens:
            self._generation_tokens.inc(tokens, tags=tags)
        for value in inter_token_ms:
            self._generation_inter_token_ms.observe(value, tags=tags)

    def generation_queue(self, app: str, requests: int) -> None:
        """Set the number of generation requests waiting for a batch."""
        self._generation_queue_depth.set(requests, tags={"app": app})

    def label_tag(self, label: str) -> str:
        """The tag value that counts `label`: its tag_value(), or OTHER_LABEL once MAX_LABEL_VALUES others were seen."""
        tag = tag_value(label)
        with self._lock:
            if tag in self._label_values:
                return tag
            if len(self._label_values) < MAX_LABEL_VALUES:
                self._label_values.add(tag)
                return tag
        return OTHER_LABEL


@functools.cache
def serving_metrics() -> ServingMetrics:
    """The process-wide metric handles."""
    return ServingMetrics()
