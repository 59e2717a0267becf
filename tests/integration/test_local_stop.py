"""Ctrl-C on the local runners (localrun/stop.py), pressed as a terminal presses it.

Each runner starts as a shell starts a command, in a process group of its own, and once it answers gets SIGINT
sent to that whole group, as the terminal sends Ctrl-C to the foreground job. It must exit within STOP_TIMEOUT_S
and leave none of the processes it started running (their PIDs collected while it ran). Runs `python -m
localrun.serve`, `nox -s serve` itself (its venv replaced by this one: --no-venv --no-install) and `python -m
loadtests`. The serve runner's other promises are checked on the same run: where its prediction log is, and how
to reach the dashboard with Ray's token.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil
import pytest
import yaml

from localrun.serve import LOCAL_PREDICTION_LOG
from localrun.stop import STOP_TIMEOUT_S
from serve_apps.common.artifact import sha256_of
from serve_apps.common.manifest import manifest_matches
from serve_apps.doubleit.build import build as build_doubleit
from tests.integration.single_app import REPO_ROOT, free_port

FIXTURE_REPO = REPO_ROOT / "tests" / "fixtures" / "repo"
ENV = "dev"
APP = "doubleit"
READY_TIMEOUT_S = 300.0  # Ray, Serve and a replica on two cores that other jobs share


@dataclass
class Run:
    """A command started in a process group of its own, and every process seen below it while it ran."""

    process: subprocess.Popen[bytes]
    log: Path
    seen: dict[int, psutil.Process] = field(default_factory=dict)

    def look(self) -> None:
        """Add the processes below the command now."""
        with contextlib.suppress(psutil.Error):
            for child in psutil.Process(self.process.pid).children(recursive=True):
                self.seen.setdefault(child.pid, child)

    def output(self) -> str:
        """What the command printed so far."""
        return self.log.read_text(errors="replace")

    def wait_for(self, ready: Callable[[], bool], what: str) -> None:
        """Poll `ready` (and the processes below) until it holds; fail if the command exits or READY_TIMEOUT_S
        passes."""
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not ready():
            self.look()
            if self.process.poll() is not None:
                pytest.fail(f"exited ({self.process.returncode}) before {what}:\n{self.output()[-4000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"not {what} after {READY_TIMEOUT_S:g} s:\n{self.output()[-4000:]}")
            time.sleep(0.5)
        self.look()

    def ctrl_c(self) -> Stopped:
        """SIGINT to the group, as a terminal's Ctrl-C; how long the command took to exit and what it left."""
        self.look()
        os.killpg(self.process.pid, signal.SIGINT)
        sent = time.monotonic()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(STOP_TIMEOUT_S)
        exit_s = time.monotonic() - sent
        return Stopped(exit_s, self.process.returncode, self.leftovers(), self.output())

    def leftovers(self) -> list[str]:
        """The processes seen below the command that still run, as "pid name"."""
        left = []
        for process in self.seen.values():
            with contextlib.suppress(psutil.Error):
                if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                    left.append(f"{process.pid} {process.name()}")
        return left

    def end(self) -> None:
        """Whatever the test's outcome: nothing it started stays (SIGINT first, then SIGKILL by PID)."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(STOP_TIMEOUT_S)
        for process in self.seen.values():
            with contextlib.suppress(psutil.Error):
                process.kill()
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@dataclass(frozen=True)
class Stopped:
    exit_s: float
    returncode: int | None
    leftovers: list[str]
    output: str


@contextlib.contextmanager
def started(argv: list[str], log: Path, env: dict[str, str] | None = None) -> Iterator[Run]:
    """Run `argv` from the repository root, in a session (so a process group) of its own, output to `log`."""
    with log.open("wb") as out:
        process = subprocess.Popen(
            argv, cwd=REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    run = Run(process, log)
    try:
        yield run
    finally:
        run.end()


def answers(url: str) -> Callable[[], bool]:
    def check() -> bool:
        try:
            return httpx.get(url, timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    return check


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fixture repository with doubleit alone in its dev environment, its model built here (a second)."""
    root = tmp_path_factory.mktemp("local-stop") / "repo"
    shutil.copytree(FIXTURE_REPO, root)
    model = root / "models" / "doubleit.pt"
    model.parent.mkdir()
    build_doubleit(model)
    apps = {
        "apps": [
            {
                "name": APP,
                "import_path": "serve_apps.doubleit.app:app_builder",
                "route_prefix": f"/{APP}",
                "model": {"uri": f"file://{model}", "sha256": sha256_of(model)},
                "slo": {"p95_ms": 1000, "error_rate": 0.01, "min_rps": 1},
                "deployments": [{"name": "DoubleIt", "num_replicas": 1, "ray_actor_options": {"num_cpus": 0.5}}],
            }
        ]
    }
    (root / "deployments/base/apps.yaml").write_text(yaml.safe_dump(apps))
    env_file = root / f"deployments/{ENV}/env.yaml"
    env = yaml.safe_load(env_file.read_text())
    del env["apps"]  # overlays of the fixture's echo apps
    env_file.write_text(yaml.safe_dump(env))
    return root


@dataclass(frozen=True)
class Serving:
    run: Run
    url: str
    dashboard: str
    root: Path


@pytest.fixture(scope="module")
def serving(repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Serving]:
    """`python -m localrun.serve dev` of `repo`, answering; the last test of the module stops it."""
    port, dashboard_port = free_port(), free_port()
    argv = [sys.executable, "-m", "localrun.serve", ENV, "--root", str(repo), "--port", str(port)]
    argv += ["--dashboard-port", str(dashboard_port)]
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    with started(argv, log) as run:
        url = f"http://127.0.0.1:{port}/{APP}"
        run.wait_for(answers(f"{url}/healthz"), "answering")
        run.wait_for(lambda: "serving; Ctrl-C stops" in run.output(), "ready")
        yield Serving(run, url, f"http://127.0.0.1:{dashboard_port}", repo)


def test_serve_logs_predictions_in_its_checkout(serving: Serving) -> None:
    assert httpx.post(f"{serving.url}/predict", json={"values": [1.5]}, timeout=30).json() == {"values": [3.0]}
    log = serving.root / LOCAL_PREDICTION_LOG
    assert f"prediction log: sqlite:///{log}" in serving.run.output()
    deadline = time.monotonic() + 30  # the replica writes its log in batches, every 0.1 s, after making the table
    rows = 0
    while rows == 0 and time.monotonic() < deadline:
        time.sleep(0.2)
        rows = _logged_rows(log)
    assert rows >= 1


def _logged_rows(log: Path) -> int:
    """Rows of APP in the SQLite log; 0 while the file or its table does not exist yet."""
    if not log.exists():
        return 0
    with contextlib.closing(sqlite3.connect(log)) as db:
        try:
            return int(db.execute("SELECT COUNT(*) FROM prediction_log WHERE app = ?", (APP,)).fetchone()[0])
        except sqlite3.OperationalError:  # no such table yet
            return 0


def test_serve_prints_a_dashboard_command_that_gets_in(serving: Serving) -> None:
    output = serving.run.output()
    (command,) = re.findall(r"its API: (curl .*)", output)
    assert httpx.get(f"{serving.dashboard}/api/serve/applications/", timeout=30).status_code == 401
    answered = subprocess.run(["bash", "-c", f"{command} --silent --show-error --fail"], capture_output=True)
    assert answered.returncode == 0, answered.stderr.decode()
    assert APP in json.loads(answered.stdout)["applications"]


def test_serve_keeps_rays_log_lines_out_of_the_terminal(serving: Serving) -> None:
    """Without --ray-logs the terminal holds the toolkit's lines and Ray's warnings, not Ray's INFO lines (the proxy
    and replicas log each request and endpoint table); it names the session's log directory, which has them."""
    for _ in range(3):  # requests: with Ray's lines forwarded, each would print the replica's access line
        httpx.post(f"{serving.url}/predict", json={"values": [1.0]}, timeout=30)
    time.sleep(2)  # Ray forwards worker lines to the driver about once a second
    output = serving.run.output()
    assert not [line for line in output.splitlines() if "INFO" in line], output[-3000:]
    (logs,) = re.findall(r"^Ray's logs: (\S+) \(--ray-logs prints them here too\)$", output, re.MULTILINE)
    assert Path(logs).is_dir() and any(Path(logs).glob("serve/*.log"))


def test_ctrl_c_stops_serve_and_all_it_started(serving: Serving) -> None:
    stopped = serving.run.ctrl_c()
    assert stopped.exit_s < STOP_TIMEOUT_S, f"still running {STOP_TIMEOUT_S} s after Ctrl-C"
    assert len(serving.run.seen) > 5, "saw too few of Ray's processes to tell"
    assert not stopped.leftovers, f"left running: {stopped.leftovers}\n{stopped.output[-3000:]}"
    assert stopped.returncode == 0, stopped.output[-3000:]
    assert "SIGTERM received" not in stopped.output


def test_ctrl_c_stops_nox_serve_and_all_it_started(repo: Path, tmp_path: Path) -> None:
    # As a user runs it, with this venv in place of the session's: no second 2 GB venv for the test.
    port = free_port()
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    argv = [sys.executable, "-m", "nox", "--no-venv", "--no-install", "-s", "serve", "--", ENV]
    argv += ["--root", str(repo), "--port", str(port), "--dashboard-port", str(free_port())]
    with started(argv, tmp_path / "nox.log", env) as run:
        run.wait_for(answers(f"http://127.0.0.1:{port}/{APP}/healthz"), "answering")
        stopped = run.ctrl_c()
    assert stopped.exit_s < STOP_TIMEOUT_S, f"still running {STOP_TIMEOUT_S} s after Ctrl-C"
    assert not stopped.leftovers, f"left running: {stopped.leftovers}\n{stopped.output[-3000:]}"
    # nox's SIGTERM, 0.3 s after the Ctrl-C by default, made Ray's driver print a stack dump and die mid-shutdown.
    assert "SIGTERM received" not in stopped.output, stopped.output[-3000:]
    assert "stopped" in stopped.output.splitlines(), stopped.output[-3000:]


def test_ctrl_c_stops_a_load_test_and_all_it_started(tmp_path: Path) -> None:
    if not manifest_matches(REPO_ROOT / "models"):
        pytest.skip("models/ is not built: python -m serve_apps.build_models --out models")
    argv = [sys.executable, "-m", "loadtests", ENV, APP, "--duration", "600"]
    with started(argv, tmp_path / "loadtest.log") as run:

        def locust_running() -> bool:
            for process in list(run.seen.values()):
                with contextlib.suppress(psutil.Error):
                    if "locust" in process.cmdline():
                        return True
            return False

        run.wait_for(locust_running, "running Locust")
        stopped = run.ctrl_c()
    assert stopped.exit_s < STOP_TIMEOUT_S, f"still running {STOP_TIMEOUT_S} s after Ctrl-C"
    assert not stopped.leftovers, f"left running: {stopped.leftovers}\n{stopped.output[-3000:]}"
    assert stopped.returncode == 130, stopped.output[-3000:]
