"""`nox -s bench -- --tune-fastapi`: how the hand-tuned FastAPI service's settings were chosen.

One setting at a time (GRID's order), the others at the best found so far: each value runs the service afresh and
is measured under the bench's load (16 closed-loop clients) once per round, the values of a round in alternating
order, so that the host's drift falls on all of them; the value with the highest median throughput stays. The
result is a table on stdout and reports/bench/tuning-<timestamp>.json; the winners belong in
benchmarks/peer_config.py (TUNED_FASTAPI), which the benchmark runs.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.loadgen import LoadResult
from benchmarks.machine import say
from benchmarks.peer_config import TUNED_FASTAPI

# Candidate values per setting, tried in this order (processes and threads first: they decide what a batch costs).
GRID: dict[str, tuple[int | float, ...]] = {
    "UVICORN_WORKERS": (1, 2),
    "TUNED_THREADS": (1, 2),
    "TUNED_MAX_BATCH_SIZE": (8, 16, 32),
    "TUNED_MAX_WAIT_MS": (0, 2, 5),
}


def sweep(
    measure: Callable[[dict[str, str]], LoadResult], rounds: int, start: dict[str, int | float] | None = None
) -> tuple[dict[str, int | float], list[dict[str, Any]]]:
    """Coordinate search over GRID from `start` (TUNED_FASTAPI): the best settings and every measurement.

    `measure(settings)` runs the service with `settings` (environment variables) and measures it once.
    """
    best = dict(start or TUNED_FASTAPI)
    trials: list[dict[str, Any]] = []
    for name, values in GRID.items():
        rates: dict[int | float, list[float]] = {value: [] for value in values}
        for round_ in range(rounds):
            for value in values if round_ % 2 == 0 else reversed(values):
                settings = {**best, name: value}
                result = measure({key: f"{setting:g}" for key, setting in settings.items()})
                rates[value].append(result.rps)
                trials.append({"settings": settings, "round": round_, "rps": result.rps, "p95_ms": result.p95_ms})
                say(f"tuning {name}={value:g}: {result.rps:.1f} req/s, p95 {result.p95_ms:.1f} ms")
        best[name] = max(values, key=lambda value: statistics.median(rates[value]))
        medians = ", ".join(f"{value:g}: {statistics.median(rates[value]):.0f}" for value in values)
        say(f"tuning: {name} = {best[name]:g} (median req/s {medians})")
    return best, trials


def write(best: dict[str, int | float], trials: list[dict[str, Any]], out: Path) -> Path:
    """reports/bench/tuning-<timestamp>.json; its path."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"tuning-{time.strftime('%Y%m%dT%H%M%S')}.json"
    path.write_text(json.dumps({"grid": GRID, "best": best, "trials": trials}, indent=2) + "\n")
    return path


def table(best: dict[str, int | float], trials: list[dict[str, Any]]) -> str:
    """Every trial, then the settings that won."""
    lines = [f"{'settings':<72}{'round':>6}{'req/s':>9}{'p95 ms':>9}"]
    for trial in trials:
        shown = " ".join(f"{k}={v:g}" for k, v in trial["settings"].items())
        lines.append(f"{shown:<72}{trial['round']:>6}{trial['rps']:>9.1f}{trial['p95_ms']:>9.1f}")
    lines.append("best: " + " ".join(f"{k}={v:g}" for k, v in best.items()))
    lines.append("(the benchmark runs benchmarks/peer_config.py's TUNED_FASTAPI: put the best there)")
    return "\n".join(lines)
