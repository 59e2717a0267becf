"""The bench's load generator keeps a closed loop and counts what it sees, with either generator."""

import json
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from benchmarks import loadgen

SERVICE_S = 0.02  # every answer takes this long, so a closed loop of N clients cannot exceed N / SERVICE_S
CLIENTS = 4
BODIES = [json.dumps({"text": "ok"}).encode(), json.dumps({"text": "fail"}).encode()]
GENERATORS = [
    "aiohttp",
    pytest.param("wrk", marks=pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not on PATH")),
]


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.answered = 0
        self._lock = threading.Lock()  # one handler thread per connection: += alone could lose a count

    def count_answer(self) -> None:
        with self._lock:
            self.answered += 1


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the generators use it

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"]))
        time.sleep(SERVICE_S)
        status = 500 if b"fail" in body else 200
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"{}")
        assert isinstance(self.server, Server)
        self.server.count_answer()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[Server]:
    httpd = Server()
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def url(server: Server) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}/predict"


@pytest.mark.parametrize("generator", GENERATORS)
def test_closed_loop_counts_answers_errors_and_latency(server: Server, generator: str) -> None:
    result = loadgen.load(url(server), BODIES, CLIENTS, warmup_s=1, duration_s=2, generator=generator)

    assert result.generator.startswith(generator)
    assert result.requests > 20
    # Every other body fails: half the answers are errors, and req/s counts the others only.
    assert 0.35 < result.errors / result.requests < 0.65
    assert result.rps == pytest.approx((result.requests - result.errors) / result.window_s, rel=0.02)
    # Closed loop: no client sends before its answer came, so no faster than CLIENTS / SERVICE_S.
    assert result.requests / result.window_s <= CLIENTS / SERVICE_S * 1.05
    assert SERVICE_S * 1000 <= result.p50_ms <= result.p95_ms <= result.p99_ms
    assert result.client_cpu_s > 0
    assert server.answered >= result.requests  # the server saw at least what the window counted


def test_command_line_marks_the_window_and_prints_the_result(server: Server, tmp_path: Path) -> None:
    bodies = tmp_path / "bodies.json"
    bodies.write_text(json.dumps([json.loads(body) for body in BODIES]))
    command = [sys.executable, "-m", "benchmarks.loadgen", "--url", url(server), "--bodies", str(bodies)]
    command += ["--clients", "2", "--warmup-s", "1", "--duration-s", "1"]
    done = subprocess.run(command, capture_output=True, text=True, check=True, timeout=60)

    assert done.stderr.split() == ["window-start", "window-end"]
    result = loadgen.LoadResult(**json.loads(done.stdout))
    assert result.requests > 0
    wrk = shutil.which("wrk")
    assert result.generator == (loadgen.wrk_version(wrk) if wrk else "aiohttp")  # auto: wrk when on PATH


def test_asking_for_wrk_without_it_says_how_to_get_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "")
    with pytest.raises(SystemExit, match="apt-get install wrk"):
        loadgen.wrk_path("wrk")
