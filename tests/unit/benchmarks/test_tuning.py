"""The tuning sweep: one setting at a time, each value measured once per round, the best median kept."""

from __future__ import annotations

from pathlib import Path

from benchmarks import tuning
from benchmarks.loadgen import LoadResult


def _result(rps: float) -> LoadResult:
    return LoadResult(16, 1.0, int(rps), 0, rps, 10.0, 20.0, 30.0, 0.01, "test")


def test_the_sweep_keeps_the_best_value_of_each_setting_in_turn() -> None:
    seen: list[dict[str, str]] = []

    def measure(settings: dict[str, str]) -> LoadResult:
        seen.append(settings)
        # Two workers, one thread, batches of 16 and a 2 ms wait do best; the rest costs throughput.
        penalty = sum(
            abs(float(settings[name]) - best)
            for name, best in (("UVICORN_WORKERS", 2), ("TUNED_THREADS", 1), ("TUNED_MAX_BATCH_SIZE", 16))
        )
        return _result(500 - 10 * penalty - abs(float(settings["TUNED_MAX_WAIT_MS"]) - 2))

    start = {"UVICORN_WORKERS": 1, "TUNED_THREADS": 2, "TUNED_MAX_BATCH_SIZE": 8, "TUNED_MAX_WAIT_MS": 5}
    best, trials = tuning.sweep(measure, rounds=2, start=start)

    assert best == {"UVICORN_WORKERS": 2, "TUNED_THREADS": 1, "TUNED_MAX_BATCH_SIZE": 16, "TUNED_MAX_WAIT_MS": 2}
    assert len(trials) == len(seen) == 2 * sum(len(values) for values in tuning.GRID.values())
    # The second round runs the values in the other order, so that a drifting host weighs on all of them.
    workers = [s["UVICORN_WORKERS"] for s in seen[:4]]
    assert workers == ["1", "2", "2", "1"]


def test_the_sweep_is_written_and_tabled(tmp_path: Path) -> None:
    best = {"UVICORN_WORKERS": 2}
    trials = [{"settings": best, "round": 0, "rps": 123.4, "p95_ms": 9.9}]
    path = tuning.write(best, trials, tmp_path)
    assert path.parent == tmp_path and path.name.startswith("tuning-")
    assert "UVICORN_WORKERS=2" in tuning.table(best, trials)
