"""The generation part of `nox -s bench`: streamed rewrites of held-out notes, the served plain-language app beside
the naive one (benchmarks/naive_generate.py), at 1 and 8 closed-loop clients.

Each client posts a held-out note (serve_apps/plain_language/evaluate.py) to `/generate/stream` with the app's
default max_new_tokens, reads the server-sent events as they arrive (loadtests/sse.py), and sends the next note
once the `done` event came; clients start at different notes and go round. A request counts when it ends inside
the measured window: its time to the first `token` event, the tokens its `done` event reports and its whole time.
An HTTP error, an `error` event, a stream without `done` or a broken connection counts as an error. Per system and
client count: tokens/s (the tokens of the window's requests over the window), requests/s, TTFT p50/p95, request
p50/p95, errors, and the cores others used on the machine meanwhile (benchmarks/machine.py).

The clients run in a process of their own, so that their CPU is not the bench's (whose process holds Ray's
driver): `python -m benchmarks.generation --url URL --notes FILE --clients 8 --warmup-s 5 --duration-s 20` prints
one JSON object (GenerationResult without its system and others' cores), and `window-start` and `window-end` lines
on stderr as the measured window opens and closes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import aiohttp
import uvloop

from benchmarks.loadgen import JSON_HEADERS, percentile
from benchmarks.machine import CpuWindow, run_windowed
from benchmarks.peers import uvicorn_server
from loadtests.sse import EventStream
from serve_apps.plain_language.api import DONE_EVENT, ERROR_EVENT, TOKEN_EVENT

REQUEST_TIMEOUT_S = 60  # a rewrite of 64 tokens takes well under a second here, even at 8 clients


@dataclass(frozen=True)
class Streamed:
    """One streamed request as its client saw it: seconds from sending to the first `token` event (None before
    any) and to the end, what its `done` event said, and why it failed (None when it did not)."""

    ttft_s: float | None
    total_s: float
    ended: float  # time.perf_counter() at the end
    tokens: int
    text: str
    pieces: str  # the `token` events' texts joined
    error: str | None


@dataclass(frozen=True)
class GenerationResult:
    """One measured window of one system at one client count."""

    system: str
    clients: int
    window_s: float
    requests: int  # ended inside the window, failed ones included
    errors: int
    tokens: int
    tokens_per_s: float
    rps: float  # requests that did not fail, per second
    ttft_p50_ms: float
    ttft_p95_ms: float
    request_p50_ms: float
    request_p95_ms: float
    foreign_cores: float = float("nan")  # used outside the bench during the window; NaN: the client alone measured


async def stream(session: aiohttp.ClientSession, url: str, body: bytes) -> Streamed:
    """POST `body` to `url` (a /generate/stream endpoint) and read its events to the end."""
    sent = time.perf_counter()
    first: float | None = None
    pieces: list[str] = []
    done: dict[str, Any] | None = None
    error = None
    try:
        async with session.post(url, data=body, headers=JSON_HEADERS) as response:
            if response.status != 200:
                await response.read()
                error = f"HTTP {response.status}"
            else:
                events = EventStream()
                async for chunk in response.content.iter_any():
                    for event in events.feed(chunk):
                        if event.name == TOKEN_EVENT:
                            first = first or time.perf_counter()
                            pieces.append(json.loads(event.data)["text"])
                        elif event.name == DONE_EVENT:
                            done = json.loads(event.data)
                        elif event.name == ERROR_EVENT:
                            error = f"error event: {json.loads(event.data)['detail']}"
                if error is None and done is None:
                    error = "the stream ended without a done event"
    except (aiohttp.ClientError, TimeoutError) as failure:
        error = type(failure).__name__
    ended = time.perf_counter()
    return Streamed(
        ttft_s=None if first is None else first - sent,
        total_s=ended - sent,
        ended=ended,
        tokens=done["tokens"] if done and error is None else 0,
        text=done["text"] if done and error is None else "",
        pieces="".join(pieces),
        error=error,
    )


def figures(system: str, clients: int, streamed: Sequence[Streamed], window_s: float) -> GenerationResult:
    """The window's figures from the requests that ended inside it; latencies of the requests that did not fail."""
    ok = [s for s in streamed if s.error is None]
    tokens = sum(s.tokens for s in ok)
    ttfts = sorted(s.ttft_s * 1000 for s in ok if s.ttft_s is not None)
    totals = sorted(s.total_s * 1000 for s in ok)
    return GenerationResult(
        system=system,
        clients=clients,
        window_s=window_s,
        requests=len(streamed),
        errors=len(streamed) - len(ok),
        tokens=tokens,
        tokens_per_s=tokens / window_s,
        rps=len(ok) / window_s,
        ttft_p50_ms=percentile(ttfts, 50),
        ttft_p95_ms=percentile(ttfts, 95),
        request_p50_ms=percentile(totals, 50),
        request_p95_ms=percentile(totals, 95),
    )


async def closed_loop(
    url: str, notes: Sequence[str], clients: int, warmup_s: float, duration_s: float
) -> list[Streamed]:
    """`clients` clients streaming `notes` in turn for warmup_s + duration_s; the requests that ended in the last
    duration_s."""
    bodies = [json.dumps({"text": note}).encode() for note in notes]
    connector = aiohttp.TCPConnector(limit=clients)
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
    begin = time.perf_counter()
    start, stop = begin + warmup_s, begin + warmup_s + duration_s
    measured: list[Streamed] = []

    async def client(session: aiohttp.ClientSession, first: int) -> None:
        index = first
        while time.perf_counter() < stop:
            result = await stream(session, url, bodies[index % len(bodies)])
            index += 1
            if start <= result.ended < stop:
                measured.append(result)

    async def mark(moment: float, name: str) -> None:
        await asyncio.sleep(max(0.0, moment - time.perf_counter()))
        print(name, file=sys.stderr, flush=True)

    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        readers = (client(session, i * len(bodies) // clients) for i in range(clients))
        await asyncio.gather(mark(start, "window-start"), mark(stop, "window-end"), *readers)
    return measured


def measure(
    system: str, url: str, notes_file: Path, clients: int, warmup_s: float, duration_s: float
) -> GenerationResult:
    """Run the closed loop against `url` in a process of its own; its figures, with the cores others used on the
    machine over its window."""
    command = [sys.executable, "-m", "benchmarks.generation", "--url", url, "--notes", str(notes_file)]
    command += ["--clients", str(clients), "--warmup-s", str(warmup_s), "--duration-s", str(duration_s)]
    # Nothing measured but who else used the machine.
    out, cpu = run_windowed(command, CpuWindow(list), "generation client")
    return GenerationResult(system=system, foreign_cores=cpu.foreign_cores, **json.loads(out))


def check_same_text(urls: dict[str, str], note: str) -> str:
    """Stream `note` from each system (name → /generate/stream URL): each must finish, its pieces must add up to
    its `done` text, and every system must write the same text (greedy decoding of the same model). The text;
    RuntimeError naming what differs otherwise."""

    async def read_all() -> dict[str, Streamed]:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)) as session:
            body = json.dumps({"text": note}).encode()
            return {system: await stream(session, url, body) for system, url in urls.items()}

    answers = uvloop.run(read_all())
    wrong = [f"{s}: {a.error}" for s, a in answers.items() if a.error is not None]
    wrong += [f"{s}: pieces {a.pieces!r} but done {a.text!r}" for s, a in answers.items() if a.pieces != a.text]
    texts = {a.text for a in answers.values()}
    if not wrong and len(texts) != 1:
        wrong = [f"{s}: {a.text!r}" for s, a in answers.items()]
    if wrong:
        raise RuntimeError(f"systems rewrite {note!r} differently; not measuring:\n" + "\n".join(wrong))
    return texts.pop()


@contextlib.contextmanager
def naive_server(archive: Path, cores: Sequence[int], logs: Path) -> Iterator[tuple[str, int]]:
    """benchmarks/naive_generate.py on `archive` under uvicorn: one process, no access log; its /generate/stream
    URL and pid."""
    from benchmarks.naive_generate import ARCHIVE_VARIABLE

    env = {**os.environ, ARCHIVE_VARIABLE: str(archive.resolve()), "HF_HUB_OFFLINE": "1"}
    app = ["--factory", "benchmarks.naive_generate:from_env"]
    with uvicorn_server("naive_generate", app, cores, env, logs) as (base, pid):
        yield f"{base}/generate/stream", pid


def held_out_notes() -> list[str]:
    """The held-out notes' sources, the requests of every client."""
    from serve_apps.plain_language.evaluate import held_out

    return [pair.source for pair in held_out()]


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, run the closed loop, print its figures as JSON."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.generation", description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="e.g. http://127.0.0.1:8000/plain-language/generate/stream")
    parser.add_argument("--notes", required=True, help="JSON file: a list of texts to rewrite")
    parser.add_argument("--clients", type=int, default=1)
    parser.add_argument("--warmup-s", type=float, default=5)
    parser.add_argument("--duration-s", type=float, default=20)
    args = parser.parse_args(argv)
    notes = json.loads(Path(args.notes).read_text(encoding="utf-8"))
    streamed = uvloop.run(closed_loop(args.url, notes, args.clients, args.warmup_s, args.duration_s))
    result = asdict(figures("", args.clients, streamed, args.duration_s))
    del result["system"], result["foreign_cores"]
    json.dump(result, sys.stdout)
    print()


if __name__ == "__main__":
    main()
