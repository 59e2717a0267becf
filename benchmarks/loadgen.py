"""Closed-loop HTTP load: N clients each send a request, wait for the answer, send the next (no think time).

Run as its own process so that its CPU is measured apart from the server's:
`python -m benchmarks.loadgen --url URL --bodies FILE --clients 16 --warmup-s 5 --duration-s 20` prints one JSON
object: requests answered in the measured window, errors, req/s, latency percentiles and this process's CPU
seconds. It writes `window-start` and `window-end` lines on stderr as the measured window opens and closes, so that
the caller can measure the server's CPU over the same window. FILE is a JSON list of request bodies, sent in turn.

aiohttp on uvloop: the cheapest Python client at hand (about 0.1 ms of CPU per request here), so that the load
generator takes as little as it can of the cores it shares with the server.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from dataclasses import asdict, dataclass

import aiohttp
import uvloop

JSON_HEADERS = {"content-type": "application/json"}


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
    )


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, run the load, print the LoadResult as JSON."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.loadgen", description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="POST target, e.g. http://127.0.0.1:8000/zero-shot/predict")
    parser.add_argument("--bodies", required=True, help="JSON file: a list of request bodies")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--warmup-s", type=float, default=5)
    parser.add_argument("--duration-s", type=float, default=20)
    args = parser.parse_args(argv)
    # uvloop (in ray[serve] through uvicorn[standard]) costs less CPU per request than the default loop.
    with open(args.bodies, encoding="utf-8") as file:
        bodies = [json.dumps(body).encode() for body in json.load(file)]
    result = uvloop.run(run_load(args.url, bodies, args.clients, args.warmup_s, args.duration_s))
    json.dump(asdict(result), sys.stdout)
    print()


if __name__ == "__main__":
    main()
