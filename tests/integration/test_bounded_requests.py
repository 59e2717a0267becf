"""Oversized bodies and slow clients are bounded: 413 before the body is read, and a trickled or stalled body is
cut off with a 408.

The dev env's doubleit app runs alone with a small MAX_REQUEST_BODY_BYTES (env.serve.max_request_body_bytes), a
short REQUEST_BODY_TIMEOUT_S (serve_apps/common/api.py) and a short http_options.request_timeout_s
(env.serve.request_timeout_s).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from localrun.serve import deploy
from tests.integration.single_app import free_port, single_app_config

APP = "doubleit"
LIMIT_BYTES = 4096
REQUEST_TIMEOUT_S = 3.0
BODY_TIMEOUT_S = 1.0
# The proxy and the replica share two busy cores: allow this much past the timeout before calling it a hang.
SLACK_S = 5.0


@pytest.fixture(scope="module")
def app_url(ray_cluster: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from ray import serve

    env_vars = {
        "MAX_REQUEST_BODY_BYTES": str(LIMIT_BYTES),
        "REQUEST_BODY_TIMEOUT_S": str(BODY_TIMEOUT_S),
        "MODEL_CACHE_DIR": str(tmp_path_factory.mktemp("cache")),
    }
    config = single_app_config("dev", APP, env_vars)
    config["http_options"] = {**config["http_options"], "request_timeout_s": REQUEST_TIMEOUT_S}
    (app,) = config["applications"]
    try:
        yield deploy(config, free_port()).url + app["route_prefix"]
    finally:
        serve.shutdown()


def test_a_body_within_the_limit_is_answered(app_url: str) -> None:
    response = httpx.post(f"{app_url}/predict", json={"values": [1.0, 2.5]}, timeout=10)
    assert response.status_code == 200
    assert response.json() == {"values": [2.0, 5.0]}


def test_an_oversized_body_gets_413_quickly(app_url: str) -> None:
    started = time.monotonic()
    response = httpx.post(f"{app_url}/predict", json={"values": [1.0] * 10_000}, timeout=10)
    assert response.status_code == 413
    assert response.json() == {"detail": f"request body larger than {LIMIT_BYTES} bytes"}
    assert time.monotonic() - started < 2.0


def test_a_slow_client_is_cut_off_within_the_body_timeout(app_url: str) -> None:
    url = urlsplit(app_url)
    body = b'{"values": [' + b"1.0, " * 100 + b"1.0]}"
    head = (
        f"POST {url.path}/predict HTTP/1.1\r\nHost: {url.netloc}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    started = time.monotonic()
    answer = b""
    with socket.create_connection((url.hostname, url.port), timeout=BODY_TIMEOUT_S + SLACK_S) as sock:
        sock.sendall(head)
        sock.setblocking(False)
        for byte in body:
            if time.monotonic() - started > BODY_TIMEOUT_S + SLACK_S:
                break
            try:
                sock.send(bytes([byte]))
                chunk = sock.recv(65536)
            except BlockingIOError:
                time.sleep(0.2)
                continue
            except OSError:
                break  # the server closed the connection
            if not chunk:
                break
            answer += chunk
            break
        sock.setblocking(True)
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except OSError:
            pass
    elapsed = time.monotonic() - started
    assert elapsed <= BODY_TIMEOUT_S + SLACK_S, f"still connected after {elapsed:.1f} s"
    # The replica answers 408 once REQUEST_BODY_TIMEOUT_S runs out while the body is still arriving; were it longer,
    # Serve's proxy would answer 408 at request_timeout_s.
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]


def test_a_stalled_body_gets_408_though_the_client_lifted_the_request_timeout(app_url: str) -> None:
    # `x-request-timeout-seconds: 0` turns Serve's request_timeout_s off for this request: only the body deadline
    # is left to cut it off.
    url = urlsplit(app_url)
    body = b'{"values": [1.0, 2.0]}'
    head = (
        f"POST {url.path}/predict HTTP/1.1\r\nHost: {url.netloc}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nX-Request-Timeout-Seconds: 0\r\n\r\n"
    ).encode()
    started = time.monotonic()
    answer = b""
    with socket.create_connection((url.hostname, url.port), timeout=BODY_TIMEOUT_S + SLACK_S) as sock:
        sock.sendall(head + body[:5])
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except TimeoutError:
            pass
    elapsed = time.monotonic() - started
    assert elapsed < BODY_TIMEOUT_S + SLACK_S, f"still connected after {elapsed:.1f} s: {answer[:200]!r}"
    status, _, rest = answer.partition(b"\r\n")
    assert status == b"HTTP/1.1 408 Request Timeout", answer[:300]
    assert rest.endswith(f'{{"detail":"request body not received within {BODY_TIMEOUT_S:g} s"}}'.encode()), rest
