"""The prediction log: one row per answered request, written to SQL off the request path.

`record()` only appends what it was given to a bounded in-memory buffer; the writer thread turns it into a row
(JSON, digest, prediction id), counts it in the metrics and flushes every `flush_interval_s` (or as soon as
`batch_rows` are waiting) in one transaction per batch. That work stays off the request path: it was about a
tenth of the replica's event loop under load (`nox -s bench`). While the database is unreachable the
rows stay in the buffer and the batch is retried with exponential backoff. A full buffer drops its OLDEST
rows: the newest rows describe the model as it serves now, and the rows that waited longest are the ones an
outage has made stale. Every dropped row is counted (metric and `stats()`) and logged.

A batch whose commit succeeded but whose acknowledgement was lost is retried as is; rows are keyed by a
prediction id made once per row, before its first write attempt, and inserted with insert-ignore semantics, so
a retry never duplicates.

No row can stop the writer. A request that cannot be made into a row (not JSON) costs that row only. When the
database refuses a batch but still answers, the batch is written in halves around the rows it refuses; such a row is
tried MAX_ROW_ATTEMPTS times, then dropped and counted like a row of a full buffer. Labels and texts are stored as
sent, in any script (utf8mb4 with a binary collation in MySQL, so /stats counts each label apart); only a lone
surrogate, which no UTF-8 column can hold, is stored as U+FFFD. Should the thread die all the same (a bug), the
next record(), flush() or health check starts it again, up to MAX_WRITER_RESTARTS times in
WRITER_RESTART_WINDOW_S; past that the log reports itself broken (`writer_problem()`), and the replica's health
check fails with that message.
"""

import hashlib
import json
import logging
import math
import os
import re
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import cache
from typing import Any

from pydantic import BaseModel
from sqlalchemy import (
    CHAR,
    Column,
    DateTime,
    Engine,
    Float,
    Index,
    Insert,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
    func,
    make_url,
    select,
)
from sqlalchemy.dialects import mysql, sqlite
from sqlalchemy.exc import SQLAlchemyError

from serve_apps.common.artifact import default_cache_dir
from serve_apps.common.metrics import serving_metrics
from serve_apps.common.schemas import LatencyPercentiles, PredictionLogSettings, PredictionStats

logger = logging.getLogger(__name__)

DB_URL_ENV = "PREDICTION_DB_URL"
INPUT_EXCERPT_CHARS = 512
REQUEST_ID_CHARS = 128
LABEL_CHARS = 255
_RETRY_FIRST_S = 0.1
# Attempts at a row the database refuses while it takes others (a deadlock or a lock timeout passes; a value it cannot
# store does not).
MAX_ROW_ATTEMPTS = 3
# A writer that keeps dying is a bug, not bad luck: past this many restarts in the window the log reports itself
# broken and the replica's health check fails, instead of the writer spinning.
MAX_WRITER_RESTARTS = 5
WRITER_RESTART_WINDOW_S = 60.0
_MS_MASK = (1 << 48) - 1
_RAND_B_MASK = (1 << 62) - 1
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
# A full buffer drops rows on every request; one warning per interval (with the running total) is enough.
_DROP_WARNING_EVERY_S = 10.0

metadata = MetaData()
# Requests and labels are in any script: utf8mb4 holds every character (utf8/utf8mb3 stops short of emoji), and the
# binary collation keeps labels apart that a *_ci collation folds together ("Sports" and "sports", and every emoji
# in utf8mb4_general_ci and utf8mb4_unicode_ci), so /stats counts labels as they were sent.
_MYSQL_TEXT = {"mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_bin"}

predictions = Table(
    "prediction_log",
    metadata,
    Column("id", CHAR(32), primary_key=True, comment="Prediction id made by the replica (UUIDv7, hex)."),
    Column("request_id", String(REQUEST_ID_CHARS), nullable=False, comment="X-Request-ID as Ray Serve saw it."),
    Column("app", String(64), nullable=False),
    Column("model_sha256", CHAR(64), nullable=False),
    Column("input_sha256", CHAR(64), nullable=False, comment="SHA-256 of the canonical JSON of the request body."),
    Column("input_excerpt", String(INPUT_EXCERPT_CHARS), nullable=False),
    Column("output_json", Text().with_variant(mysql.MEDIUMTEXT(), "mysql"), nullable=False),
    Column("latency_ms", Float, nullable=False),
    Column("created_at", DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql"), nullable=False, comment="UTC"),
    Index("ix_prediction_log_app_latency", "app", "latency_ms"),
    Index("ix_prediction_log_request_id", "request_id"),
    **_MYSQL_TEXT,
)

# One row per predicted label of a request (an iris request of 3 rows predicts 3 classes), so /stats counts
# labels with one GROUP BY instead of parsing output JSON.
prediction_labels = Table(
    "prediction_log_labels",
    metadata,
    Column("prediction_id", CHAR(32), primary_key=True),
    Column("position", Integer, primary_key=True, autoincrement=False),
    Column("app", String(64), nullable=False),
    Column("label", String(LABEL_CHARS), nullable=False),
    Index("ix_prediction_log_labels_app_label", "app", "label"),
    **_MYSQL_TEXT,
)


@dataclass(frozen=True)
class PredictionRow:
    """One logged request, ready to insert."""

    id: str
    request_id: str
    app: str
    model_sha256: str
    input_sha256: str
    input_excerpt: str
    output_json: str
    latency_ms: float
    created_at: datetime
    labels: tuple[str, ...]
    failed_attempts: int = 0  # writes of this row alone the database refused while it answered


@dataclass(frozen=True)
class Answered:
    """One answered request as record() keeps it; the writer thread makes its PredictionRow."""

    request_id: str
    model_sha256: str
    request: Mapping[str, Any] | BaseModel
    response: Mapping[str, Any] | BaseModel
    labels: Sequence[str]
    latency_ms: float
    answered_at: float  # time.time()


def _json_value(value: Mapping[str, Any] | BaseModel) -> Any:
    return value.model_dump(mode="json", by_alias=True) if isinstance(value, BaseModel) else value


def prediction_row(app: str, answered: Answered) -> PredictionRow:
    """The row of one answered request, under a new prediction id. Raises TypeError or ValueError when the request
    or response is not JSON."""
    input_json = canonical_json(_json_value(answered.request))
    return PredictionRow(
        id=prediction_id(),
        request_id=storable(answered.request_id[:REQUEST_ID_CHARS]),
        app=app,
        model_sha256=answered.model_sha256,
        # The digest of the text as given, lone surrogates included (as their 3-byte forms).
        input_sha256=hashlib.sha256(input_json.encode("utf-8", "surrogatepass")).hexdigest(),
        input_excerpt=storable(input_json[:INPUT_EXCERPT_CHARS]),
        output_json=storable(canonical_json(_json_value(answered.response))),
        latency_ms=answered.latency_ms,
        created_at=datetime.fromtimestamp(answered.answered_at, UTC).replace(tzinfo=None),
        labels=tuple(storable(label[:LABEL_CHARS]) for label in answered.labels),
    )


def prediction_id() -> str:
    """A new UUIDv7 (RFC 9562) as 32 hex digits: the Unix time in milliseconds, then 74 random bits.

    Time-ordered rather than random (uuid4): each batch's ids land at the end of the primary key's B-tree, and of
    the labels' key that starts with it, instead of on pages all over it. In SQLite that made an insert about 30 %
    cheaper (32 -> 22 µs a row, 30,000 rows in batches of 32, docs/benchmarks.md); in InnoDB, whose rows live in
    the primary key's order, random keys also split pages as the table outgrows the buffer pool.
    """
    random_bits = int.from_bytes(os.urandom(10))
    value = (time.time_ns() // 1_000_000 & _MS_MASK) << 80  # unix_ts_ms, 48 bits
    value |= 0x7 << 76 | (random_bits >> 68) << 64  # version 7, rand_a (12 bits)
    value |= 0b10 << 62 | random_bits & _RAND_B_MASK  # the RFC 4122 variant, rand_b (62 bits)
    return f"{value:032x}"


def storable(text: str) -> str:
    """`text` with each lone surrogate replaced by U+FFFD, everything else unchanged.

    A JSON string may escape half a surrogate pair ("\\ud800"), which Python decodes to a str no UTF-8 encoder, hence
    no database driver, accepts; the row is kept with a replacement character rather than lost.
    """
    return _LONE_SURROGATE.sub("\ufffd", text)


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no whitespace: equal inputs give equal text, hence equal digests."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def default_db_url() -> str:
    """$PREDICTION_DB_URL, else a SQLite file in the model cache directory, which every replica of the node shares.

    Local runners set the variable to a file of their own: `nox -s serve` one per checkout
    (localrun.serve.LOCAL_PREDICTION_LOG), the load tests one per app and run.
    """
    configured = os.environ.get(DB_URL_ENV)
    if configured:
        return configured
    cache = default_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{cache / 'predictions.sqlite'}"


def make_engine(db_url: str, connect_timeout_s: int) -> Engine:
    """An engine for MySQL (mysql+pymysql://) or SQLite; other databases are refused."""
    backend = make_url(db_url).get_backend_name()
    if backend == "mysql":
        timeouts = {name: connect_timeout_s for name in ("connect_timeout", "read_timeout", "write_timeout")}
        # utf8mb4 whatever the URL says: the tables are utf8mb4, and a utf8 (utf8mb3) connection refuses emoji.
        connect_args = {**timeouts, "charset": "utf8mb4"}
        return create_engine(db_url, pool_pre_ping=True, pool_recycle=3600, connect_args=connect_args)
    if backend == "sqlite":
        engine = create_engine(db_url)
        event.listen(engine, "connect", _write_ahead_log)
        return engine
    raise ValueError(f"{DB_URL_ENV}: got a {backend!r} URL; the prediction log supports mysql+pymysql:// and sqlite://")


def _write_ahead_log(connection: Any, _record: Any) -> None:
    # SQLite's default journal syncs the disk twice per commit: about half the writer thread's time in a local run
    # (`nox -s bench`, py-spy). With a write-ahead log and synchronous=NORMAL a commit syncs nothing; a power cut
    # can lose the last batches, never corrupt the file.
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def create_tables(engine: Engine) -> None:
    """Create the log's tables where missing (another replica may have created them already)."""
    metadata.create_all(engine, checkfirst=True)


# Built once per table and backend: a new statement per batch cost the writer its cache-key computation each time.
@cache
def _insert_ignoring_duplicates(table: Table, backend: str) -> Insert:
    if backend == "mysql":
        statement = mysql.insert(table)
        first_key = table.primary_key.columns[0]
        # Assigning a key column to itself makes a duplicate a no-op; INSERT IGNORE would also hide other errors.
        return statement.on_duplicate_key_update({first_key.name: first_key})
    return sqlite.insert(table).on_conflict_do_nothing()


# PredictionRow's fields that are columns of prediction_log (its labels go to prediction_log_labels).
# Read field by field: dataclasses.asdict deep-copies every value. That and an INSERT built per batch cost about 20
# of the ~130 µs of writer CPU per row (SQLite and MariaDB alike).
_ROW_COLUMNS = tuple(column.name for column in predictions.columns)


def insert_rows(engine: Engine, rows: Sequence[PredictionRow]) -> None:
    """Insert rows and their labels in one transaction; rows already present (same id) are left as they are."""
    if not rows:
        return
    backend = engine.dialect.name
    labels = [
        {"prediction_id": row.id, "position": position, "app": row.app, "label": label}
        for row in rows
        for position, label in enumerate(row.labels)
    ]
    with engine.begin() as connection:
        connection.execute(
            _insert_ignoring_duplicates(predictions, backend),
            [{name: getattr(row, name) for name in _ROW_COLUMNS} for row in rows],
        )
        if labels:
            connection.execute(_insert_ignoring_duplicates(prediction_labels, backend), labels)


class PredictionLog:
    """Buffers prediction rows and writes them in batches from a background thread."""

    def __init__(self, db_url: str, app: str, settings: PredictionLogSettings) -> None:
        self.app = app
        self._settings = settings
        self._engine = make_engine(db_url, settings.connect_timeout_s)
        self._metrics = serving_metrics()
        # Rows of a batch that failed go back in front as rows: their ids are fixed from the first attempt on.
        self._buffer: deque[Answered | PredictionRow] = deque()
        self._cond = threading.Condition()
        self._in_flight: list[Answered | PredictionRow] = []  # the batch the writer holds
        self._dropped = 0
        self._last_drop_warning = -_DROP_WARNING_EVERY_S
        self._retrying = False
        self._flush_requested = False
        self._closed = False
        self._tables_ready = False
        self._restart_times: deque[float] = deque()
        self._restarts = 0
        self._writer_error: BaseException | None = None
        self._writer_failure: str | None = None
        self._writer = self._start_writer()

    def record(
        self,
        *,
        request_id: str,
        model_sha256: str,
        request: Mapping[str, Any] | BaseModel,
        response: Mapping[str, Any] | BaseModel,
        labels: Sequence[str],
        latency_ms: float,
    ) -> None:
        """Queue one request (JSON-able mappings or pydantic models, not changed afterwards); never blocks on the
        database. It is counted in the metrics when the writer takes it, or when a full buffer drops it."""
        if not self._writer.is_alive():
            self.writer_problem()
        answered = Answered(request_id, model_sha256, request, response, labels, latency_ms, time.time())
        with self._cond:
            self._buffer.append(answered)
            overflow = len(self._buffer) - self._settings.buffer_rows
            dropped = [self._buffer.popleft() for _ in range(max(0, overflow))]
            if dropped:
                self._count_predictions(dropped)
                self._count_dropped(len(dropped))
                self._warn_buffer_full()
            if len(self._buffer) >= self._settings.batch_rows:
                self._cond.notify_all()

    def flush(self, timeout_s: float) -> bool:
        """Write what is buffered now; True when the buffer emptied within `timeout_s`."""
        self.writer_problem()
        with self._cond:
            self._flush_requested = True
            self._cond.notify_all()
            return self._cond.wait_for(lambda: not self._buffer and not self._in_flight, timeout=timeout_s)

    def close(self, timeout_s: float) -> None:
        """Flush, stop the writer, and report rows that could not be written."""
        self.flush(timeout_s)
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._writer.join(timeout_s)
        with self._cond:
            unwritten = len(self._buffer) + len(self._in_flight)
        if unwritten:
            logger.error("prediction log of %s closed with %d rows unwritten", self.app, unwritten)
        self._engine.dispose()

    def writer_problem(self) -> str | None:
        """Why this log cannot write, or None when it can. Starts a writer thread that died again first, unless it
        died MAX_WRITER_RESTARTS times within WRITER_RESTART_WINDOW_S; then the answer says so, from then on."""
        with self._cond:
            if self._closed or self._writer_failure is not None or self._writer.is_alive():
                return self._writer_failure
            now = time.monotonic()
            while self._restart_times and now - self._restart_times[0] > WRITER_RESTART_WINDOW_S:
                self._restart_times.popleft()
            # The class name only: /healthz shows this, and an error message may quote a logged request.
            died_of = type(self._writer_error).__name__
            if len(self._restart_times) >= MAX_WRITER_RESTARTS:
                self._writer_failure = (
                    f"the prediction-log writer thread stopped {MAX_WRITER_RESTARTS + 1} times within "
                    f"{WRITER_RESTART_WINDOW_S:g} s (last: {died_of}) and is not started again"
                )
                logger.error("prediction log of %s: %s", self.app, self._writer_failure)
                return self._writer_failure
            try:
                self._writer = self._start_writer()
            except RuntimeError as error:  # "can't start new thread"
                self._writer_failure = f"the prediction-log writer thread cannot be started again: {error}"
                logger.error("prediction log of %s: %s", self.app, self._writer_failure)
                return self._writer_failure
            self._restart_times.append(now)
            self._restarts += 1
            restarts = self._restarts
        self._metrics.log_writer_restarted(self.app)
        logger.warning("prediction log of %s: writer thread started again (%d so far)", self.app, restarts)
        return None

    @property
    def writer_alive(self) -> bool:
        """Whether the background writer still runs; a replica without it would only fill its buffer."""
        return self._writer.is_alive()

    @property
    def writer_restarts(self) -> int:
        """Times the writer thread was started again since this log started."""
        with self._cond:
            return self._restarts

    @property
    def buffered_rows(self) -> int:
        """Rows not yet committed, including a batch being written."""
        with self._cond:
            return len(self._buffer) + len(self._in_flight)

    @property
    def dropped_rows(self) -> int:
        """Rows dropped since this log started: from a full buffer, or refused by the database."""
        with self._cond:
            return self._dropped

    def stats(self) -> PredictionStats:
        """Counts per label and latency percentiles of this app's logged rows. Raises SQLAlchemyError."""
        self._ensure_tables()
        of_app = predictions.c.app == self.app
        with self._engine.connect() as connection:
            total = connection.scalar(select(func.count()).select_from(predictions).where(of_app)) or 0
            counts = connection.execute(
                select(prediction_labels.c.label, func.count())
                .where(prediction_labels.c.app == self.app)
                .group_by(prediction_labels.c.label)
                .order_by(prediction_labels.c.label)
            ).all()
            by_latency = select(predictions.c.latency_ms).where(of_app).order_by(predictions.c.latency_ms).limit(1)

            def nearest_rank(percent: int) -> float | None:
                if not total:
                    return None
                return connection.scalar(by_latency.offset(math.ceil(percent / 100 * total) - 1))

            latency = LatencyPercentiles(p50=nearest_rank(50), p95=nearest_rank(95), p99=nearest_rank(99))
        return PredictionStats(
            app=self.app,
            predictions=total,
            counts={label: count for label, count in counts},
            latency_ms=latency,
            buffered_rows=self.buffered_rows,
            dropped_rows=self.dropped_rows,
        )

    def _start_writer(self) -> threading.Thread:
        writer = threading.Thread(target=self._run_writer, name=f"prediction-log-{self.app}", daemon=True)
        writer.start()
        return writer

    def _run_writer(self) -> None:
        try:
            self._run()
        except BaseException as error:
            # Whatever stopped the thread is logged, and writer_problem() starts another. The batch it held is
            # dropped, not requeued: it may be what stopped it, and would stop every writer started after it.
            logger.exception("prediction log of %s: the writer thread stopped", self.app)
            with self._cond:
                self._writer_error = error
                self._count_dropped(len(self._in_flight))
                self._in_flight = []
                self._cond.notify_all()

    def _count_predictions(self, entries: Sequence[Answered | PredictionRow]) -> None:
        # A PredictionRow is a requeued row of a failed batch: it was counted when the writer first took it.
        answered = [entry for entry in entries if isinstance(entry, Answered)]
        if not answered:
            return
        try:
            self._metrics.predictions(self.app, [a.labels for a in answered], [a.latency_ms for a in answered])
        except Exception:  # a metric is never worth a row: the rows are still written
            logger.exception("prediction log of %s: counting %d predictions failed", self.app, len(answered))

    def _count_dropped(self, rows: int) -> None:
        if rows <= 0:
            return
        self._dropped += rows
        self._metrics.log_dropped(self.app, rows)

    def _warn_buffer_full(self) -> None:
        now = time.monotonic()
        if now - self._last_drop_warning >= _DROP_WARNING_EVERY_S:
            self._last_drop_warning = now
            logger.warning(
                "prediction log of %s: buffer full (%d rows), dropping the oldest rows; %d dropped so far",
                self.app,
                self._settings.buffer_rows,
                self._dropped,
            )

    def _wake_writer(self) -> bool:
        if self._closed or self._flush_requested:
            return True
        # While retrying, only the backoff timeout (or flush/close) wakes the writer, so a full buffer
        # does not turn an outage into a busy loop.
        return not self._retrying and len(self._buffer) >= self._settings.batch_rows

    def _run(self) -> None:
        pause_s = self._settings.flush_interval_s
        while True:
            with self._cond:
                self._cond.wait_for(self._wake_writer, timeout=pause_s)
                self._flush_requested = False
                if not self._buffer:
                    if self._closed:
                        return
                    pause_s = self._settings.flush_interval_s
                    continue
                taken = [self._buffer.popleft() for _ in range(min(len(self._buffer), self._settings.batch_rows))]
                self._in_flight = taken
                taken_at = time.monotonic()
            self._count_predictions(taken)
            batch = self._rows(taken)
            unwritten, refused = self._write(batch)
            with self._cond:
                self._in_flight = []
                self._count_dropped(len(taken) - len(batch) + len(refused))  # rows _rows() could not make, too
                if not unwritten:
                    self._retrying = False
                    # The next batch is taken one interval after this one (at once when a full batch waits, see
                    # _wake_writer), not as soon as this write ends: a row still waits at most about an interval,
                    # and under load a transaction carries the interval's rows, not the few that came during the
                    # last write: at 400 rows/s, taking at once made 97 MariaDB transactions in 1.2 s (the unit test).
                    pause_s = max(0.0, taken_at + self._settings.flush_interval_s - time.monotonic())
                else:
                    self._requeue(unwritten)
                    if self._closed:
                        return
                    pause_s = min(pause_s * 2, self._settings.retry_max_s) if self._retrying else _RETRY_FIRST_S
                    self._retrying = True
                self._metrics.log_buffer(self.app, len(self._buffer))
                self._cond.notify_all()

    def _rows(self, taken: list[Answered | PredictionRow]) -> list[PredictionRow]:
        rows = []
        for entry in taken:
            if isinstance(entry, PredictionRow):
                rows.append(entry)
                continue
            try:
                rows.append(prediction_row(self.app, entry))
            except Exception as error:  # not JSON (NaN, an object, too deep): this row only, never the writer
                logger.error("prediction log of %s: request %r cannot be logged: %s", self.app, entry.request_id, error)
        return rows

    def _write(self, batch: list[PredictionRow]) -> tuple[list[PredictionRow], list[PredictionRow]]:
        """Write `batch`; returns the rows to try again and the rows given up on (logged here)."""
        if not batch:
            return [], []
        try:
            self._ensure_tables()
            insert_rows(self._engine, batch)
            return [], []
        # Not only SQLAlchemyError: a driver may raise others on a value it cannot send (e.g. UnicodeEncodeError).
        except Exception as error:
            self._metrics.log_write_failed(self.app)
            if not self._database_answers():
                logger.warning(
                    "prediction log of %s: writing %d rows failed, will retry: %s", self.app, len(batch), error
                )
                return batch, []
        # The database answers, yet refused the batch: some rows of it are bad. The good ones are written now.
        failed, untried = (batch, []) if len(batch) == 1 else self._write_apart(batch)
        unwritten, refused = list(untried), []
        for row in failed:
            if row.failed_attempts + 1 < MAX_ROW_ATTEMPTS:
                unwritten.append(replace(row, failed_attempts=row.failed_attempts + 1))
                continue
            refused.append(row)
            logger.error(
                "prediction log of %s: the database refused the row of request %r %d times; dropped",
                self.app,
                row.request_id,
                MAX_ROW_ATTEMPTS,
            )
        return unwritten, refused

    def _write_apart(self, rows: list[PredictionRow]) -> tuple[list[PredictionRow], list[PredictionRow]]:
        """Write `rows`, which failed together, in halves down to single rows. Returns the rows refused on their own
        while the database answered, and the rows left untried because it stopped answering."""
        failed: list[PredictionRow] = []
        halves = [rows[: len(rows) // 2], rows[len(rows) // 2 :]]
        for index, half in enumerate(halves):
            try:
                insert_rows(self._engine, half)
                continue
            except Exception:
                if not self._database_answers():
                    return failed, [row for rest in halves[index:] for row in rest]
            if len(half) == 1:
                failed.extend(half)
                continue
            refused, untried = self._write_apart(half)
            failed.extend(refused)
            if untried:
                return failed, untried + [row for rest in halves[index + 1 :] for row in rest]
        return failed, []

    def _database_answers(self) -> bool:
        try:
            with self._engine.connect() as connection:
                connection.exec_driver_sql("SELECT 1")
        except SQLAlchemyError:
            return False
        return True

    def _ensure_tables(self) -> None:
        if not self._tables_ready:
            create_tables(self._engine)
            self._tables_ready = True

    def _requeue(self, batch: list[PredictionRow]) -> None:
        # Called with the lock held. The batch is older than anything buffered, so it goes back in front,
        # and if rows arrived meanwhile the oldest of the batch are the ones to drop.
        room = self._settings.buffer_rows - len(self._buffer)
        kept = batch[max(0, len(batch) - room) :] if room > 0 else []
        self._buffer.extendleft(reversed(kept))
        self._count_dropped(len(batch) - len(kept))
        if len(kept) < len(batch):
            self._warn_buffer_full()
