"""The benchmark's report: a summary with the goals, the table, the JSON, the plots and the history line."""

from __future__ import annotations

import csv
import json
import math
import statistics
from pathlib import Path
from typing import Any

# Issue 23's goals on this machine (2 cores), ratios from the same run; the render goal is issue 8's.
GOAL_SERVED_OVER_BEST_PEER = 1.0  # throughput at the main load, with p95 no worse than that peer's
GOAL_SERVED_OVER_RAW = 0.85
GOAL_SERVED_P95_MS = 30.0
GOAL_MYSQL_OVER_SQLITE = 0.95
GOAL_ONE_CLIENT_P50_MARGIN_MS = 1.5  # served's p50 at 1 client over the hand-tuned FastAPI service's
GOAL_COLD_START_S = 1.5
GOAL_RENDER_S = 5.0
# In the table's order. served_trivial_model: the served app with a near-free encoder (benchmarks/trivial_model.py),
# serving's own cost; served_ray_defaults: the served app with Ray Serve's defaults (benchmarks/ray_defaults.py);
# floor_uvicorn and floor_serve: one FastAPI route without a model under uvicorn and under Ray Serve
# (benchmarks/http_floor.py), what Ray Serve's request path costs beyond uvicorn's.
SYSTEMS = (
    "naive",
    "fastapi_tuned",
    "bentoml",
    "served",
    "served_mysql",
    "served_ray_defaults",
    "served_trivial_model",
    "floor_uvicorn",
    "floor_serve",
)
PEERS = ("naive", "fastapi_tuned", "bentoml")  # what a user would pick instead of the toolkit
CURVE_CLIENTS = (1, 4, 16, 64)
# The generation part (benchmarks/generation.py): the served plain-language app and the naive generator, in the
# table's order, at one streaming reader alone and at as many as the served app decodes in one batch.
GENERATION_SYSTEMS = ("served", "naive")
GENERATION_CLIENTS = (1, 8)
HISTORY = "history.csv"
BREAKDOWN_SHOWN = 5  # processes named per system in the table's CPU breakdown
COLOURS = {
    "naive": "tab:gray",
    "fastapi_tuned": "tab:orange",
    "bentoml": "tab:green",
    "served": "tab:blue",
    "served_mysql": "tab:purple",
    "served_ray_defaults": "tab:brown",
    "served_trivial_model": "tab:cyan",
    "floor_uvicorn": "tab:pink",
    "floor_serve": "tab:red",
}


def median(values: list[float]) -> float:
    """The median, NaN for no values (a system the run did not measure)."""
    return statistics.median(values) if values else float("nan")


def ratio(numerator: float, denominator: float) -> float:
    """numerator / denominator, NaN where either is missing or the denominator is 0."""
    if math.isnan(numerator) or math.isnan(denominator) or denominator == 0:
        return float("nan")
    return numerator / denominator


def _verdict(*figures: float) -> bool | None:
    """None when a figure the goal needs was not measured (NaN); True otherwise, for the caller to refine."""
    return None if any(math.isnan(f) for f in figures) else True


def _window_row(windows: list[dict[str, Any]]) -> dict[str, float]:
    return {
        "rps": median([w["load"]["rps"] for w in windows]),
        "p50_ms": median([w["load"]["p50_ms"] for w in windows]),
        "p95_ms": median([w["load"]["p95_ms"] for w in windows]),
        "p99_ms": median([w["load"]["p99_ms"] for w in windows]),
        "errors": sum(w["load"]["errors"] for w in windows),
        "server_cores": median([w["server_cores"] for w in windows]),
        "client_cores": median([w["client_cores"] for w in windows]),
        "rest_cores": median([w.get("rest_cores", float("nan")) for w in windows]),
        "foreign_cores_max": max((w["foreign_cores"] for w in windows), default=float("nan")),
        "machine_cores": median([w["machine_cores"] for w in windows]),
        "rps_min": min((w["load"]["rps"] for w in windows), default=float("nan")),
        "rps_max": max((w["load"]["rps"] for w in windows), default=float("nan")),
        "server_cores_by_process": _by_process(windows),
    }


def _by_process(windows: list[dict[str, Any]]) -> dict[str, float]:
    """The median cores of each kind of server process over the windows (0 in a window without it), largest first."""
    labels = {label for w in windows for label in w.get("server_cores_by_process", {})}
    cores = {label: median([w.get("server_cores_by_process", {}).get(label, 0.0) for w in windows]) for label in labels}
    return dict(sorted(cores.items(), key=lambda item: -item[1]))


def summarize(document: dict[str, Any]) -> dict[str, Any]:
    """Medians over the repetitions, the load curve, the ratios of the same run, and each goal with its verdict
    (None: the run did not measure what it needs)."""
    raw: dict[str, list[float]] = {}
    for row in document["raw"]:
        raw.setdefault(f"{row['variant']}_batch{row['batch_size']}", []).append(row["sentences_per_s"])
    # A limit is the best the model did: other people's work on the machine can only lower it.
    raw_best = {name: max(values) for name, values in raw.items()}
    http = {s: _window_row([w for w in document["http"] if w["system"] == s]) for s in SYSTEMS}
    curve: dict[str, dict[int, dict[str, float]]] = {}
    for window in document.get("curve", []):
        curve.setdefault(window["system"], {})[window["load"]["clients"]] = _window_row([window])
    nan = float("nan")
    served, naive = http["served"], http["naive"]
    peer = document.get("best_peer")
    best = http[peer] if peer else {"rps": nan, "p95_ms": nan}
    served_over_peer = ratio(served["rps"], best["rps"])
    served_over_raw = ratio(served["rps"], raw_best.get("int8_batch32", nan))
    mysql_over_sqlite = ratio(http["served_mysql"]["rps"], served["rps"])
    one_client = {s: curve.get(s, {}).get(1, {}).get("p50_ms", nan) for s in ("served", "fastapi_tuned")}
    one_client_gap = one_client["served"] - one_client["fastapi_tuned"]
    colds = [c["to_first_answer_s"] for c in document["cold_start"]]
    cold = max(colds, default=nan)
    generation: dict[str, dict[int, dict[str, Any]]] = {}
    for window in document.get("generation", []):  # absent from the runs before the generation part
        generation.setdefault(window["system"], {})[window["clients"]] = window
    render = (document.get("render_500_apps_s") or {}).get("total", nan)
    # NaN unless both floors ran.
    serve_path = _core_ms_per_request(http["floor_serve"]) - _core_ms_per_request(http["floor_uvicorn"])
    reach = ceiling_reach(
        len(document["machine"]["cores"]),
        best if peer else None,
        serve_path,
        raw_best.get("int8_batch32", nan),
    )
    goal_peer = f"served >= {GOAL_SERVED_OVER_BEST_PEER:g}x the best peer ({peer}) with p95 no worse"
    goal_raw = f"served >= {GOAL_SERVED_OVER_RAW:.0%} of raw int8 batch 32"
    goal_p95 = f"served p95 <= {GOAL_SERVED_P95_MS:g} ms"
    goals: dict[str, bool | None] = {
        goal_peer: _verdict(served_over_peer)
        and served_over_peer >= GOAL_SERVED_OVER_BEST_PEER
        and served["p95_ms"] <= best["p95_ms"],
        goal_raw: _verdict(served_over_raw) and served_over_raw >= GOAL_SERVED_OVER_RAW,
        goal_p95: _verdict(served["p95_ms"]) and served["p95_ms"] <= GOAL_SERVED_P95_MS,
        f"served_mysql >= {GOAL_MYSQL_OVER_SQLITE:.0%} of served (SQLite)": _verdict(mysql_over_sqlite)
        and mysql_over_sqlite >= GOAL_MYSQL_OVER_SQLITE,
        f"1 client: served p50 within {GOAL_ONE_CLIENT_P50_MARGIN_MS:g} ms of fastapi_tuned": _verdict(one_client_gap)
        and one_client_gap <= GOAL_ONE_CLIENT_P50_MARGIN_MS,
        f"cold start < {GOAL_COLD_START_S:g} s (every one)": _verdict(cold) and cold < GOAL_COLD_START_S,
        f"render of 500 apps < {GOAL_RENDER_S:g} s": _verdict(render) and render < GOAL_RENDER_S,
    }
    # The goals the served app missed that no Ray Serve app could meet on this machine, by the floors (NaN: unknown).
    # Against the peer's measured rate, not the ratio at equal CPU: a peer that left cores unused (fastapi_tuned when
    # one worker holds most connections) is within a Ray Serve app's reach although the ratio is below 1, and the
    # ceiling's p95 estimate is above the peer's exactly when its rate is below the peer's.
    beyond_reach = {
        goal_peer: (
            reach["rps"] < GOAL_SERVED_OVER_BEST_PEER * best["rps"],
            f"any Ray Serve app: at most {reach['rps']:.0f} req/s here against {peer}'s {best['rps']:.0f}; "
            f"{reach['over_best_peer']:.2f}x when both keep every core busy",
        ),
        goal_raw: (reach["over_raw"] < GOAL_SERVED_OVER_RAW, f"any Ray Serve app: at most {reach['over_raw']:.0%}"),
        goal_p95: (
            reach["p95_ms"] > GOAL_SERVED_P95_MS,
            f"a Ray Serve app at the ceiling, its latencies spread like {peer}'s: {reach['p95_ms']:.1f} ms",
        ),
    }
    out_of_reach = {goal: why for goal, (beyond, why) in beyond_reach.items() if beyond and goals[goal] is False}
    return {
        "raw_sentences_per_s": raw_best,
        "http": http,
        "curve": curve,
        "best_peer": peer,
        "served_over_best_peer": served_over_peer,
        "served_over_naive": ratio(served["rps"], naive["rps"]),
        "served_over_raw_int8_batch32": served_over_raw,
        "served_mysql_over_served": mysql_over_sqlite,
        "served_over_ray_defaults": ratio(served["rps"], http["served_ray_defaults"]["rps"]),
        "one_client_p50_gap_ms": one_client_gap,
        # CPU per request, server and load generator together: what the two cores are divided into.
        "served_core_ms_per_request": _core_ms_per_request(served),
        "serving_core_ms_per_request": _core_ms_per_request(http["served_trivial_model"]),
        "serve_path_core_ms_per_request": serve_path,
        "ceiling_over_best_peer": reach["over_best_peer"],
        "ceiling_rps": reach["rps"],
        "ceiling_over_raw": reach["over_raw"],
        "ceiling_p95_ms": reach["p95_ms"],
        "core_ms_per_request": {s: _core_ms_per_request(row) for s, row in http.items()},
        "cold_start_s": cold,
        "scale_up_s": max((c["scale_up_to_running_s"] for c in document["cold_start"]), default=nan),
        "render_500_apps_s": render,
        "generation": generation,
        "generation_served_over_naive": {
            clients: ratio(_tokens_per_s(generation, "served", clients), _tokens_per_s(generation, "naive", clients))
            for clients in GENERATION_CLIENTS
        },
        "goals": goals,
        "out_of_reach": out_of_reach,
    }


def ceiling(peer_core_ms: float, serve_path_core_ms: float) -> float:
    """The most throughput any Ray Serve app can reach against the peer on the same cores when both keep every core
    busy: the peer's CPU per request (server and load generator) over the same with Ray Serve's request path in place
    of uvicorn's (`serve_path_core_ms`: floor_serve's CPU per request minus floor_uvicorn's). The served app does at
    least the peer's work per request (the same model code, validation and batching) plus that path. A peer that
    leaves cores unused (fastapi_tuned when one worker holds most connections) measures below its CPU-bound rate,
    and the served app may then beat it in that window."""
    return ratio(peer_core_ms, peer_core_ms + serve_path_core_ms)


def ceiling_reach(
    cores: int, peer: dict[str, float] | None, serve_path_core_ms: float, raw_sps: float
) -> dict[str, float]:
    """What the ceiling allows a Ray Serve app that does the peer's work per request on `cores` cores:
    `over_best_peer` (ceiling()), `rps` (every core busy: cores over the peer's CPU per request plus the path),
    `over_raw` (that rate over the raw model's), and `p95_ms`: the p95 at the peer's clients at that rate with the
    peer's spread of latencies. A closed loop's mean latency is clients / throughput (Little's law), so the peer's
    p95 scales by its measured rate over the ceiling's; an estimate, not a bound, as a Ray Serve app could spread its
    latencies less than the peer does. NaN throughout without both floors or a peer."""
    nan = float("nan")
    if peer is None:
        return {"over_best_peer": nan, "rps": nan, "over_raw": nan, "p95_ms": nan}
    peer_core_ms = _core_ms_per_request(peer)
    rps = ratio(cores * 1000, peer_core_ms + serve_path_core_ms)
    return {
        "over_best_peer": ceiling(peer_core_ms, serve_path_core_ms),
        "rps": rps,
        "over_raw": ratio(rps, raw_sps),
        "p95_ms": ratio(peer["p95_ms"] * peer["rps"], rps),
    }


def _tokens_per_s(generation: dict[str, dict[int, dict[str, Any]]], system: str, clients: int) -> float:
    return float(generation.get(system, {}).get(clients, {}).get("tokens_per_s", float("nan")))


def _core_ms_per_request(row: dict[str, float]) -> float:
    return ratio((row["server_cores"] + row["client_cores"]) * 1000, row["rps"])


def load_generators(document: dict[str, Any]) -> str:
    """The load generator(s) of the run's windows, e.g. `wrk 4.1.0`."""
    return ", ".join(sorted({w["load"]["generator"] for w in [*document["http"], *document.get("curve", [])]}))


def _measured(summary: dict[str, Any]) -> list[str]:
    return [s for s in SYSTEMS if not math.isnan(summary["http"][s]["rps"])]


def table(document: dict[str, Any], summary: dict[str, Any]) -> str:
    """The table, the load curve, the ratios and the goals, as printed at the end of a run."""
    options = document["options"]
    lines = [
        f"zero-shot, {options['clients']} closed-loop clients ({load_generators(document)}), median of"
        f" {options['repetitions']} repetitions of {options['duration_s']:g} s; {document['env']} env;"
        f" commit {document['commit']}; {document['machine'].get('cpu', '?')}"
        f"{' (SMOKE RUN: not the benchmark)' if document.get('smoke') else ''}",
        f"{'system':<22}{'req/s':>9}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'errors':>8}{'server CPU':>12}"
        f"{'client CPU':>12}{'rest CPU':>10}{'others CPU':>12}{'unused CPU':>12}",
    ]
    cores = len(document["machine"]["cores"])
    for system in _measured(summary):
        row = summary["http"][system]
        lines.append(
            f"{system:<22}{row['rps']:>9.1f}{row['p50_ms']:>9.1f}{row['p95_ms']:>9.1f}{row['p99_ms']:>9.1f}"
            f"{row['errors']:>8}{row['server_cores']:>12.2f}{row['client_cores']:>12.2f}{row['rest_cores']:>10.2f}"
            f"{row['foreign_cores_max']:>12.2f}{max(0.0, cores - row['machine_cores']):>12.2f}"
        )
    by_name: dict[str, list[dict[str, Any]]] = {}
    for row in document["raw"]:
        by_name.setdefault(f"raw {row['variant']} batch {row['batch_size']}", []).append(row)
    for name, rows in by_name.items():
        top = max(rows, key=lambda r: r["sentences_per_s"])
        lines.append(
            f"{name:<22}{top['sentences_per_s']:>9.1f}{top['batch_p50_ms']:>9.1f}{'':>35}{top['cpu_cores']:>12.2f}"
        )
    lines.append(
        "(HTTP systems: median of the repetitions; raw: the best repetition, sentences/s in-process, p50 = ms per"
        " batch; CPU in cores averaged over the window: server = the system's processes (served_mysql: with"
        " MariaDB's), rest = the rest of this benchmark (the idle other servers), others = cores used outside this"
        " benchmark, the worst window; unused = cores nobody used: a system that leaves CPU unused is bound by"
        " something else)"
    )
    lines.append(f"where the server CPU went at {options['clients']} clients (cores, median; largest first):")
    for system in _measured(summary):
        split = summary["http"][system]["server_cores_by_process"]
        shown = ", ".join(f"{label} {cores:.2f}" for label, cores in list(split.items())[:BREAKDOWN_SHOWN])
        lines.append(f"  {system}: {shown}")
    if summary["curve"]:
        systems = [s for s in SYSTEMS if s in summary["curve"]]
        lines.append("load curve, closed-loop clients: req/s, p50 / p95 ms (one window each)")
        lines.append(f"{'clients':>8}" + "".join(f"{s:>28}" for s in systems))
        clients = sorted({c for points in summary["curve"].values() for c in points})
        for count in clients:
            cells = []
            for system in systems:
                point = summary["curve"][system].get(count)
                cells.append(
                    f"{point['rps']:>10.1f} {point['p50_ms']:>7.1f} /{point['p95_ms']:>7.1f}" if point else f"{'':>28}"
                )
            lines.append(f"{count:>8}" + "".join(f"{cell:>28}" for cell in cells))
    lines.append(
        f"best peer: {summary['best_peer']}; served / best peer = {summary['served_over_best_peer']:.2f}x;"
        f" served / naive = {summary['served_over_naive']:.2f}x; served / raw int8 batch 32 ="
        f" {summary['served_over_raw_int8_batch32']:.0%}"
    )
    lines.append(
        f"served_mysql / served = {summary['served_mysql_over_served']:.0%}; served / served_ray_defaults ="
        f" {summary['served_over_ray_defaults']:.2f}x (what the toolkit's settings buy); 1 client: served p50 -"
        f" fastapi_tuned p50 = {summary['one_client_p50_gap_ms']:+.2f} ms"
    )
    cost = ", ".join(f"{s} {v:.2f}" for s, v in summary["core_ms_per_request"].items() if not math.isnan(v))
    lines.append(f"CPU per request (server + client), core-ms: {cost}")
    if not math.isnan(summary["serve_path_core_ms_per_request"]):
        lines.append(
            f"Ray Serve's request path over uvicorn's (floor_serve - floor_uvicorn):"
            f" {summary['serve_path_core_ms_per_request']:.2f} core-ms a request; with it, a Ray Serve app reaches at"
            f" most {summary['ceiling_over_best_peer']:.2f}x the throughput of the best peer ({summary['best_peer']})"
            " when both keep every core busy"
        )
        of_raw = summary["ceiling_over_raw"]
        lines.append(
            f"  at most {summary['ceiling_rps']:.0f} req/s on these {cores} cores"
            + ("" if math.isnan(of_raw) else f" ({of_raw:.0%} of raw int8 batch 32)")
            + f", where {summary['best_peer']}'s spread of latencies gives p95 {summary['ceiling_p95_ms']:.1f} ms"
            f" at {options['clients']} clients"
        )
    if document.get("bentoml_mean_batch") is not None:
        lines.append(f"bentoml's mean batch at {options['clients']} clients: {document['bentoml_mean_batch']:.1f}")
    logged = document.get("prediction_rows") or {}
    if logged:
        lines.append("prediction log rows at the end: " + ", ".join(f"{db} {n}" for db, n in logged.items()))
    colds = ", ".join(f"{c['to_first_answer_s']:.2f} s" for c in document["cold_start"])
    scale_ups = ", ".join(f"{c['scale_up_to_running_s']:.2f} s" for c in document["cold_start"])
    if colds:
        lines.append(f"cold start, new app (deploy -> first answer, model from S3, verified): {colds}")
        lines.append(f"cold start, one more replica (deploy -> RUNNING, model from S3, verified): {scale_ups}")
    if not math.isnan(summary["render_500_apps_s"]):
        lines.append(f"render of 500 apps: {summary['render_500_apps_s']:.2f} s")
    lines += generation_table(summary)
    verdicts = {True: "PASS", False: "FAIL", None: "n/a "}
    out_of_reach = summary["out_of_reach"]
    lines += [
        f"  {verdicts[ok]}  {goal}" + (f" (out of reach here: {out_of_reach[goal]})" if goal in out_of_reach else "")
        for goal, ok in summary["goals"].items()
    ]
    return "\n".join(lines)


def generation_table(summary: dict[str, Any]) -> list[str]:
    """The generation part's lines of the table: each system at each client count, and served / naive tokens/s."""
    measured = summary["generation"]
    if not measured:
        return []
    lines = [
        "generation: plain-language /generate/stream, held-out notes, closed-loop clients (one window each; others"
        " CPU = cores used outside this benchmark meanwhile)",
        f"{'system':<10}{'clients':>8}{'tokens/s':>10}{'req/s':>8}{'TTFT p50 ms':>13}{'TTFT p95 ms':>13}"
        f"{'request p95 ms':>16}{'errors':>8}{'others CPU':>12}",
    ]
    for system in [s for s in GENERATION_SYSTEMS if s in measured]:
        for clients, row in sorted(measured[system].items()):
            lines.append(
                f"{system:<10}{clients:>8}{row['tokens_per_s']:>10.1f}{row['rps']:>8.2f}{row['ttft_p50_ms']:>13.1f}"
                f"{row['ttft_p95_ms']:>13.1f}{row['request_p95_ms']:>16.1f}{row['errors']:>8}"
                f"{row.get('foreign_cores', float('nan')):>12.2f}"
            )
    ratios = [
        f"{c} client(s) {r:.2f}x" for c, r in summary["generation_served_over_naive"].items() if not math.isnan(r)
    ]
    if ratios:
        lines.append(f"generation, served / naive tokens/s: {', '.join(ratios)}")
    return lines


def plot(summary: dict[str, Any], path: Path, title: str) -> None:
    """Throughput and p95 per system at the main load; the raw limits as throughput bars beside them."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    systems = _measured(summary)
    names = [*systems, *(f"raw {n.replace('_batch', ' b')}" for n in summary["raw_sentences_per_s"])]
    rates = [summary["http"][s]["rps"] for s in systems] + list(summary["raw_sentences_per_s"].values())
    colours = [COLOURS[s] for s in systems] + ["tab:olive"] * len(summary["raw_sentences_per_s"])
    figure, (left, right) = plt.subplots(1, 2, figsize=(13, 4.6))
    left.bar(names, rates, color=colours)
    left.set_ylabel("requests (raw: sentences) per second")
    # Log: the naive service (tens) and the HTTP floors (thousands) on one axis with the rest.
    left.set_yscale("log")
    left.set_title("throughput")
    plt.setp(left.get_xticklabels(), rotation=30, ha="right")
    right.bar(systems, [summary["http"][s]["p95_ms"] for s in systems], color=colours[: len(systems)])
    right.axhline(GOAL_SERVED_P95_MS, color="tab:red", linestyle="--", label=f"goal {GOAL_SERVED_P95_MS:g} ms")
    right.set_ylabel("ms")
    right.set_yscale("log")
    right.set_title("p95 latency")
    plt.setp(right.get_xticklabels(), rotation=30, ha="right")
    right.legend()
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def plot_curve(summary: dict[str, Any], path: Path, title: str) -> None:
    """Throughput, p50 and p95 against closed-loop clients for each system of the load curve."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 4.6))
    for system in [s for s in SYSTEMS if s in summary["curve"]]:
        points = summary["curve"][system]
        clients = sorted(points)
        width = 2.6 if system in ("served", summary["best_peer"]) else 1.4
        colour = COLOURS[system]
        left.plot(clients, [points[c]["rps"] for c in clients], "o-", color=colour, linewidth=width, label=system)
        right.plot(
            clients, [points[c]["p50_ms"] for c in clients], "o-", color=colour, linewidth=width, label=f"{system} p50"
        )
        right.plot(
            clients, [points[c]["p95_ms"] for c in clients], "s--", color=colour, linewidth=width, label=f"{system} p95"
        )
    for axis in (left, right):
        axis.set_xscale("log", base=2)
        axis.set_xlabel("closed-loop clients")
        axis.grid(True, which="both", alpha=0.3)
    left.set_ylabel("requests per second")
    left.set_title("throughput")
    left.legend()
    right.set_ylabel("ms")
    right.set_yscale("log")
    right.set_title("latency")
    right.legend(fontsize="small", ncol=2)
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _figure(value: float, digits: int) -> str:
    return "" if math.isnan(value) else f"{value:.{digits}f}"


def history_row(document: dict[str, Any], summary: dict[str, Any]) -> dict[str, str]:
    """The run's line in history.csv (empty cells for what it did not measure)."""
    http, curve = summary["http"], summary["curve"]
    row = {
        "timestamp": document["timestamp"],
        "commit": document["commit"],
        "env": document["env"],
        "load_generator": load_generators(document),
        "cpu": document["machine"].get("cpu", ""),
    }
    for system in SYSTEMS:
        row[f"{system}_rps"] = _figure(http[system]["rps"], 1)
        row[f"{system}_p95_ms"] = _figure(http[system]["p95_ms"], 1)
    for system, points in curve.items():
        for clients, point in points.items():
            row[f"curve_{system}_{clients}_rps"] = _figure(point["rps"], 1)
            row[f"curve_{system}_{clients}_p50_ms"] = _figure(point["p50_ms"], 2)
            row[f"curve_{system}_{clients}_p95_ms"] = _figure(point["p95_ms"], 2)
    row |= {
        "best_peer": summary["best_peer"] or "",
        "served_over_best_peer": _figure(summary["served_over_best_peer"], 3),
        "served_core_ms_per_request": _figure(summary["served_core_ms_per_request"], 2),
        "serving_core_ms_per_request": _figure(summary["serving_core_ms_per_request"], 2),
        "serve_path_core_ms_per_request": _figure(summary["serve_path_core_ms_per_request"], 2),
        "ceiling_over_best_peer": _figure(summary["ceiling_over_best_peer"], 3),
        "ceiling_rps": _figure(summary["ceiling_rps"], 1),
        "ceiling_over_raw": _figure(summary["ceiling_over_raw"], 3),
        "ceiling_p95_ms": _figure(summary["ceiling_p95_ms"], 1),
        "raw_int8_batch32_sps": _figure(summary["raw_sentences_per_s"].get("int8_batch32", float("nan")), 1),
        "served_over_naive": _figure(summary["served_over_naive"], 2),
        "served_over_raw": _figure(summary["served_over_raw_int8_batch32"], 3),
        "served_mysql_over_served": _figure(summary["served_mysql_over_served"], 3),
        "served_over_ray_defaults": _figure(summary["served_over_ray_defaults"], 2),
        "one_client_p50_gap_ms": _figure(summary["one_client_p50_gap_ms"], 2),
        "cold_start_s": _figure(summary["cold_start_s"], 2),
        "scale_up_s": _figure(summary["scale_up_s"], 2),
        "render_500_apps_s": _figure(summary["render_500_apps_s"], 2),
        "foreign_cores_max": _figure(max(h["foreign_cores_max"] for h in http.values()), 2),
        "goals_passed": f"{sum(ok is True for ok in summary['goals'].values())}/{len(summary['goals'])}",
    }
    for system in GENERATION_SYSTEMS:
        for clients in GENERATION_CLIENTS:
            point = summary["generation"].get(system, {}).get(clients, {})
            row[f"generation_{system}_{clients}_tokens_per_s"] = _figure(point.get("tokens_per_s", float("nan")), 1)
            row[f"generation_{system}_{clients}_ttft_p95_ms"] = _figure(point.get("ttft_p95_ms", float("nan")), 1)
    return row


def write(document: dict[str, Any], summary: dict[str, Any], out: Path, history: bool = True) -> list[Path]:
    """<out>/<timestamp>.json, its plots (.png, and -curve.png with a load curve) and, with `history`, one more
    line in <out>/history.csv; returns the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    stem = document["timestamp"].replace(":", "").replace("-", "")[:15]
    json_path = out / f"{stem}.json"
    json_path.write_text(json.dumps(document, indent=2, sort_keys=True, default=str) + "\n")
    written = [json_path]
    cores = len(document["machine"]["cores"])
    png_path = out / f"{stem}.png"
    peer = summary["best_peer"]
    plot(summary, png_path, f"zero-shot on {cores} cores: served = {summary['served_over_best_peer']:.2f}x {peer}")
    written.append(png_path)
    if summary["curve"]:
        curve_path = out / f"{stem}-curve.png"
        plot_curve(summary, curve_path, f"zero-shot on {cores} cores: load curve (best peer: {peer})")
        written.append(curve_path)
    if history:
        append_history(out / HISTORY, history_row(document, summary))
        written.append(out / HISTORY)
    return written


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
