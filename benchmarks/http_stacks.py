"""`nox -s bench -- --http-stacks`: the CPU a zero-shot request costs each HTTP stack in-process, no Ray or model.

`nox -s bench` measures whole systems under load, where the HTTP layer's share hides among the model, Ray's request
path and the other processes; this measures that share alone. Each stack answers the benchmark's request bodies
(benchmarks/workload.py) with the request's labels at equal scores, called as ASGI from one event loop, no server
or socket:
  - fastapi: benchmarks/http_floor.py's FastAPI app, the route the hand-tuned peer and the HTTP floor serve;
  - toolkit: the same route on the app's own FastAPI (serve_apps/common/api.py `make_api`: bounded and checked
    bodies, the 422 handler; the try-it page's redirect), as every served app is built;
  - bare: one ASGI callable doing the same pydantic validation and JSON serialization, no framework: what the
    request and response cost themselves, the floor a handler written without FastAPI would approach.
Before timing, every stack must answer every body 200 with the same JSON. Process CPU time per request, the median
of the repetitions, printed and written to reports/bench/http_stacks.json.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from benchmarks import http_floor
from benchmarks.workload import request_bodies
from serve_apps.common.api import make_api
from serve_apps.common.page import add_try_it_page
from serve_apps.zero_shot.app import ZeroShotRequest

WARMUP_REQUESTS = 200


def toolkit_app() -> FastAPI:
    """http_floor's route on the served apps' FastAPI, with the zero-shot app's middlewares and try-it page."""
    api = make_api(title="Zero-shot classifier", description="The HTTP floor's route on the toolkit's FastAPI.")
    add_try_it_page(api, "zero_shot")
    api.post("/predict")(http_floor.predict)
    return api


async def bare_app(scope: Scope, receive: Receive, send: Send) -> None:
    """http_floor's route with no framework: validate the body, call the route's function, serialize its answer."""
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    answered = await http_floor.predict(ZeroShotRequest.model_validate_json(b"".join(chunks)))
    content = answered.__pydantic_serializer__.to_json(answered)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(content)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": content})


STACKS: dict[str, Callable[[], ASGIApp]] = {
    "fastapi": lambda: http_floor.api,
    "toolkit": toolkit_app,
    "bare": lambda: bare_app,
}


def _scope(body: bytes) -> dict[str, Any]:
    """An HTTP/1.1 POST /predict of `body` as uvicorn would hand it to the app."""
    headers = [
        (b"host", b"127.0.0.1"),
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/predict",
        "raw_path": b"/predict",
        "root_path": "",
        "query_string": b"",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }


async def answer(app: ASGIApp, body: bytes) -> tuple[int, bytes]:
    """The status and body `app` answers a POST /predict of `body` with."""
    answered: dict[str, Any] = {"status": None, "body": b""}

    async def receive() -> Message:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            answered["status"] = message["status"]
        elif message["type"] == "http.response.body":
            answered["body"] += message.get("body", b"")

    await app(_scope(body), receive, send)
    return answered["status"], answered["body"]


async def check(stacks: dict[str, ASGIApp], bodies: Sequence[bytes]) -> None:
    """Raise unless every stack answers every body 200 with the same JSON."""
    for body in bodies:
        answers = {name: await answer(app, body) for name, app in stacks.items()}
        parsed = {name: json.loads(content) for name, (status, content) in answers.items() if status == 200}
        if len(parsed) < len(stacks) or len({json.dumps(value, sort_keys=True) for value in parsed.values()}) != 1:
            shown = {name: (status, content[:200]) for name, (status, content) in answers.items()}
            raise RuntimeError(f"the stacks answer {body[:80]!r} differently: {shown}")


async def cpu_per_request_us(app: ASGIApp, bodies: Sequence[bytes], requests: int) -> float:
    """Process CPU time per request, in microseconds, over `requests` calls cycling through `bodies`."""
    cycle = itertools.cycle(bodies)
    for _ in range(WARMUP_REQUESTS):
        await answer(app, next(cycle))
    started = time.process_time()
    for _ in range(requests):
        await answer(app, next(cycle))
    return (time.process_time() - started) / requests * 1e6


def measure(requests: int, repetitions: int) -> dict[str, Any]:
    """Each stack's CPU per request (median, min and max of `repetitions`), the stacks taking turns."""
    stacks = {name: make() for name, make in STACKS.items()}
    bodies = [json.dumps(body).encode() for body in request_bodies()]
    asyncio.run(check(stacks, bodies))
    runs: dict[str, list[float]] = {name: [] for name in stacks}
    for _ in range(repetitions):
        for name, app in stacks.items():
            runs[name].append(asyncio.run(cpu_per_request_us(app, bodies, requests)))
    return {
        "python": platform.python_version(),
        "machine": platform.processor() or platform.machine(),
        "requests": requests,
        "repetitions": repetitions,
        "us_per_request": {
            name: {"median": statistics.median(values), "min": min(values), "max": max(values)}
            for name, values in runs.items()
        },
    }


def table(result: dict[str, Any]) -> str:
    """The figures as a plain-text table, each stack also against bare."""
    bare = result["us_per_request"]["bare"]["median"]
    lines = [f"{'stack':9} {'us/request':>10} {'min':>7} {'max':>7} {'x bare':>7}"]
    for name, figures in result["us_per_request"].items():
        lines.append(
            f"{name:9} {figures['median']:10.1f} {figures['min']:7.1f} {figures['max']:7.1f} "
            f"{figures['median'] / bare:7.1f}"
        )
    return "\n".join(lines)


def main(out: Path, requests: int = 3000, repetitions: int = 5) -> int:
    """Measure, print the table, write the JSON into the directory `out`."""
    print(f"{len(STACKS)} HTTP stacks in-process, {repetitions} x {requests} requests each, taking turns")
    result = measure(requests, repetitions)
    print(table(result))
    out.mkdir(parents=True, exist_ok=True)
    path = out / "http_stacks.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {path}")
    return 0
