"""The systems `nox -s bench` puts beside the served app, each started as its users would start it, and stopped by
the process group this module started (never by name).

- the naive baseline (benchmarks/naive_zero_shot.py) under uvicorn;
- the hand-tuned FastAPI service (benchmarks/tuned_fastapi.py) under uvicorn;
- the HTTP floor (benchmarks/http_floor.py: the same route without a model) under uvicorn, as that service runs;
- BentoML (benchmarks/bentoml_service.py) under `bentoml serve`, from a virtualenv of its own (`.venv-bentoml`,
  built on demand: BentoML's pins conflict with the project's), with the project's onnxruntime, tokenizers and
  numpy, so that it runs the same model code on the same runtime;
- the served app with Ray's defaults (benchmarks/ray_defaults.py), on a Ray of its own in a child process, so that
  none of the toolkit's Ray variables reaches it;
- a throwaway database on the local MariaDB for the prediction log of the served app's MySQL copy.
Every server is pinned to the cores the benchmark runs on, and each yields its predict URL and its process id (its
CPU is that process's tree).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

from benchmarks.machine import say
from benchmarks.peer_config import TUNED_FASTAPI, ModelSettings
from localrun.serve import LOCAL_HOST

READY_TIMEOUT_S = 300
STOP_TIMEOUT_S = 30
BENTOML_VERSION = "1.4.40"  # the newest 1.4 release on PyPI when this was written
BENTOML_VENV = ".venv-bentoml"
BENTOML_MARKER = ".bench-pins.json"
# The model's own runtime in BentoML's venv, at the project's versions (pyproject's image group).
SHARED_RUNTIME = ("onnxruntime", "tokenizers", "numpy")
MYSQL_ADMIN_URL = "mysql+pymysql://root@127.0.0.1:3306"


def free_port() -> int:
    """A TCP port nobody listens on now (other people's servers may hold the usual ones on a shared machine)."""
    import socket

    with socket.socket() as probe:
        probe.bind((LOCAL_HOST, 0))
        return int(probe.getsockname()[1])


def wait_http(url: str, timeout_s: float, alive: Callable[[], bool] = lambda: True) -> None:
    """Poll GET `url` until it answers 200; fail early when `alive()` says the server exited."""
    deadline = time.monotonic() + timeout_s
    while True:
        with (
            contextlib.suppress(OSError),
            urllib.request.urlopen(url, timeout=5) as response,  # noqa: S310 - a local http URL
        ):
            if response.status == 200:
                return
        if not alive():
            raise RuntimeError(f"the server behind {url} exited before it answered")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} did not answer within {timeout_s:.0f} s")
        time.sleep(0.5)


@contextlib.contextmanager
def server_process(
    name: str, command: Sequence[str], cores: Sequence[int], env: Mapping[str, str], ready_url: str, log: Path
) -> Iterator[int]:
    """Run `command` pinned to `cores` with the environment `env` (whole), in a process group of its own; wait until
    `ready_url` answers and yield its pid. On exit it is stopped (_stop_group). Its output goes to `log`."""
    pinned = ["taskset", "-c", ",".join(map(str, cores)), *command]
    with log.open("wb") as output:
        process = subprocess.Popen(
            pinned, env=dict(env), stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        try:
            wait_http(ready_url, READY_TIMEOUT_S, alive=lambda: process.poll() is None)
        except (RuntimeError, TimeoutError) as error:
            tail = log.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"{name} did not start: {error}\n--- {log} (end) ---\n{tail}") from error
        yield process.pid
    finally:
        _stop_group(process)


def _stop_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the server, which stops its own workers (uvicorn, BentoML's arbiter, Ray's shutdown); after
    STOP_TIMEOUT_S, or once it is gone, SIGKILL to whatever is left of its process group, and wait for it."""
    import psutil

    process.terminate()
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(STOP_TIMEOUT_S)
    left = []
    for candidate in psutil.process_iter():
        with contextlib.suppress(psutil.Error, ProcessLookupError):
            if os.getpgid(candidate.pid) == process.pid:
                candidate.kill()
                left.append(candidate)
    psutil.wait_procs(left, timeout=STOP_TIMEOUT_S)
    process.wait()


@contextlib.contextmanager
def uvicorn_server(
    name: str, app: Sequence[str], cores: Sequence[int], env: Mapping[str, str], logs: Path, workers: str | None = None
) -> Iterator[tuple[str, int]]:
    """`uvicorn <app>` (its app argument and options) on a free local port, pinned to `cores`, no access log, with
    `workers` processes when given (uvicorn's default otherwise); yields its base URL and pid once its /healthz
    answers. Its output goes to <logs>/<name>.log."""
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", *app, "--host", LOCAL_HOST, "--port", str(port)]
    command += [*(["--workers", workers] if workers else []), "--no-access-log", "--log-level", "warning"]
    base = f"http://{LOCAL_HOST}:{port}"
    with server_process(name, command, cores, env, f"{base}/healthz", logs / f"{name}.log") as pid:
        yield base, pid


@contextlib.contextmanager
def naive_server(cores: Sequence[int], logs: Path) -> Iterator[tuple[str, int]]:
    """The naive baseline (benchmarks/naive_zero_shot.py) under uvicorn: one process, no access log."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    with uvicorn_server("naive", ["benchmarks.naive_zero_shot:app"], cores, env, logs) as (base, pid):
        yield f"{base}/predict", pid


@contextlib.contextmanager
def floor_uvicorn_server(cores: Sequence[int], logs: Path) -> Iterator[tuple[str, int]]:
    """benchmarks/http_floor.py under uvicorn, with as many workers as the hand-tuned service runs."""
    workers = str(TUNED_FASTAPI["UVICORN_WORKERS"])
    app = ["benchmarks.http_floor:api"]
    with uvicorn_server("floor_uvicorn", app, cores, os.environ, logs, workers) as (base, pid):
        yield f"{base}/predict", pid


@contextlib.contextmanager
def tuned_fastapi_server(
    settings: ModelSettings, cores: Sequence[int], tuning: Mapping[str, str], logs: Path
) -> Iterator[tuple[str, int]]:
    """benchmarks/tuned_fastapi.py under uvicorn with `tuning` (its TUNED_* variables and UVICORN_WORKERS)."""
    workers = tuning.get("UVICORN_WORKERS", str(TUNED_FASTAPI["UVICORN_WORKERS"]))
    env = {**os.environ, **settings.env(), **{k: v for k, v in tuning.items() if k != "UVICORN_WORKERS"}}
    app = ["benchmarks.tuned_fastapi:app"]
    with uvicorn_server("fastapi_tuned", app, cores, env, logs, workers) as (base, pid):
        yield f"{base}/predict", pid


def _project_pins(root: Path, names: Sequence[str]) -> list[str]:
    """The `name==version` pins of pyproject.toml's image group for `names`."""
    with (root / "pyproject.toml").open("rb") as file:
        image = tomllib.load(file)["dependency-groups"]["image"]
    pins = [pin for pin in image if isinstance(pin, str) and pin.split("==")[0] in names]
    missing = set(names) - {pin.split("==")[0] for pin in pins}
    if missing:
        raise RuntimeError(f"pyproject.toml's image group pins no {sorted(missing)}")
    return pins


def bentoml_pins(root: Path) -> list[str]:
    """What BentoML's virtualenv holds: BentoML and the model's runtime at the project's versions."""
    return [f"bentoml=={BENTOML_VERSION}", *_project_pins(root, SHARED_RUNTIME)]


def ensure_bentoml_venv(root: Path) -> Path:
    """`<root>/.venv-bentoml` with bentoml_pins(), (re)built when its marker names other pins; its directory.

    Concurrent callers wait on a lock. pip's resolver picks BentoML's other dependencies; no torch among them.
    """
    venv = root.resolve() / BENTOML_VENV
    pins = bentoml_pins(root)
    lock = Path(tempfile.gettempdir()) / f"bench-bentoml-venv-{hashlib.sha256(str(venv).encode()).hexdigest()[:12]}"
    with lock.open("w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        marker = venv / BENTOML_MARKER
        with contextlib.suppress(OSError, ValueError):
            if json.loads(marker.read_text()) == pins and (venv / "bin" / "bentoml").exists():
                return venv
        if venv.exists():
            if not (venv / "pyvenv.cfg").exists():
                raise RuntimeError(f"{venv} exists and is not a virtualenv; refusing to replace it")
            shutil.rmtree(venv)
        say(f"building {venv} with {' '.join(pins)} (about a minute, once)")
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        install = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--progress-bar", "off", *pins]
        done = subprocess.run(install, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"pip install into {venv} failed ({done.returncode}):\n{done.stderr[-3000:]}")
        torch = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "show", "torch"], capture_output=True)
        if torch.returncode == 0:
            raise RuntimeError(f"{venv}: torch came in with {' '.join(pins)}; BentoML's venv must not hold it")
        marker.write_text(json.dumps(pins) + "\n")
        return venv


@contextlib.contextmanager
def bentoml_server(root: Path, settings: ModelSettings, cores: Sequence[int], logs: Path) -> Iterator[tuple[str, int]]:
    """`bentoml serve benchmarks.bentoml_service:ZeroShot` from BentoML's venv, the repository as working dir."""
    venv = ensure_bentoml_venv(root)
    port = free_port()
    command = [str(venv / "bin" / "bentoml"), "serve", "benchmarks.bentoml_service:ZeroShot"]
    command += ["--working-dir", str(root), "--host", LOCAL_HOST, "--port", str(port)]
    home = logs / "bentoml-home"  # BentoML's model store and logs; nothing of it is used
    env = {**os.environ, **settings.env(), "BENTOML_HOME": str(home), "BENTOML_DO_NOT_TRACK": "true"}
    base = f"http://{LOCAL_HOST}:{port}"
    with server_process("bentoml", command, cores, env, f"{base}/readyz", logs / "bentoml.log") as pid:
        yield f"{base}/predict", pid


def bentoml_mean_batch(predict_url: str) -> float:
    """The mean size of the batches BentoML's dispatcher has formed since the server started, over all encoder
    workers (its adaptive_batch_size histogram on /metrics); NaN before any batch."""
    metrics_url = predict_url.removesuffix("/predict") + "/metrics"
    with urllib.request.urlopen(metrics_url, timeout=10) as response:  # noqa: S310 - a local http URL
        text = response.read().decode()
    totals = {"_sum": 0.0, "_count": 0.0}
    for line in text.splitlines():
        name = line.partition("{")[0]
        for suffix in totals:
            if name == f"bentoml_service_adaptive_batch_size{suffix}":
                totals[suffix] += float(line.rsplit(" ", 1)[-1])
    return totals["_sum"] / totals["_count"] if totals["_count"] else float("nan")


@contextlib.contextmanager
def ray_defaults_server(root: Path, env_name: str, cores: Sequence[int], logs: Path) -> Iterator[tuple[str, int]]:
    """benchmarks/ray_defaults.py: the served app with Ray's defaults, on a Ray of its own in a child process."""
    from benchmarks import ray_defaults
    from localrun.serve import env_plan, local_ray_env

    port = free_port()
    command = [sys.executable, "-m", "benchmarks.ray_defaults", "--env", env_name, "--port", str(port)]
    # None of the toolkit's Ray variables: the bench process set them for its own Ray before this one starts.
    toolkit = local_ray_env(env_plan(root, env_name))
    env = {name: value for name, value in os.environ.items() if name not in toolkit}
    base = f"http://{LOCAL_HOST}:{port}{ray_defaults.ROUTE}"
    with server_process("ray_defaults", command, cores, env, f"{base}/healthz", logs / "ray_defaults.log") as pid:
        yield f"{base}/predict", pid


@contextlib.contextmanager
def mysql_database(admin_url: str = MYSQL_ADMIN_URL) -> Iterator[str]:
    """A database `bench_<random>` on the MySQL server of `admin_url` (the local MariaDB), dropped on exit; yields
    its URL for PREDICTION_DB_URL."""
    import sqlalchemy as sa

    name = f"bench_{secrets.token_hex(4)}"
    admin = sa.make_url(admin_url).set(database=None)
    engine = sa.create_engine(admin)
    try:
        with engine.begin() as connection:
            connection.execute(sa.text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"))
        try:
            yield admin.set(database=name).render_as_string(hide_password=False)
        finally:
            with engine.begin() as connection:
                connection.execute(sa.text(f"DROP DATABASE IF EXISTS `{name}`"))
    finally:
        engine.dispose()


def mysql_server_pid(admin_url: str = MYSQL_ADMIN_URL) -> int | None:
    """The process listening on the port of `admin_url` (MariaDB's mariadbd): its CPU belongs to the MySQL row."""
    import psutil
    import sqlalchemy as sa

    port = sa.make_url(admin_url).port or 3306
    for connection in psutil.net_connections(kind="tcp"):
        if connection.status == psutil.CONN_LISTEN and connection.laddr.port == port and connection.pid:
            return int(connection.pid)
    return None
