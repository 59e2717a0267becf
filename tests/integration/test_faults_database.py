"""Database outage under load: MariaDB stopped for a while mid-load, then started again.

The iris app of the dev env logs into a database of its own while client threads keep sending predictions. Halfway
through, the MariaDB server is stopped for OUTAGE_S and started again. No request may fail because of it, and once
the replicas' buffers have drained the table holds exactly one row per answered request: none lost, none twice.

The server is shared with other runs, so it is always started again (finally) and the test waits until it answers.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from localrun.serve import deploy
from tests.integration.services import MariaDbDatabase
from tests.integration.single_app import free_port, single_app_config

APP = "iris"
CLIENTS = 2
WARM_UP_S = 4.0
OUTAGE_S = 12.0
AFTER_S = 6.0
REQUEST_TIMEOUT_S = 10.0
SERVER_UP_TIMEOUT_S = 60.0
ROWS_TIMEOUT_S = 60.0
BODY = {"instances": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]}


@dataclass
class Answers:
    """What the clients saw: one (status, x-request-id) per request, plus transport errors."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    statuses: list[tuple[int, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def ok_ids(self) -> list[str]:
        return [request_id for status, request_id in self.statuses if status == 200]

    def during(self) -> int:
        with self.lock:
            return len(self.statuses)


def drive(url: str, stop: threading.Event, answers: Answers) -> None:
    """Send predictions one after another until `stop`; record each answer."""
    with httpx.Client(timeout=REQUEST_TIMEOUT_S) as client:
        while not stop.is_set():
            try:
                response = client.post(url, json=BODY)
            except httpx.HTTPError as error:
                with answers.lock:
                    answers.errors.append(f"{type(error).__name__}: {error}")
                continue
            with answers.lock:
                answers.statuses.append((response.status_code, response.headers.get("x-request-id", "")))


@dataclass(frozen=True)
class Server:
    """The local MariaDB server behind a mysql URL, stopped and started with its own admin tools."""

    host: str
    port: int
    user: str

    def _admin(self, *command: str, timeout_s: float = 30) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["mysqladmin", f"-h{self.host}", f"-P{self.port}", f"-u{self.user}", "--connect-timeout=2", *command],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )

    def answers(self) -> bool:
        return self._admin("ping").returncode == 0

    def stop(self) -> None:
        self._admin("shutdown", timeout_s=60)
        deadline = time.monotonic() + 30
        while self.answers():
            if time.monotonic() > deadline:
                raise RuntimeError("MariaDB still answers 30 s after shutdown")
            time.sleep(0.2)

    def start(self) -> None:
        if not self.answers():
            mariadbd = shutil.which("mariadbd") or "/usr/sbin/mariadbd"
            subprocess.run(
                ["start-stop-daemon", "--start", "--oknodo", "--background", "--exec", mariadbd],
                check=True,
                timeout=30,
            )
        deadline = time.monotonic() + SERVER_UP_TIMEOUT_S
        while not self.answers():
            if time.monotonic() > deadline:
                raise RuntimeError(f"MariaDB did not answer within {SERVER_UP_TIMEOUT_S:.0f} s of its start")
            time.sleep(0.5)


@pytest.fixture(scope="module")
def server(mysql_url: str) -> Server:
    url = make_url(mysql_url)
    if url.host not in ("127.0.0.1", "localhost") or shutil.which("mysqladmin") is None:
        pytest.skip("needs the local MariaDB server (SERVICES_BACKEND=local) and mysqladmin to stop and start it")
    return Server(host="127.0.0.1", port=url.port or 3306, user=url.username or "root")


@pytest.fixture(scope="module")
def iris_config(database: MariaDbDatabase, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The dev env's iris app alone, logging into this module's database."""
    env_vars = {"PREDICTION_DB_URL": database.url, "MODEL_CACHE_DIR": str(tmp_path_factory.mktemp("cache"))}
    return single_app_config("dev", APP, env_vars)


@pytest.fixture(scope="module")
def served(ray_cluster: Any, iris_config: dict[str, Any]) -> Iterator[str]:
    from ray import serve

    (iris,) = iris_config["applications"]
    try:
        yield deploy(iris_config, free_port()).url + iris["route_prefix"]
    finally:
        serve.shutdown()


def _logged_request_ids(database: MariaDbDatabase) -> list[str]:
    engine = sa.create_engine(database.url)
    try:
        with engine.connect() as connection:
            query = sa.text("SELECT request_id FROM prediction_log WHERE app = :app")
            return [row.request_id for row in connection.execute(query, {"app": APP})]
    finally:
        engine.dispose()


def test_a_database_outage_mid_load_loses_no_request_and_no_row(
    served: str, server: Server, database: MariaDbDatabase, iris_config: dict[str, Any]
) -> None:
    answers = Answers()
    stop = threading.Event()
    clients = [threading.Thread(target=drive, args=(f"{served}/predict", stop, answers)) for _ in range(CLIENTS)]
    for client in clients:
        client.start()
    try:
        time.sleep(WARM_UP_S)
        before = answers.during()
        server.stop()
        try:
            time.sleep(OUTAGE_S)
            during_outage = answers.during() - before
        finally:
            server.start()
        time.sleep(AFTER_S)
    finally:
        stop.set()
        for client in clients:
            client.join(REQUEST_TIMEOUT_S + 5)

    (iris,) = iris_config["applications"]
    buffer_rows = iris["args"]["prediction_log"]["buffer_rows"]
    assert during_outage > 0, "the clients kept getting answers while the database was down"
    # Twice the outage's rows must fit, or a longer outage at this rate would drop rows.
    assert 2 * during_outage <= buffer_rows, f"{during_outage} rows in {OUTAGE_S} s; buffer_rows={buffer_rows}"
    assert answers.errors == []
    assert [status for status, _ in answers.statuses if status != 200] == []
    sent = answers.ok_ids()
    assert len(set(sent)) == len(sent), "Serve gave every answer its own request id"

    deadline = time.monotonic() + ROWS_TIMEOUT_S
    while len(logged := _logged_request_ids(database)) < len(sent) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert len(logged) == len(sent), "one row per answered request"
    assert sorted(logged) == sorted(sent)
    stats = httpx.get(f"{served}/stats", timeout=REQUEST_TIMEOUT_S).json()
    assert stats["dropped_rows"] == 0
    assert stats["buffered_rows"] == 0
