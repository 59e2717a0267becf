"""Closed-loop HTTP load: N clients each send a request, wait for the answer, send the next (no think time).

Run as its own process so that its CPU is measured apart from the server's:
`python -m benchmarks.loadgen --url URL --bodies FILE --clients 16 --warmup-s 5 --duration-s 20` prints one JSON
object: requests answered in the measured window, errors, req/s, latency percentiles, the generator's CPU
seconds and which generator ran. It writes `window-start` and `window-end` lines on stderr as the measured window opens
and closes, so that the caller can measure the server's CPU over the same window. FILE is a JSON list of request
bodies, sent in turn.

Two generators, one measurement. On two cores the load generator takes its CPU from the server it measures, so
the cheapest wins: wrk (C; one thread, N connections; about 0.02 cores at 400 req/s here), when it is on PATH;
otherwise aiohttp on uvloop (about 0.12 cores at the same rate, which cost the served app 5-13 % of its
throughput in interleaved windows). Figures of different generators do not compare; the result names its own.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import aiohttp
import uvloop

JSON_HEADERS = {"content-type": "application/json"}
GENERATORS = ("auto", "wrk", "aiohttp")
WRK_SCRIPT = Path(__file__).with_name("wrk_bodies.lua")


@dataclass(frozen=True)
class LoadResult:
    """What one measured window saw: answered requests (ok or not) that ended inside the window."""

    clients: int
    window_s: float
    requests: int
    errors: int
    rps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    client_cpu_s: float
    generator: str

    @property
    def client_cpu_cores(self) -> float:
        """Cores the load generator kept busy on average during the window."""
        return self.client_cpu_s / self.window_s


def percentile(sorted_values: list[float], percent: float) -> float:
    """Nearest-rank percentile of an ascending list (0.0 for an empty one)."""
    if not sorted_values:
        return 0.0
    rank = max(1, round(percent / 100 * len(sorted_values) + 0.499999))
    return sorted_values[min(rank, len(sorted_values)) - 1]


async def _client(
    session: aiohttp.ClientSession,
    url: str,
    bodies: list[bytes],
    first: int,
    window: tuple[float, float],
    latencies: list[float],
    errors: list[str],
) -> None:
    start, stop = window
    index = first
    while time.perf_counter() < stop:
        body = bodies[index % len(bodies)]
        index += 1
        sent = time.perf_counter()
        try:
            async with session.post(url, data=body, headers=JSON_HEADERS) as response:
                await response.read()
                failure = None if response.status == 200 else f"HTTP {response.status}"
        except (aiohttp.ClientError, TimeoutError) as error:
            failure = type(error).__name__
        ended = time.perf_counter()
        if start <= ended < stop:
            latencies.append(ended - sent)
            if failure is not None:
                errors.append(failure)


async def run_load(
    url: str, bodies: list[bytes], clients: int, warmup_s: float, duration_s: float, timeout_s: float = 30
) -> LoadResult:
    """Drive `url` with `clients` closed-loop clients for warmup_s + duration_s; measure the last duration_s."""
    latencies: list[float] = []
    errors: list[str] = []
    connector = aiohttp.TCPConnector(limit=clients, force_close=False)
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        begin = time.perf_counter()
        window = (begin + warmup_s, begin + warmup_s + duration_s)
        cpu_marks: list[float] = []

        async def mark_cpu() -> None:
            for moment, name in zip(window, ("window-start", "window-end"), strict=True):
                await asyncio.sleep(max(0.0, moment - time.perf_counter()))
                cpu_marks.append(time.process_time())
                print(name, file=sys.stderr, flush=True)

        await asyncio.gather(
            mark_cpu(),
            *(
                _client(session, url, bodies, i * len(bodies) // clients, window, latencies, errors)
                for i in range(clients)
            ),
        )
    latencies.sort()
    return LoadResult(
        clients=clients,
        window_s=duration_s,
        requests=len(latencies),
        errors=len(errors),
        rps=(len(latencies) - len(errors)) / duration_s,
        p50_ms=percentile(latencies, 50) * 1000,
        p95_ms=percentile(latencies, 95) * 1000,
        p99_ms=percentile(latencies, 99) * 1000,
        client_cpu_s=cpu_marks[1] - cpu_marks[0],
        generator="aiohttp",
    )


def wrk_version(wrk: str) -> str:
    """`wrk 4.1.0`: what `wrk -v` prints before its build details."""
    shown = subprocess.run([wrk, "-v"], capture_output=True, text=True, check=False)
    return (shown.stdout or shown.stderr).split("[")[0].strip() or "wrk"


def run_wrk(
    wrk: str, url: str, bodies: list[bytes], clients: int, warmup_s: float, duration_s: float, timeout_s: float = 30
) -> LoadResult:
    """The same closed loop with wrk: a warm-up run, then the measured run (wrk counts whole seconds)."""
    with tempfile.TemporaryDirectory(prefix="loadgen-") as scratch:
        lines = Path(scratch) / "bodies.jsonl"
        lines.write_bytes(b"".join(body + b"\n" for body in bodies))  # json.dumps writes no newline
        env = {**os.environ, "WRK_BODIES": str(lines)}

        def run(seconds: float) -> dict[str, int]:
            command = [wrk, "--threads", "1", "--connections", str(clients), "--duration", f"{math.ceil(seconds)}s"]
            command += ["--timeout", f"{math.ceil(timeout_s)}s", "--script", str(WRK_SCRIPT), url]
            done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
            if done.returncode != 0 or not done.stdout.strip():
                raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}): {done.stderr[-2000:]}")
            figures: dict[str, int] = json.loads(done.stdout.strip().splitlines()[-1])
            return figures

        if warmup_s > 0:
            run(warmup_s)
        print("window-start", file=sys.stderr, flush=True)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        figures = run(duration_s)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        print("window-end", file=sys.stderr, flush=True)
    window_s = figures["duration_us"] / 1e6
    errors = figures["non_2xx"] + figures["socket_errors"]
    return LoadResult(
        clients=clients,
        window_s=window_s,
        requests=figures["requests"] + figures["socket_errors"],
        errors=errors,
        rps=(figures["requests"] - figures["non_2xx"]) / window_s,
        p50_ms=figures["p50_us"] / 1000,
        p95_ms=figures["p95_us"] / 1000,
        p99_ms=figures["p99_us"] / 1000,
        client_cpu_s=(after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime),
        generator=wrk_version(wrk),
    )


def wrk_path(generator: str) -> str | None:
    """The wrk to run for `generator` (GENERATORS; auto = wrk when it is on PATH), None for aiohttp."""
    wrk = shutil.which("wrk")
    if generator == "wrk" and wrk is None:
        raise SystemExit("--generator wrk: wrk is not on PATH (apt-get install wrk, brew install wrk)")
    return None if generator == "aiohttp" else wrk


def load(url: str, bodies: list[bytes], clients: int, warmup_s: float, duration_s: float, generator: str) -> LoadResult:
    """Run the closed loop with `generator` (see wrk_path)."""
    wrk = wrk_path(generator)
    if wrk is not None:
        return run_wrk(wrk, url, bodies, clients, warmup_s, duration_s)
    return uvloop.run(run_load(url, bodies, clients, warmup_s, duration_s))


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, run the load, print the LoadResult as JSON."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.loadgen", description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="POST target, e.g. http://127.0.0.1:8000/zero-shot/predict")
    parser.add_argument("--bodies", required=True, help="JSON file: a list of request bodies")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--warmup-s", type=float, default=5)
    parser.add_argument("--duration-s", type=float, default=20)
    parser.add_argument("--generator", choices=GENERATORS, default="auto", help="auto: wrk when on PATH")
    args = parser.parse_args(argv)
    with open(args.bodies, encoding="utf-8") as file:
        bodies = [json.dumps(body).encode() for body in json.load(file)]
    result = load(args.url, bodies, args.clients, args.warmup_s, args.duration_s, args.generator)
    json.dump(asdict(result), sys.stdout)
    print()


if __name__ == "__main__":
    main()
