"""`nox -s bench`: the served zero-shot app beside a naive FastAPI service and the raw model, in one run.

Usage: python -m benchmarks.serving [--env bench] [--clients 16] [--warmup-s 5] [--duration-s 20]
       [--repetitions 2] [--raw-s 5] [--cold-starts 2] [--load-generator auto|wrk|aiohttp] [--out reports/bench]
       [--gpu]

On this machine, in one run:
1. render time of 500 generated apps (benchmarks.render_scale);
2. per repetition: the raw model in-process (int8 and fp32, batch 1 and 32), then the naive baseline
   (benchmarks/naive_zero_shot.py under uvicorn, pinned to the cores Ray runs on) and the toolkit (the zero-shot
   application of <env>'s Serve config on a local Ray started with the variables <env> renders, EnvPlan.ray_env),
   in alternating order, each under the same closed-loop load (benchmarks/loadgen.py, a process of its own),
   and the same application serving a trivial encoder (benchmarks/trivial_model.py), what serving costs alone;
3. replica cold start: a copy of the app with its model on S3 (LocalStack), from deploy to first answer.
Each measurement waits for a quiet machine first and records the CPU others used meanwhile. Then the table and
ratios on stdout, reports/bench/<timestamp>.json and .png, and a line in reports/bench/history.csv.
`--gpu` runs the GPU comparison instead (benchmarks/gpu.py), and says why it cannot where there is no NVIDIA GPU.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import os
import signal
import socket
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

from benchmarks import cold_start, gpu, loadgen, raw, render_scale, report, trivial_model
from benchmarks.machine import CpuWindow, load_average, say, tree, wait_for_quiet
from benchmarks.workload import request_bodies
from render.plan import WARM_WORKERS_APP
from render.validate.crd import crd_dir_from_env
from serve_apps.common.artifact import ModelArtifact
from serve_apps.common.manifest import read_manifest
from serve_apps.local import LOCAL_HOST, DeployError, apply_ray_env, deploy, env_plan, logical_cpus

APP = "zero-shot"
TRIVIAL_APP = f"{APP}-trivial-model"  # the same app serving benchmarks/trivial_model.py: the serving path's own cost
RENDER_APPS = 500
READY_TIMEOUT_S = 300
OBJECT_STORE_BYTES = 200 * 1024**2  # Serve passes small objects only
RAW_VARIANTS = {"int8": "zero_shot", "fp32": "zero_shot_fp32"}  # models/manifest.json entries
RAW_BATCHES = (1, 32)


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


@dataclass(frozen=True)
class HttpWindow:
    """One measured window of one system: the load generator's figures and who used the CPU meanwhile."""

    system: str
    repetition: int
    load: loadgen.LoadResult
    server_cores: float
    client_cores: float
    foreign_cores: float
    machine_cores: float
    load_average: str


def free_port() -> int:
    """A TCP port nobody listens on now (other people's Serve may hold 8000 on a shared machine)."""
    with socket.socket() as probe:
        probe.bind((LOCAL_HOST, 0))
        return int(probe.getsockname()[1])


def wait_http(url: str, timeout_s: float) -> None:
    """Poll GET `url` until it answers 200."""
    deadline = time.monotonic() + timeout_s
    while True:
        with (
            contextlib.suppress(OSError),
            urllib.request.urlopen(url, timeout=5) as response,  # noqa: S310 - a local http URL
        ):
            if response.status == 200:
                return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} did not answer within {timeout_s:.0f} s")
        time.sleep(0.5)


@contextlib.contextmanager
def naive_server(cores: list[int]) -> Iterator[tuple[str, int]]:
    """The naive baseline under uvicorn (one process, no access log), pinned to `cores`; yields its URL and pid."""
    port = free_port()
    command = ["taskset", "-c", ",".join(map(str, cores)), sys.executable, "-m", "uvicorn"]
    command += ["benchmarks.naive_zero_shot:app", "--host", LOCAL_HOST, "--port", str(port), "--no-access-log"]
    process = subprocess.Popen(command, env={**os.environ, "HF_HUB_OFFLINE": "1"}, stdout=subprocess.DEVNULL)
    try:
        wait_http(f"http://{LOCAL_HOST}:{port}/healthz", READY_TIMEOUT_S)
        yield f"http://{LOCAL_HOST}:{port}/predict", process.pid
    finally:
        process.terminate()
        process.wait(30)


@contextlib.contextmanager
def served_app(root: Path, env: str, extra_replicas: int) -> Iterator[tuple[str, dict[str, Any], int]]:
    """Ray with the env's Ray variables and explicit logical CPUs, Serve with the env's zero-shot application.

    Yields the app's predict URL, the Serve config deployed and the HTTP port. The logical CPUs leave room for
    `extra_replicas` more replicas of each deployment (the trivial model's and the cold starts'): a removed copy
    holds its CPUs while its replicas drain (30 s in throughput mode), and logical CPUs are bookkeeping, not cores.
    """
    import ray
    from ray import serve

    plan = env_plan(root, env)
    config = plan.serve_config()
    # The zero-shot app first (its copies are made from it), then the toolkit's own apps the env asks for.
    config["applications"] = [a for a in config["applications"] if a["name"] in (APP, WARM_WORKERS_APP)]
    apply_ray_env(plan.ray_env)
    copy = sum(d.get("ray_actor_options", {}).get("num_cpus", 1) for d in config["applications"][0]["deployments"])
    cpus = logical_cpus(config) + math.ceil(extra_replicas * copy)
    say(f"starting Ray ({cpus:g} logical CPUs) with {plan.ray_env or 'no Serve variables'}")
    with contextlib.chdir(root):  # replicas resolve relative file:// model URIs against Ray's start directory
        ray.init(
            address="local",  # a new Ray, even where someone's `ray start` cluster runs on this machine
            num_cpus=cpus,
            include_dashboard=False,
            log_to_driver=False,
            logging_level=logging.WARNING,
            object_store_memory=OBJECT_STORE_BYTES,
        )
    try:
        port = free_port()
        served = deploy(config, port, READY_TIMEOUT_S)
        say(f"{APP} of {env} running after {served.seconds_to_running[APP]:.1f} s on {served.url}")
        route = config["applications"][0]["route_prefix"]
        yield f"{served.url}{route}/predict", config, port
    finally:
        serve.shutdown()
        ray.shutdown()


def replica_pids() -> list[int]:
    """Processes of this benchmark that are zero-shot replicas (Ray titles them ray::ServeReplica:<app>:...)."""
    found = []
    for process in tree(os.getpid()):
        with contextlib.suppress(psutil.Error):
            if any(f"ServeReplica:{APP}:" in part for part in process.cmdline()):
                found.append(process.pid)
    return found


def measure_http(
    system: str,
    repetition: int,
    url: str,
    measured: Callable[[], list[psutil.Process]],
    bodies_file: Path,
    options: Options,
) -> HttpWindow:
    """Run the load generator against `url`; CPU of the `measured` processes over the same measured window."""
    foreign = wait_for_quiet(options.max_foreign_cores, options.quiet_timeout_s, say)
    say(f"{system}: {options.clients} clients, {options.warmup_s:g} s warm-up, {options.duration_s:g} s measured")
    command = [sys.executable, "-m", "benchmarks.loadgen", "--url", url, "--bodies", str(bodies_file)]
    command += ["--clients", str(options.clients), "--warmup-s", str(options.warmup_s)]
    command += ["--duration-s", str(options.duration_s), "--generator", options.load_generator]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    window = CpuWindow(measured)
    cpu = None
    assert process.stderr is not None
    for line in process.stderr:
        if line.strip() == "window-start":
            window.start()
        elif line.strip() == "window-end":
            cpu = window.stop()
            break
    out, err = process.communicate()
    if process.returncode != 0 or cpu is None:
        raise RuntimeError(f"load generator failed ({process.returncode}): {err[-2000:]}")
    load = loadgen.LoadResult(**json.loads(out))
    result = HttpWindow(
        system=system,
        repetition=repetition,
        load=load,
        server_cores=cpu.measured_cores,
        client_cores=load.client_cpu_cores,
        foreign_cores=cpu.foreign_cores,
        machine_cores=cpu.machine_cores,
        load_average=load_average(),
    )
    say(
        f"{system}: {load.rps:.1f} req/s, p50 {load.p50_ms:.1f} ms, p95 {load.p95_ms:.1f} ms, p99 {load.p99_ms:.1f} ms,"
        f" {load.errors} errors; server {result.server_cores:.2f} cores, client {result.client_cores:.2f},"
        f" others {result.foreign_cores:.2f} (before: {foreign:.2f})"
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


def run(root: Path, options: Options) -> dict[str, Any]:
    """Every measurement of one run, as the JSON document the report is made from."""
    cores = sorted(os.sched_getaffinity(0))
    say(f"bench of {options.env} on {len(cores)} cores ({cores}); load average {load_average()}")
    wrk = loadgen.wrk_path(options.load_generator)
    say(f"load generator: {wrk or 'aiohttp (wrk is not on PATH; with it the servers get ~0.1 cores more)'}")
    render = render_scale.measure(RENDER_APPS, crd_dir_from_env(None))
    say(f"render of {RENDER_APPS} apps: {render['total']:.2f} s")
    int8 = read_manifest(root / "models")[RAW_VARIANTS["int8"]]
    windows: list[HttpWindow] = []
    raws: list[raw.RawResult] = []
    with contextlib.ExitStack() as stack:
        scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-")))
        say("starting LocalStack (the cold start's S3) and uploading the int8 model")
        artifact, aws_env = stack.enter_context(cold_start.s3_model(root, root / "models" / int8.path, int8.sha256))
        cache = scratch / "model-cache"
        # Before Ray starts: its processes inherit them at ray.init, as a container's (how to reach S3, where to cache).
        os.environ.update({**aws_env, "MODEL_CACHE_DIR": str(cache)})
        bodies_file = scratch / "bodies.json"
        bodies_file.write_text(json.dumps(request_bodies()))
        naive_url, naive_pid = stack.enter_context(naive_server(cores))
        # One more replica serves the trivial model; each cold start deploys a copy and scales it up by one.
        served = served_app(root, options.env, extra_replicas=1 + 2 * options.cold_starts)
        url, config, port = stack.enter_context(served)
        trivial = cold_start.cold_copy(
            config["applications"][0],
            TRIVIAL_APP,
            trivial_model.build(root / "models" / int8.path, scratch / "trivial-encoder.onnx"),
        )
        config = {**config, "applications": [*config["applications"], trivial]}
        deploy(config, port, READY_TIMEOUT_S)
        trivial_url = f"http://{LOCAL_HOST}:{port}{trivial['route_prefix']}/predict"
        say(f"naive on {naive_url} (pid {naive_pid}); served replica pid(s) {replica_pids()}")
        systems: dict[str, tuple[str, Callable[[], list[psutil.Process]]]] = {
            "naive": (naive_url, lambda: tree(naive_pid)),
            "served": (url, ray_processes),
            "served_trivial_model": (trivial_url, ray_processes),
        }
        for repetition in range(1, options.repetitions + 1):
            say(f"repetition {repetition} of {options.repetitions}")
            raws += measure_raw(root, len(cores), options)
            order = list(systems) if repetition % 2 else list(reversed(systems))
            for system in order:
                target, measured = systems[system]
                windows.append(measure_http(system, repetition, target, measured, bodies_file, options))
        body = json.dumps(request_bodies()[0]).encode()
        colds = measure_cold_starts(config, port, body, artifact, cache, options)
    return {
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "env": options.env,
        "options": asdict(options),
        "machine": {"cores": cores, "cpu_count": os.cpu_count()},
        "commit": _git_commit(root),
        "serve_config": config,
        "render_500_apps_s": render,
        "raw": [asdict(r) for r in raws],
        "http": [{**asdict(w), "load": asdict(w.load)} for w in windows],
        "cold_start": [asdict(c) for c in colds],
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


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark (or the GPU comparison), print the table, write the reports."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.serving", description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="bench", help="environment under deployments/ whose Serve config is served")
    parser.add_argument("--clients", type=int, default=16, help="closed-loop clients")
    parser.add_argument("--warmup-s", type=float, default=5)
    parser.add_argument("--duration-s", type=float, default=20, help="measured window per system and repetition")
    parser.add_argument("--repetitions", type=int, default=2)
    parser.add_argument("--raw-s", type=float, default=5, help="seconds per raw model measurement")
    parser.add_argument("--cold-starts", type=int, default=2)
    parser.add_argument("--max-foreign-cores", type=float, default=0.3, help="wait while others use more than this")
    parser.add_argument("--quiet-timeout-s", type=float, default=120, help="longest wait for a quiet machine")
    parser.add_argument("--load-generator", choices=loadgen.GENERATORS, default="auto", help="auto: wrk if on PATH")
    parser.add_argument("--out", type=Path, default=Path("reports/bench"))
    parser.add_argument("--gpu", action="store_true", help="compare 4 x 0.25 GPU replicas with 1 x 1.0 instead")
    args = parser.parse_args(argv)
    # Stopped with SIGTERM, unwind like Ctrl-C, so that the servers, Ray and LocalStack this run started stop too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    root = Path.cwd()
    if args.gpu:
        return gpu.main(root, args.out)
    options = Options(
        env=args.env,
        clients=args.clients,
        warmup_s=args.warmup_s,
        duration_s=args.duration_s,
        repetitions=args.repetitions,
        raw_s=args.raw_s,
        cold_starts=args.cold_starts,
        max_foreign_cores=args.max_foreign_cores,
        quiet_timeout_s=args.quiet_timeout_s,
        load_generator=args.load_generator,
    )
    if options.duration_s < 20 or options.repetitions < 2:
        say("note: fewer than 2 repetitions or a window under 20 s is a smoke run, not the benchmark")
    document = run(root, options)
    summary = report.summarize(document)
    document["summary"] = summary
    print(report.table(document, summary))
    for path in report.write(document, summary, args.out):
        say(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
