"""`nox -s bench`: the served zero-shot app beside the systems a user would otherwise pick, in one run.

Usage: python -m benchmarks.serving [--env bench] [--clients 16] [--warmup-s 5] [--duration-s 20]
       [--repetitions 2] [--raw-s 5] [--cold-starts 2] [--curve-clients 1,4,16,64] [--only SYSTEM,...] [--quick]
       [--load-generator auto|wrk|aiohttp] [--out reports/bench] [--gpu] [--tune-fastapi] [--http-stacks]

On this machine, in one run:
1. render time of 500 generated apps (benchmarks.render_scale);
2. each system answers one request, which must match the raw model's answer (labels, order and scores);
3. per repetition: the raw model in-process (int8 and fp32, batch 1 and 32), then every HTTP system in alternating
   order under the same closed-loop load (benchmarks/loadgen.py, a process of its own):
   - naive: benchmarks/naive_zero_shot.py (FastAPI, torch fp32, one model call per request);
   - fastapi_tuned: benchmarks/tuned_fastapi.py (FastAPI, int8 ONNX, asyncio micro-batcher, one worker thread);
   - bentoml: benchmarks/bentoml_service.py under `bentoml serve` (adaptive batching), from its own virtualenv;
   - served: the zero-shot application of <env>'s Serve config on a local Ray started with the variables <env>
     renders (EnvPlan.ray_env), its prediction log on SQLite;
   - served_mysql: the same application with its prediction log on the local MariaDB (a database of its own);
   - served_ray_defaults: the same app with Ray Serve's defaults on a Ray of its own (benchmarks/ray_defaults.py);
   - served_trivial_model: the served app serving benchmarks/trivial_model.py, what serving costs alone;
   - floor_uvicorn and floor_serve: benchmarks/http_floor.py, the same route without a model, under uvicorn (as
     fastapi_tuned runs) and as a Serve app beside the served one (its replicas, resources and settings): what
     Ray Serve's request path costs beyond uvicorn's;
   every server pinned to the cores Ray runs on, and all of them up for the whole run;
4. the load curve: served and the strong peers (fastapi_tuned, bentoml) at each of --curve-clients;
5. replica cold start: a copy of the app with its model on S3 (LocalStack), from deploy to first answer;
6. generation, once the rest has stopped: the plain-language application of <env>'s Serve config on a Ray of its
   own beside the naive generator (benchmarks/naive_generate.py: FastAPI, transformers' generate per request,
   TextIteratorStreamer), both rewriting one held-out note alike first (greedy, the same model); then each streams
   held-out notes to 1 and 8 closed-loop clients (benchmarks/generation.py): tokens/s, TTFT, request p95, errors.
Each measurement waits for a quiet machine first and records the CPU others used meanwhile. Then the table, the
ratios and the goals on stdout, reports/bench/<timestamp>.json, its two plots and a line in
reports/bench/history.csv. A smoke run (--quick, --only, or less than the full measurement) writes its report
into reports/bench/smoke/ and no history line. `--gpu` runs the GPU comparison instead (benchmarks/gpu.py);
`--tune-fastapi` measures settings of the hand-tuned service instead (benchmarks/tuning.py); `--http-stacks` the
CPU a request costs FastAPI, the toolkit's FastAPI and a bare ASGI handler in-process (benchmarks/http_stacks.py).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import logging
import math
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psutil

from benchmarks import (
    cold_start,
    generation,
    gpu,
    http_stacks,
    loadgen,
    peers,
    raw,
    render_scale,
    report,
    trivial_model,
    tuning,
)
from benchmarks.machine import CpuWindow, load_average, run_windowed, say, tree, wait_for_quiet
from benchmarks.peer_config import BENTOML, TUNED_FASTAPI, ModelSettings
from benchmarks.peers import free_port
from benchmarks.workload import request_bodies
from localrun.serve import (
    LOCAL_HOST,
    DeployError,
    apply_ray_env,
    cpus_at_max_replicas,
    deploy,
    env_plan,
    local_ray_env,
    logical_cpus,
)
from localrun.stop import local_ray, stop_on_signals
from render.plan import WARM_WORKERS_APP
from render.validate.crd import crd_dir_from_env
from serve_apps.common.artifact import ModelArtifact
from serve_apps.common.manifest import read_manifest

APP = "zero-shot"
GENERATION_APP = "plain-language"
GENERATION_MODEL = "plain_language"  # its models/manifest.json entry, which the naive generator loads
TRIVIAL_APP = f"{APP}-trivial-model"  # the same app serving benchmarks/trivial_model.py: the serving path's own cost
MYSQL_APP = f"{APP}-mysql"  # the same app with its prediction log on MySQL
# The systems start_served deploys beside the served app on its Ray, each at the app's max replicas.
SERVED_RAY_COPIES = ("served_mysql", "served_trivial_model", "floor_serve")
FLOOR_APP = "http-floor"  # benchmarks/http_floor.py as a Serve app, deployed as the served app's deployment is
FLOOR_DEPLOYMENT_KEYS = ("num_replicas", "autoscaling_config", "max_ongoing_requests", "ray_actor_options")
RENDER_APPS = 500
READY_TIMEOUT_S = 300
OBJECT_STORE_BYTES = 200 * 1024**2  # Serve passes small objects only
RAW_VARIANTS = {"int8": "zero_shot", "fp32": "zero_shot_fp32"}  # models/manifest.json entries
RAW_BATCHES = (1, 32)
# The load curve's systems: the served app and the peers a user would weigh against it (the naive one is not).
CURVE_SYSTEMS = ("served", "fastapi_tuned", "bentoml")
PARTS = (*report.SYSTEMS, "raw", "curve", "cold_start", "render", "generation")
# Systems without the model (a near-free encoder, none at all): their answers must only have the request's labels.
SHAPE_ONLY = ("served_trivial_model", "floor_uvicorn", "floor_serve")
# Answers must match the raw int8 model's within this: the int8 encoder quantizes its activations per batch, so a
# score moves a little with the batch a request lands in.
SCORE_TOLERANCE = 0.02
# The benchmark's measurement (argparse's defaults); --quick's, which proves every system starts and answers.
FULL_RUN: dict[str, float] = {
    "clients": 16,
    "warmup_s": 5,
    "duration_s": 20,
    "repetitions": 2,
    "raw_s": 5,
    "cold_starts": 2,
}
QUICK: dict[str, float] = {"warmup_s": 1, "duration_s": 3, "repetitions": 1, "raw_s": 1, "cold_starts": 1}


@dataclass(frozen=True)
class Options:
    """What one run measures and how long."""

    env: str
    clients: int
    warmup_s: float
    duration_s: float
    repetitions: int
    raw_s: float
    cold_starts: int
    max_foreign_cores: float
    quiet_timeout_s: float
    load_generator: str
    curve_clients: tuple[int, ...] = report.CURVE_CLIENTS
    parts: tuple[str, ...] = PARTS

    @property
    def systems(self) -> tuple[str, ...]:
        """The HTTP systems this run measures, in the table's order."""
        return tuple(s for s in report.SYSTEMS if s in self.parts)

    @property
    def smoke(self) -> bool:
        """Less than the benchmark measures (fewer parts or clients, shorter or fewer windows): its figures go into
        no history."""
        shorter = any(getattr(self, name) < value for name, value in FULL_RUN.items() if name != "clients")
        other = self.clients != FULL_RUN["clients"] or self.curve_clients != report.CURVE_CLIENTS
        return shorter or other or set(self.parts) != set(PARTS)


@dataclass(frozen=True)
class HttpWindow:
    """One measured window of one system: the load generator's figures and who used the CPU meanwhile."""

    system: str
    repetition: int
    load: loadgen.LoadResult
    server_cores: float
    client_cores: float
    rest_cores: float  # the rest of the benchmark: the idle other servers, the bench itself
    server_cores_by_process: dict[str, float]  # server_cores split by machine.process_label
    foreign_cores: float
    machine_cores: float
    load_average: str


@dataclass(frozen=True)
class Server:
    """A running system: where to send requests, which processes are its CPU, and which of those are outside the
    benchmark's process tree (the MySQL server), so that their CPU is not counted as other people's."""

    url: str
    measured: Callable[[], list[psutil.Process]]
    outside: Callable[[], list[psutil.Process]] = list


@contextlib.contextmanager
def served_app(root: Path, env: str, extra_replicas: int, app: str = APP) -> Iterator[tuple[str, dict[str, Any], int]]:
    """Ray with the env's Ray variables and explicit logical CPUs, Serve with the env's application `app`.

    Yields the app's URL (its route prefix), the Serve config deployed and the HTTP port. The logical CPUs leave
    room for `extra_replicas` more copies of the app at its max replicas (the trivial model's and the cold starts'):
    a removed copy holds its CPUs while its replicas drain (30 s in throughput mode), and logical CPUs are
    bookkeeping, not cores.
    """
    plan = env_plan(root, env)
    config = plan.serve_config()
    # The app first (copies are made from it), then the toolkit's own apps the env asks for.
    config["applications"] = [
        a for name in (app, WARM_WORKERS_APP) for a in config["applications"] if a["name"] == name
    ]
    if not config["applications"] or config["applications"][0]["name"] != app:
        raise RuntimeError(f"deployments/{env}: its Serve config has no application {app!r}; the bench measures it")
    ray_env = local_ray_env(plan)
    apply_ray_env(ray_env)
    copy = cpus_at_max_replicas({"applications": config["applications"][:1]})
    cpus = logical_cpus(config) + math.ceil(extra_replicas * copy)
    say(f"starting Ray ({cpus:g} logical CPUs) with {ray_env or 'no Serve variables'}")
    with local_ray(
        root,  # replicas resolve relative file:// model URIs against Ray's start directory
        address="local",  # a new Ray, even where someone's `ray start` cluster runs on this machine
        num_cpus=cpus,
        include_dashboard=False,
        log_to_driver=False,
        logging_level=logging.WARNING,
        object_store_memory=OBJECT_STORE_BYTES,
    ):
        port = free_port()
        served = deploy(config, port, READY_TIMEOUT_S)
        say(f"{app} of {env} running after {served.seconds_to_running[app]:.1f} s on {served.url}")
        yield f"{served.url}{config['applications'][0]['route_prefix']}", config, port


def replica_pids() -> list[int]:
    """Processes of this benchmark that are zero-shot replicas (Ray titles them ray::ServeReplica:<app>:...)."""
    found = []
    for process in tree(os.getpid()):
        with contextlib.suppress(psutil.Error):
            if any(f"ServeReplica:{APP}:" in part for part in process.cmdline()):
                found.append(process.pid)
    return found


def measure_http(
    system: str, repetition: int, server: Server, clients: int, bodies_file: Path, options: Options
) -> HttpWindow:
    """Run the load generator against the server with `clients` closed-loop clients; CPU of its processes over the
    same measured window."""
    foreign = wait_for_quiet(options.max_foreign_cores, options.quiet_timeout_s, say)
    say(f"{system}: {clients} clients, {options.warmup_s:g} s warm-up, {options.duration_s:g} s measured")
    command = [sys.executable, "-m", "benchmarks.loadgen", "--url", server.url, "--bodies", str(bodies_file)]
    command += ["--clients", str(clients), "--warmup-s", str(options.warmup_s)]
    command += ["--duration-s", str(options.duration_s), "--generator", options.load_generator]
    out, cpu = run_windowed(command, CpuWindow(server.measured, server.outside), "load generator")
    load = loadgen.LoadResult(**json.loads(out))
    result = HttpWindow(
        system=system,
        repetition=repetition,
        load=load,
        server_cores=cpu.measured_cores,
        client_cores=load.client_cpu_cores,
        rest_cores=max(0.0, cpu.benchmark_cores - cpu.measured_cores - load.client_cpu_cores),
        server_cores_by_process={label: round(cores, 3) for label, cores in cpu.by_process.items()},
        foreign_cores=cpu.foreign_cores,
        machine_cores=cpu.machine_cores,
        load_average=load_average(),
    )
    say(
        f"{system}: {load.rps:.1f} req/s, p50 {load.p50_ms:.1f} ms, p95 {load.p95_ms:.1f} ms, p99 {load.p99_ms:.1f} ms,"
        f" {load.errors} errors; server {result.server_cores:.2f} cores, client {result.client_cores:.2f}, rest of"
        f" the bench {result.rest_cores:.2f}, others {result.foreign_cores:.2f} (before: {foreign:.2f})"
    )
    return result


def measure_raw(root: Path, threads: int, options: Options) -> list[raw.RawResult]:
    """Both model variants at both batch sizes, in this process."""
    manifest = read_manifest(root / "models")
    results = []
    for variant, entry in RAW_VARIANTS.items():
        model = raw.load_model(root / "models" / manifest[entry].path, threads)
        for batch_size in RAW_BATCHES:
            wait_for_quiet(options.max_foreign_cores, options.quiet_timeout_s, say)
            result = raw.measure(model, variant, threads, batch_size, options.raw_s)
            say(
                f"raw {variant} batch {batch_size}: {result.sentences_per_s:.1f} sentences/s"
                f" ({result.batch_p50_ms:.1f} ms per batch, {result.cpu_cores:.2f} cores)"
            )
            results.append(result)
    return results


def ray_processes() -> list[psutil.Process]:
    """Every process of the local Ray this benchmark started: its daemons (children of this process) and theirs."""
    found = []
    for child in psutil.Process().children():
        with contextlib.suppress(psutil.Error):
            if any("/ray/" in part for part in child.cmdline()):
                found += tree(child.pid)
    return found


def model_settings(root: Path) -> ModelSettings:
    """The int8 artifact of models/ and the served app's scoring defaults, for the peers."""
    int8 = read_manifest(root / "models")[RAW_VARIANTS["int8"]]
    return ModelSettings.served_defaults(str((root / "models" / int8.path).resolve()))


def check_answers(root: Path, servers: dict[str, Server], body: dict[str, Any]) -> None:
    """Each system answers `body` as the raw int8 model does in-process: the same keys and labels in the same
    order, scores within SCORE_TOLERANCE (the naive service runs torch fp32: only its top label must agree; SHAPE_ONLY
    systems run no model: only their labels must be the request's)."""
    model = raw.load_model(Path(model_settings(root).model_path), 1)
    (expected,) = model.classify([next(q for q in raw.queries() if q.text == body["text"])])
    request = json.dumps(body).encode()
    wrong = []
    for system, server in servers.items():
        sent = urllib.request.Request(server.url, data=request, headers={"content-type": "application/json"})  # noqa: S310
        with urllib.request.urlopen(sent, timeout=30) as response:  # noqa: S310 - a local http URL
            answer = json.loads(response.read())
        if set(answer) != {"sequence", "labels", "scores"} or answer["sequence"] != body["text"]:
            wrong.append(f"{system}: answered {answer!r}")
        elif system in SHAPE_ONLY:  # no model behind it: the shape alone must agree
            if sorted(answer["labels"]) != sorted(expected.labels):
                wrong.append(f"{system}: labels {answer['labels']}")
        elif system == "naive":
            if answer["labels"][0] != expected.labels[0]:
                wrong.append(f"{system}: top label {answer['labels'][0]!r}, the int8 model's {expected.labels[0]!r}")
        elif answer["labels"] != expected.labels or any(
            abs(got - want) > SCORE_TOLERANCE for got, want in zip(answer["scores"], expected.scores, strict=True)
        ):
            wrong.append(f"{system}: {answer['labels']} {answer['scores']}; the model: {expected}")
    if wrong:
        raise RuntimeError("systems answer differently from the model:\n" + "\n".join(wrong))
    say(f"{', '.join(servers)} answer as the model does ({expected.labels[0]} {expected.scores[0]:.3f})")


def prediction_rows(cache: Path, mysql_url: str | None) -> dict[str, int]:
    """Rows each prediction log holds at the end: SQLite (served, served_trivial_model, cold starts) and MySQL."""
    rows = {}
    sqlite_file = cache / "predictions.sqlite"
    if sqlite_file.exists():
        with contextlib.closing(sqlite3.connect(sqlite_file)) as connection:
            rows["sqlite"] = connection.execute("SELECT COUNT(*) FROM prediction_log").fetchone()[0]
    if mysql_url is not None:
        import sqlalchemy as sa

        engine = sa.create_engine(mysql_url)
        with engine.connect() as connection:
            rows["mysql"] = connection.execute(sa.text("SELECT COUNT(*) FROM prediction_log")).scalar_one()
        engine.dispose()
    return rows


def mysql_copy(app: dict[str, Any], database_url: str) -> dict[str, Any]:
    """The app under MYSQL_APP's name and route, its replica's PREDICTION_DB_URL the MySQL database (a runtime_env
    variable: Ray starts that replica in a worker of its own with it)."""
    return {
        **app,
        "name": MYSQL_APP,
        "route_prefix": f"/{MYSQL_APP}",
        "runtime_env": {"env_vars": {"PREDICTION_DB_URL": database_url}},
    }


def floor_app(app: dict[str, Any]) -> dict[str, Any]:
    """benchmarks/http_floor.py as a Serve application deployed as `app`'s (first) deployment is: its replicas,
    resources and concurrency, and `app`'s logging; not its user_config, which is the model's."""
    (deployment,) = app["deployments"]
    kept = {key: deployment[key] for key in FLOOR_DEPLOYMENT_KEYS if key in deployment}
    floor = {
        "name": FLOOR_APP,
        "route_prefix": f"/{FLOOR_APP}",
        "import_path": "benchmarks.http_floor:app_builder",
        "deployments": [{"name": "HttpFloor", **kept}],
    }
    if "logging_config" in app:
        floor["logging_config"] = app["logging_config"]
    return floor


def best_peer(windows: list[HttpWindow]) -> str | None:
    """The peer (report.PEERS) with the highest median throughput in the main windows, if any was measured."""
    rates = {p: report.median([w.load.rps for w in windows if w.system == p]) for p in report.PEERS}
    measured = {p: r for p, r in rates.items() if not math.isnan(r)}
    return max(measured, key=lambda p: measured[p]) if measured else None


def measure_curve(servers: dict[str, Server], bodies_file: Path, options: Options) -> list[HttpWindow]:
    """CURVE_SYSTEMS that run, at each of the curve's client counts, in alternating order; repetition = 0."""
    systems = [s for s in CURVE_SYSTEMS if s in servers]
    windows = []
    for index, clients in enumerate(options.curve_clients):
        for system in systems if index % 2 == 0 else reversed(systems):
            windows.append(measure_http(system, 0, servers[system], clients, bodies_file, options))
    return windows


def start_peers(
    stack: contextlib.ExitStack, root: Path, options: Options, settings: ModelSettings, cores: list[int], logs: Path
) -> dict[str, Server]:
    """Start the run's systems that are not the toolkit's own Ray (naive, fastapi_tuned, floor_uvicorn, bentoml,
    served_ray_defaults) on `stack`; each one's CPU is its process tree."""
    starters: dict[str, Callable[[], contextlib.AbstractContextManager[tuple[str, int]]]] = {
        "naive": lambda: peers.naive_server(cores, logs),
        "fastapi_tuned": lambda: peers.tuned_fastapi_server(settings, cores, {}, logs),
        "floor_uvicorn": lambda: peers.floor_uvicorn_server(cores, logs),
        "bentoml": lambda: peers.bentoml_server(root, settings, cores, logs),
        "served_ray_defaults": lambda: peers.ray_defaults_server(root, options.env, cores, logs),
    }
    servers = {}
    for system, start in starters.items():
        if system in options.systems:
            say(f"starting {system}")
            url, pid = stack.enter_context(start())
            servers[system] = Server(url, functools.partial(tree, pid))
            say(f"{system} answers on {url} (pid {pid})")
    return servers


def start_served(
    stack: contextlib.ExitStack, root: Path, options: Options, scratch: Path, mysql_url: str | None, cold_starts: int
) -> tuple[dict[str, Server], dict[str, Any], int]:
    """The toolkit's Ray with <env>'s zero-shot app on `stack`, and beside it the run's copies of that app (the
    trivial model's; the MySQL log's when `mysql_url` is given) and the HTTP floor deployed as it is; their servers,
    the Serve config and the HTTP port."""
    systems = options.systems
    # Room for each copy at the app's max replicas; each cold start deploys a copy and scales it up by one.
    copies = sum(s in systems for s in SERVED_RAY_COPIES)
    base, config, port = stack.enter_context(served_app(root, options.env, copies + 2 * cold_starts))
    app = config["applications"][0]
    servers, extra = {}, []
    if "served" in systems:
        servers["served"] = Server(f"{base}/predict", ray_processes)
    if "served_trivial_model" in systems:
        int8 = root / "models" / read_manifest(root / "models")[RAW_VARIANTS["int8"]].path
        extra.append(cold_start.cold_copy(app, TRIVIAL_APP, trivial_model.build(int8, scratch / "trivial.onnx")))
        servers["served_trivial_model"] = Server(f"http://{LOCAL_HOST}:{port}/{TRIVIAL_APP}/predict", ray_processes)
    if "floor_serve" in systems:
        extra.append(floor_app(app))
        servers["floor_serve"] = Server(f"http://{LOCAL_HOST}:{port}/{FLOOR_APP}/predict", ray_processes)
    if mysql_url is not None:
        extra.append(mysql_copy(app, mysql_url))
        database = peers.mysql_server_pid()
        outside = (lambda: [psutil.Process(database)]) if database else list
        servers["served_mysql"] = Server(
            f"http://{LOCAL_HOST}:{port}/{MYSQL_APP}/predict", lambda: [*ray_processes(), *outside()], outside
        )
    if extra:
        config = {**config, "applications": [*config["applications"], *extra]}
        deploy(config, port, READY_TIMEOUT_S)
    say(f"served replica pid(s) {replica_pids()}")
    return servers, config, port


def run(root: Path, options: Options) -> dict[str, Any]:
    """Every measurement of one run, as the JSON document the report is made from."""
    cores = sorted(os.sched_getaffinity(0))
    say(f"bench of {options.env} on {len(cores)} cores ({cores}); load average {load_average()}")
    wrk = loadgen.wrk_path(options.load_generator)
    say(f"load generator: {wrk or 'aiohttp (wrk is not on PATH; with it the servers get ~0.1 cores more)'}")
    render = None
    if "render" in options.parts:
        render = render_scale.measure(RENDER_APPS, crd_dir_from_env(None))
        say(f"render of {RENDER_APPS} apps: {render['total']:.2f} s")
    int8 = read_manifest(root / "models")[RAW_VARIANTS["int8"]]
    settings = model_settings(root)
    systems = options.systems
    cold_starts = options.cold_starts if "cold_start" in options.parts else 0
    windows: list[HttpWindow] = []
    raws: list[raw.RawResult] = []
    curve: list[HttpWindow] = []
    colds: list[cold_start.ColdStart] = []
    config: dict[str, Any] = {}
    with contextlib.ExitStack() as stack:
        scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-")))
        logs = scratch / "logs"
        logs.mkdir()
        cache = scratch / "model-cache"
        # Before Ray starts: its processes inherit them at ray.init, as a container's (where to cache, and with the
        # cold starts, how to reach S3). The SQLite prediction log lives in the cache too.
        os.environ["MODEL_CACHE_DIR"] = str(cache)
        if cold_starts:
            say("starting LocalStack (the cold start's S3) and uploading the int8 model")
            artifact, aws_env = stack.enter_context(cold_start.s3_model(root, root / "models" / int8.path, int8.sha256))
            os.environ.update(aws_env)
        bodies_file = scratch / "bodies.json"
        bodies_file.write_text(json.dumps(request_bodies()))
        servers = start_peers(stack, root, options, settings, cores, logs)
        mysql_url = None
        if any(s in systems for s in ("served", *SERVED_RAY_COPIES)) or cold_starts:
            if "served_mysql" in systems:
                mysql_url = stack.enter_context(peers.mysql_database())
                say(f"prediction log of {MYSQL_APP} on {mysql_url}")
            served, config, port = start_served(stack, root, options, scratch, mysql_url, cold_starts)
            servers |= served
        servers = {s: servers[s] for s in systems}  # the table's order
        if servers:
            check_answers(root, servers, request_bodies()[0])
        for repetition in range(1, options.repetitions + 1):
            say(f"repetition {repetition} of {options.repetitions}")
            if "raw" in options.parts:
                raws += measure_raw(root, len(cores), options)
            order = list(servers) if repetition % 2 else list(reversed(servers))
            for system in order:
                windows.append(measure_http(system, repetition, servers[system], options.clients, bodies_file, options))
        # Before the curve: what BentoML's dispatcher made of the main load (and the answer check's one request).
        bentoml_batch = peers.bentoml_mean_batch(servers["bentoml"].url) if "bentoml" in servers else None
        if "curve" in options.parts:
            curve = measure_curve(servers, bodies_file, options)
        if cold_starts:
            body = json.dumps(request_bodies()[0]).encode()
            colds = measure_cold_starts(config, port, body, artifact, cache, options)
        rows = prediction_rows(cache, mysql_url)
        say(f"prediction log rows at the end: {rows}")
    generated = measure_generation(root, options, cores) if "generation" in options.parts else []
    return {
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "env": options.env,
        "options": asdict(options),
        "smoke": options.smoke,
        "machine": {"cores": cores, "cpu_count": os.cpu_count(), "cpu": cpu_model()},
        "commit": _git_commit(root),
        "serve_config": config,
        "peers": peer_settings(),
        "render_500_apps_s": render,
        "raw": [asdict(r) for r in raws],
        "http": [_window_dict(w) for w in windows],
        "curve": [_window_dict(w) for w in curve],
        "best_peer": best_peer(windows),
        "cold_start": [asdict(c) for c in colds],
        "prediction_rows": rows,
        "bentoml_mean_batch": bentoml_batch,
        "generation": [asdict(g) for g in generated],
    }


def measure_generation(root: Path, options: Options, cores: list[int]) -> list[generation.GenerationResult]:
    """The generation part: <env>'s plain-language app on a Ray of its own and the naive generator on the same
    archive, both pinned to `cores`; once both rewrite the first held-out note alike, each system at each of
    report.GENERATION_CLIENTS in alternating order, over the run's warm-up and window."""
    archive = root / "models" / read_manifest(root / "models")[GENERATION_MODEL].path
    results = []
    with contextlib.ExitStack() as stack:
        scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-generation-")))
        os.environ["MODEL_CACHE_DIR"] = str(scratch / "model-cache")  # before Ray starts, as in run()
        notes = generation.held_out_notes()
        notes_file = scratch / "notes.json"
        notes_file.write_text(json.dumps(notes))
        say(f"starting the naive generator on {archive}")
        naive_url, pid = stack.enter_context(generation.naive_server(archive, cores, scratch))
        say(f"naive generator answers on {naive_url} (pid {pid})")
        base, _, _ = stack.enter_context(served_app(root, options.env, 0, GENERATION_APP))
        urls = {"served": f"{base}/generate/stream", "naive": naive_url}
        text = generation.check_same_text(urls, notes[0])
        say(f"served and naive rewrite {notes[0]!r} alike: {text!r}")
        for index, clients in enumerate(report.GENERATION_CLIENTS):
            for system in list(urls) if index % 2 == 0 else list(reversed(urls)):
                wait_for_quiet(options.max_foreign_cores, options.quiet_timeout_s, say)
                say(f"generation {system}: {clients} clients, {options.warmup_s:g} s warm-up, {options.duration_s:g} s")
                result = generation.measure(
                    system, urls[system], notes_file, clients, options.warmup_s, options.duration_s
                )
                say(
                    f"generation {system}: {result.tokens_per_s:.1f} tokens/s, {result.rps:.2f} req/s, TTFT p50"
                    f" {result.ttft_p50_ms:.1f} / p95 {result.ttft_p95_ms:.1f} ms, request p95"
                    f" {result.request_p95_ms:.1f} ms, {result.errors} errors"
                )
                results.append(result)
    return results


def cpu_model() -> str:
    """The CPU's model name and whether it has the int8 instructions ONNX Runtime uses (the model's speed)."""
    with contextlib.suppress(OSError):
        info = Path("/proc/cpuinfo").read_text()
        name = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")), "")
        flags = set(next((line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("flags")), []))
        int8 = [flag for flag in ("avx512_vnni", "avx_vnni", "amx_int8") if flag in flags]
        return f"{name} ({', '.join(int8) or 'no VNNI/AMX'})"
    return "unknown"


def _window_dict(window: HttpWindow) -> dict[str, Any]:
    return {**asdict(window), "load": asdict(window.load)}


def peer_settings() -> dict[str, dict[str, Any]]:
    """How each peer was configured, for the report."""
    return {
        "fastapi_tuned": dict(TUNED_FASTAPI),
        "bentoml": {"version": peers.BENTOML_VERSION, **BENTOML},
        "served_ray_defaults": {"config": "benchmarks/ray_defaults.py: out_of_the_box()"},
    }


def measure_cold_starts(
    config: dict[str, Any], port: int, body: bytes, artifact: ModelArtifact, cache: Path, options: Options
) -> list[cold_start.ColdStart]:
    """Cold starts of copies of the app whose model is on S3, the model cache emptied before each."""
    results = []
    for trial in range(1, options.cold_starts + 1):
        copy = cold_start.cold_copy(config["applications"][0], f"{APP}-cold-{trial}", artifact)
        wait_for_quiet(options.max_foreign_cores, options.quiet_timeout_s, say)
        wait_for_fresh_workers(config)
        try:
            result = cold_start.measure(config, copy, port, body, cache)
        except (DeployError, TimeoutError) as error:  # reported as a failed goal; the other figures still count
            say(f"cold start {trial} failed: {error}")
            continue
        say(
            f"cold start {trial}: new app RUNNING after {result.to_running_s:.2f} s, answered after"
            f" {result.to_first_answer_s:.2f} s; one more replica RUNNING after {result.scale_up_to_running_s:.2f} s"
            f" (model from {artifact.uri}, verified)"
        )
        say(
            "  CPU-seconds to the first answer: "
            + ", ".join(f"{label} {seconds:.2f}" for label, seconds in result.cpu_s_to_first_answer.items())
        )
        results.append(result)
    return results


def wait_for_fresh_workers(config: dict[str, Any], timeout_s: float = 30) -> None:
    """With env.serve.warm_workers, wait until the node holds that many fresh workers again (the previous cold
    start took some); say how many it holds and their memory."""
    from ray import serve

    warm = next((a for a in config["applications"] if a["name"] == WARM_WORKERS_APP), None)
    if warm is None:
        return
    handle = serve.get_app_handle(WARM_WORKERS_APP)
    deadline = time.monotonic() + timeout_s
    while True:
        fresh = [pid for pids in handle.fresh_workers.remote().result().values() for pid in pids]
        if len(fresh) >= warm["args"]["per_node"] or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    memory = []
    for pid in fresh:
        with contextlib.suppress(psutil.Error):
            memory.append(psutil.Process(pid).memory_full_info().uss / 2**20)
    say(f"fresh workers before the deploy: {len(fresh)} (unique memory {', '.join(f'{m:.0f}' for m in memory)} MiB)")


def _git_commit(root: Path) -> str:
    """HEAD's short hash, with -dirty when tracked files differ from it: a figure then belongs to no commit."""
    command = ["git", "-C", str(root), "describe", "--always", "--dirty", "--abbrev=7", "--exclude=*"]  # no tag names
    done = subprocess.run(command, capture_output=True, text=True)
    return done.stdout.strip() or "unknown"


def tune_fastapi(root: Path, options: Options, out: Path) -> int:
    """Sweep the hand-tuned service's settings (benchmarks/tuning.py); print and write what each did."""
    cores = sorted(os.sched_getaffinity(0))
    settings = model_settings(root)
    with tempfile.TemporaryDirectory(prefix="bench-tuning-") as scratch:
        bodies_file = Path(scratch) / "bodies.json"
        bodies_file.write_text(json.dumps(request_bodies()))

        def measure(tuned: dict[str, str]) -> loadgen.LoadResult:
            with peers.tuned_fastapi_server(settings, cores, tuned, Path(scratch)) as (url, pid):
                server = Server(url, functools.partial(tree, pid))
                return measure_http("fastapi_tuned", 0, server, options.clients, bodies_file, options).load

        best, trials = tuning.sweep(measure, options.repetitions)
    print(tuning.table(best, trials))
    say(f"wrote {tuning.write(best, trials, out)}")
    return 0


def _parts(value: str) -> tuple[str, ...]:
    parts = tuple(part.strip() for part in value.split(",") if part.strip())
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown {', '.join(unknown)}; choose from {', '.join(PARTS)}")
    return parts


def _clients(value: str) -> tuple[int, ...]:
    try:
        counts = tuple(int(part) for part in value.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"got {value!r}; a comma-separated list of client counts") from None
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError(f"got {value!r}; client counts are positive")
    return counts


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark (or the GPU comparison, or the tuning sweep), print the table, write the reports."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.serving", description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="bench", help="environment under deployments/ whose Serve config is served")
    parser.add_argument("--clients", type=int, help=f"closed-loop clients (default {FULL_RUN['clients']:g})")
    parser.add_argument("--warmup-s", type=float)
    parser.add_argument("--duration-s", type=float, help="measured window per system and repetition")
    parser.add_argument("--repetitions", type=int)
    parser.add_argument("--raw-s", type=float, help="seconds per raw model measurement")
    parser.add_argument("--cold-starts", type=int)
    parser.add_argument("--curve-clients", type=_clients, default=report.CURVE_CLIENTS, help="e.g. 1,4,16,64")
    parser.add_argument("--only", type=_parts, default=PARTS, help=f"comma-separated subset of {','.join(PARTS)}")
    parser.add_argument(
        "--quick", action="store_true", help="a smoke run: " + ", ".join(f"{k} {v:g}" for k, v in QUICK.items())
    )
    parser.add_argument("--max-foreign-cores", type=float, default=0.3, help="wait while others use more than this")
    parser.add_argument("--quiet-timeout-s", type=float, default=120, help="longest wait for a quiet machine")
    parser.add_argument("--load-generator", choices=loadgen.GENERATORS, default="auto", help="auto: wrk if on PATH")
    parser.add_argument("--out", type=Path, default=Path("reports/bench"))
    parser.add_argument("--gpu", action="store_true", help="compare 4 x 0.25 GPU replicas with 1 x 1.0 instead")
    parser.add_argument("--tune-fastapi", action="store_true", help="sweep the hand-tuned service's settings instead")
    parser.add_argument(
        "--http-stacks", action="store_true", help="measure the HTTP stacks' CPU per request in-process instead"
    )
    args = parser.parse_args(argv)
    # Stopped with SIGTERM, unwind like Ctrl-C, so that the servers, Ray and LocalStack this run started stop too.
    stop_on_signals()
    root = Path.cwd()
    if args.gpu:
        return gpu.main(root, args.out)
    if args.http_stacks:
        return http_stacks.main(args.out)
    measurement = {**FULL_RUN, **(QUICK if args.quick else {})}
    measurement.update({k: v for k in FULL_RUN if (v := getattr(args, k)) is not None})
    options = Options(
        env=args.env,
        clients=int(measurement["clients"]),
        warmup_s=measurement["warmup_s"],
        duration_s=measurement["duration_s"],
        repetitions=int(measurement["repetitions"]),
        raw_s=measurement["raw_s"],
        cold_starts=int(measurement["cold_starts"]),
        max_foreign_cores=args.max_foreign_cores,
        quiet_timeout_s=args.quiet_timeout_s,
        load_generator=args.load_generator,
        curve_clients=args.curve_clients,
        parts=args.only,
    )
    if args.tune_fastapi:
        return tune_fastapi(root, options, args.out)
    out = args.out / "smoke" if options.smoke else args.out
    if options.smoke:
        say(f"a smoke run (less than the benchmark measures): its report goes to {out}, and no line to history.csv")
    document = run(root, options)
    summary = report.summarize(document)
    document["summary"] = summary
    print(report.table(document, summary))
    for path in report.write(document, summary, out, history=not options.smoke):
        say(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
