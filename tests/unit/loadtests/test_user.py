"""The generation user against a stand-in app that streams a token every DELAY_S: a stream is read as it arrives
(its TTFT entry is the first token's time, not the last's), counted as one request timed to its last byte, failed
when it breaks off; and the verdict's figures keep the TTFT entries apart.

Locust monkey-patches the process with gevent when it is imported, so each probe runs in a Python of its own.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[3]
DELAY_S = 0.3
PROBE = """
import http.server, json, random, socket, sys, threading, time

from locust import events
from locust.env import Environment

from loadtests.plain_language.workload import PlainLanguageWorkload
from loadtests.slo import Pacer
from loadtests.user import TTFT, GenerateUser, measurement

DELAY_S, SCENARIO = float(sys.argv[1]), sys.argv[2]
PIECES = ["The", " patient", " is"]


class Stub(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        self.rfile.read(int(self.headers["content-length"]))
        generation = {"text": "".join(PIECES), "tokens": 3, "finish_reason": "eos", "ttft_ms": 1.0}
        if self.path.endswith("/generate"):
            body = json.dumps(generation).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        for index, piece in enumerate(PIECES):
            time.sleep(DELAY_S)
            if SCENARIO == "broken" and index == 2:  # the connection drops mid-stream
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            self.chunk(f"event: token\\ndata: {json.dumps({'index': index, 'text': piece})}\\n\\n")
        self.chunk(f"event: done\\ndata: {json.dumps(generation)}\\n\\n")
        self.wfile.write(b"0\\r\\n\\r\\n")

    def chunk(self, text):
        data = text.encode()
        self.wfile.write(f"{len(data):x}\\r\\n".encode() + data + b"\\r\\n")
        self.wfile.flush()

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Stub)
threading.Thread(target=server.serve_forever, daemon=True).start()


class User(GenerateUser):
    host = f"http://127.0.0.1:{server.server_address[1]}"


environment = Environment(user_classes=[User], events=events)
environment.create_local_runner()
user = User(environment)
user._workload, user._route = PlainLanguageWorkload(), "/plain-language"
user._rng, user._pacer = random.Random(25), Pacer(0)
user.generate_stream()
if SCENARIO == "both":
    user.generate()
entries = {
    f"{e.method} {e.name}": {"requests": e.num_requests, "failures": e.num_failures, "ms": e.max_response_time}
    for e in environment.stats.entries.values()
}
errors = [str(error.error) for error in environment.stats.errors.values()]
print(json.dumps({"entries": entries, "errors": errors, "measurement": measurement(environment.stats).model_dump()}))
"""


def probe(scenario: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(DELAY_S), scenario],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout.splitlines()[-1]))


@pytest.fixture(scope="module")
def streamed() -> dict[str, Any]:
    return probe("both")


def test_a_stream_is_one_request_timed_to_its_last_byte(streamed: dict[str, Any]) -> None:
    stream = streamed["entries"]["POST /plain-language/generate/stream"]
    assert (stream["requests"], stream["failures"]) == (1, 0)
    assert stream["ms"] >= 3 * DELAY_S * 1000


def test_its_first_token_is_timed_as_it_arrives(streamed: dict[str, Any]) -> None:
    ttft = streamed["entries"]["TTFT /plain-language/generate/stream"]
    assert ttft["requests"] == 1
    assert DELAY_S * 1000 <= ttft["ms"] < 2 * DELAY_S * 1000


def test_the_verdict_counts_requests_without_the_ttft_entries(streamed: dict[str, Any]) -> None:
    measured = streamed["measurement"]
    assert (measured["requests"], measured["failures"]) == (2, 0)  # the stream and the whole answer
    assert DELAY_S * 1000 <= measured["ttft_p95_ms"] < 2 * DELAY_S * 1000


def test_a_stream_that_breaks_off_is_a_failed_request() -> None:
    broken = probe("broken")
    stream = broken["entries"]["POST /plain-language/generate/stream"]
    assert (stream["requests"], stream["failures"]) == (1, 1)
    assert broken["errors"] == [
        "stream broken after 2 events: ChunkedEncodingError(ProtocolError('Response ended prematurely'))"
    ]
