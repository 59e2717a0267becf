"""The benchmark's report: a summary with the goals, the table, the JSON, the plot and the history line."""

from __future__ import annotations

import csv
import json
import statistics
from pathlib import Path
from typing import Any

# Issue 8's goals on this machine (2 cores), ratios from the same run.
GOAL_SERVED_OVER_NAIVE = 8.0
GOAL_SERVED_P95_MS = 50.0
GOAL_SERVED_OVER_RAW = 0.6
GOAL_COLD_START_S = 3.0
GOAL_RENDER_S = 5.0
# served_trivial_model: the served app with a near-free encoder (benchmarks/trivial_model.py), serving's own cost.
SYSTEMS = ("naive", "served", "served_trivial_model")
HISTORY = "history.csv"


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def summarize(document: dict[str, Any]) -> dict[str, Any]:
    """Medians over the repetitions, the ratios of the same run, and each goal with its verdict."""
    raw: dict[str, list[float]] = {}
    for row in document["raw"]:
        raw.setdefault(f"{row['variant']}_batch{row['batch_size']}", []).append(row["sentences_per_s"])
    # A limit is the best the model did: other people's work on the machine can only lower it.
    raw_best = {name: max(values) for name, values in raw.items()}
    http: dict[str, dict[str, float]] = {}
    for system in SYSTEMS:
        windows = [w for w in document["http"] if w["system"] == system]
        http[system] = {
            "rps": _median([w["load"]["rps"] for w in windows]),
            "p50_ms": _median([w["load"]["p50_ms"] for w in windows]),
            "p95_ms": _median([w["load"]["p95_ms"] for w in windows]),
            "p99_ms": _median([w["load"]["p99_ms"] for w in windows]),
            "errors": sum(w["load"]["errors"] for w in windows),
            "server_cores": _median([w["server_cores"] for w in windows]),
            "client_cores": _median([w["client_cores"] for w in windows]),
            "foreign_cores_max": max((w["foreign_cores"] for w in windows), default=float("nan")),
            "rps_min": min((w["load"]["rps"] for w in windows), default=float("nan")),
            "rps_max": max((w["load"]["rps"] for w in windows), default=float("nan")),
        }
    served, naive, trivial = http["served"], http["naive"], http["served_trivial_model"]
    served_over_naive = served["rps"] / naive["rps"]
    served_over_raw = served["rps"] / raw_best["int8_batch32"]
    cold = max((c["to_first_answer_s"] for c in document["cold_start"]), default=float("nan"))
    scale_up = max((c["scale_up_to_running_s"] for c in document["cold_start"]), default=float("nan"))
    render = document["render_500_apps_s"]["total"]
    goals = {
        f"served >= {GOAL_SERVED_OVER_NAIVE:g}x naive at p95 <= {GOAL_SERVED_P95_MS:g} ms": served_over_naive
        >= GOAL_SERVED_OVER_NAIVE
        and served["p95_ms"] <= GOAL_SERVED_P95_MS,
        f"served >= {GOAL_SERVED_OVER_RAW:.0%} of raw int8 batch 32": served_over_raw >= GOAL_SERVED_OVER_RAW,
        f"cold start < {GOAL_COLD_START_S:g} s (slowest)": cold < GOAL_COLD_START_S,
        f"render of 500 apps < {GOAL_RENDER_S:g} s": render < GOAL_RENDER_S,
    }
    return {
        "raw_sentences_per_s": raw_best,
        "http": http,
        "served_over_naive": served_over_naive,
        "served_over_raw_int8_batch32": served_over_raw,
        # CPU per answered request, server and load generator together: what the two cores are divided into.
        "served_core_ms_per_request": _core_ms_per_request(served),
        "serving_core_ms_per_request": _core_ms_per_request(trivial),
        "cold_start_s": cold,
        "scale_up_s": scale_up,
        "render_500_apps_s": render,
        "goals": goals,
    }


def _core_ms_per_request(row: dict[str, float]) -> float:
    return (row["server_cores"] + row["client_cores"]) * 1000 / row["rps"]


def load_generators(document: dict[str, Any]) -> str:
    """The load generator(s) of the run's windows, e.g. `wrk 4.1.0`."""
    return ", ".join(sorted({w["load"]["generator"] for w in document["http"]}))


def table(document: dict[str, Any], summary: dict[str, Any]) -> str:
    """The table, the ratios and the goals, as printed at the end of a run."""
    reps = document["options"]["repetitions"]
    lines = [
        f"zero-shot, {document['options']['clients']} closed-loop clients ({load_generators(document)}), median of"
        f" {reps} repetitions of {document['options']['duration_s']:g} s; {document['env']} env;"
        f" commit {document['commit']}",
        f"{'system':<22}{'req/s':>9}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'server CPU':>12}{'client CPU':>12}"
        f"{'others CPU':>12}",
    ]
    for system in SYSTEMS:
        row = summary["http"][system]
        lines.append(
            f"{system:<22}{row['rps']:>9.1f}{row['p50_ms']:>9.1f}{row['p95_ms']:>9.1f}{row['p99_ms']:>9.1f}"
            f"{row['server_cores']:>12.2f}{row['client_cores']:>12.2f}{row['foreign_cores_max']:>12.2f}"
        )
    by_name: dict[str, list[dict[str, Any]]] = {}
    for row in document["raw"]:
        by_name.setdefault(f"raw {row['variant']} batch {row['batch_size']}", []).append(row)
    for name, rows in by_name.items():
        best = max(rows, key=lambda r: r["sentences_per_s"])
        lines.append(
            f"{name:<22}{best['sentences_per_s']:>9.1f}{best['batch_p50_ms']:>9.1f}{'':>9}{'':>9}"
            f"{best['cpu_cores']:>12.2f}{'':>12}{'':>12}"
        )
    lines.append(
        "(HTTP systems: median of the repetitions; raw: the best repetition, sentences/s in-process, p50 = ms per"
        " batch; CPU in cores averaged over the window; others = cores used outside this benchmark, the worst window)"
    )
    lines.append(
        f"served / naive = {summary['served_over_naive']:.2f}x; served / raw int8 batch 32 ="
        f" {summary['served_over_raw_int8_batch32']:.0%}"
    )
    lines.append(
        f"CPU per request (server + client): served {summary['served_core_ms_per_request']:.2f} core-ms, of which"
        f" serving alone (served_trivial_model: same app, same load, near-free encoder)"
        f" {summary['serving_core_ms_per_request']:.2f}"
    )
    colds = ", ".join(f"{c['to_first_answer_s']:.2f} s" for c in document["cold_start"])
    scale_ups = ", ".join(f"{c['scale_up_to_running_s']:.2f} s" for c in document["cold_start"])
    lines.append(f"cold start, new app (deploy -> first answer, model from S3, verified): {colds}")
    lines.append(f"cold start, one more replica (deploy -> RUNNING, model from S3, verified): {scale_ups}")
    lines.append(f"render of 500 apps: {summary['render_500_apps_s']:.2f} s")
    lines += [f"  {'PASS' if ok else 'FAIL'}  {goal}" for goal, ok in summary["goals"].items()]
    return "\n".join(lines)


def plot(summary: dict[str, Any], path: Path, title: str) -> None:
    """Throughput and p95 per system; the raw limits as throughput bars beside them."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [*SYSTEMS, *(f"raw {n.replace('_batch', ' b')}" for n in summary["raw_sentences_per_s"])]
    rates = [summary["http"][s]["rps"] for s in SYSTEMS] + list(summary["raw_sentences_per_s"].values())
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    colours = ["tab:gray", "tab:blue", "tab:cyan"] + ["tab:olive"] * len(summary["raw_sentences_per_s"])
    left.bar(names, rates, color=colours)
    left.set_ylabel("requests (raw: sentences) per second")
    left.set_title("throughput")
    plt.setp(left.get_xticklabels(), rotation=30, ha="right")
    p95 = [summary["http"][s]["p95_ms"] for s in SYSTEMS]
    right.bar(list(SYSTEMS), p95, color=colours[: len(SYSTEMS)])
    right.axhline(GOAL_SERVED_P95_MS, color="tab:red", linestyle="--", label=f"goal {GOAL_SERVED_P95_MS:g} ms")
    right.set_ylabel("ms")
    right.set_yscale("log")
    right.set_title("p95 latency")
    right.legend()
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def write(document: dict[str, Any], summary: dict[str, Any], out: Path) -> list[Path]:
    """reports/bench/<timestamp>.json and .png, and one more line in history.csv; returns the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    stem = document["timestamp"].replace(":", "").replace("-", "")[:15]
    json_path = out / f"{stem}.json"
    json_path.write_text(json.dumps(document, indent=2, sort_keys=True, default=str) + "\n")
    png_path = out / f"{stem}.png"
    ratio = summary["served_over_naive"]
    plot(summary, png_path, f"zero-shot on {len(document['machine']['cores'])} cores: served = {ratio:.1f}x naive")
    history = out / HISTORY
    row = {
        "timestamp": document["timestamp"],
        "commit": document["commit"],
        "env": document["env"],
        "load_generator": load_generators(document),
        "naive_rps": f"{summary['http']['naive']['rps']:.1f}",
        "served_rps": f"{summary['http']['served']['rps']:.1f}",
        "served_p95_ms": f"{summary['http']['served']['p95_ms']:.1f}",
        "served_trivial_model_rps": f"{summary['http']['served_trivial_model']['rps']:.1f}",
        "served_core_ms_per_request": f"{summary['served_core_ms_per_request']:.2f}",
        "serving_core_ms_per_request": f"{summary['serving_core_ms_per_request']:.2f}",
        "raw_int8_batch32_sps": f"{summary['raw_sentences_per_s']['int8_batch32']:.1f}",
        "served_over_naive": f"{summary['served_over_naive']:.2f}",
        "served_over_raw": f"{summary['served_over_raw_int8_batch32']:.3f}",
        "cold_start_s": f"{summary['cold_start_s']:.2f}",
        "scale_up_s": f"{summary['scale_up_s']:.2f}",
        "render_500_apps_s": f"{summary['render_500_apps_s']:.2f}",
        "foreign_cores_max": f"{max(h['foreign_cores_max'] for h in summary['http'].values()):.2f}",
    }
    append_history(history, row)
    return [json_path, png_path, history]


def append_history(history: Path, row: dict[str, str]) -> None:
    """Append `row` to the CSV; when its columns changed since older rows, rewrite it with all of them."""
    rows: list[dict[str, str]] = []
    fields: list[str] = []
    if history.exists():
        with history.open(newline="", encoding="utf-8") as file:
            reader = csv.DictReader(file)
            rows = list(reader)
            fields = list(reader.fieldnames or [])
    columns = list(dict.fromkeys([*fields, *row]))
    if columns == fields:
        with history.open("a", newline="", encoding="utf-8") as file:
            csv.DictWriter(file, fieldnames=columns).writerow(row)
        return
    with history.open("w", newline="", encoding="utf-8") as file:
        writer = csv.DictWriter(file, fieldnames=columns, restval="")
        writer.writeheader()
        writer.writerows([*rows, row])
