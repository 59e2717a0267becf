"""Run the load tests of an environment: a local Serve of it unless a host is given, then Locust headless per app.

Locust runs as a subprocess (its CLI): it monkey-patches the process with gevent on import, which the Ray driver
that deploys the local Serve must not share, and a fresh process per app starts from empty statistics.
"""

import contextlib
import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from loadtests.errors import LoadTestError
from loadtests.results import read_result
from loadtests.slo import Measurement, Violation, offered_rps, users_needed, violations
from loadtests.spec import locustfile_of
from localrun.serve import LOCAL_HOST, apply_ray_env, deploy, env_plan, local_ray_env, logical_cpus
from localrun.stop import local_ray, stop_group
from render.spec.models import App, Slo, Spec
from serve_apps.common.prediction_log import DB_URL_ENV

REPORTS_DIR = Path("reports", "loadtest")
CSV_PREFIX = "locust"
HTML_FILE = "report.html"
LOG_FILE = "locust.log"
RESULT_FILE = "result.json"
READY_TIMEOUT_S = 30.0
# Locust's start-up (imports, spec, data sets) and shutdown, on top of the run time.
LOCUST_GRACE_S = 120
LOG_TAIL_LINES = 20
# Ray starts its workers at nice 15, to keep its own daemons responsive. Here the replicas share the cores with
# Locust and with whatever else runs on the machine, which a replica in its own pod does not; at nice 15 every
# other process gets some 28 times their CPU share, and under load p95 would measure the machine, not the app.
RAY_SYSTEM_CONFIG = {"worker_niceness": 0}


@dataclass(frozen=True)
class LoadOptions:
    """How hard and how long each app is driven."""

    users: int | None = None  # per app; None: loadtests.slo.users_needed for its SLOs
    duration_s: int = 30
    spawn_rate: float | None = None  # users started per second; None starts them all within the first second


@dataclass(frozen=True)
class AppReport:
    """One app's measurement under load, judged against its SLOs; Locust's files are in `report_dir`."""

    app: App
    users: int
    measurement: Measurement
    report_dir: Path

    @property
    def violations(self) -> list[Violation]:
        """The app's SLOs this measurement breaks."""
        return violations(self.app.name, self.app.slo, self.measurement)


def run_load_tests(root: Path, spec: Spec, apps: list[App], host: str | None, options: LoadOptions) -> list[AppReport]:
    """Load-test `apps` of `spec` one after the other, at `host` or on a local Serve started (and stopped) here.

    Raises LoadTestError (and localrun.serve.DeployError) when a test cannot run; SLO violations are in the
    reports, not raised.
    """
    locustfiles = {app.name: locustfile_of(root, app) for app in apps}
    env = spec.env.name
    serving = local_serve(root, env, [app.name for app in apps]) if host is None else contextlib.nullcontext(host)
    with serving as base_url:
        return [
            run_app(root, env, app, locustfiles[app.name], base_url, options, root / REPORTS_DIR / env / app.name)
            for app in apps
        ]


@contextlib.contextmanager
def local_serve(root: Path, env: str, apps: list[str]) -> Iterator[str]:
    """Deploy the named apps of `env`'s Serve config (as `nox -s serve` runs it) and yield the base URL.

    Starts Ray (explicit logical CPUs, RAY_SYSTEM_CONFIG, the env's Ray variables) unless this process is already
    connected to one (a test session's), and stops only what it started: Serve always, Ray (localrun.stop)
    if it started it.
    Predictions go to $PREDICTION_DB_URL if set, else to throwaway SQLite files, one per app.
    """
    import ray
    from ray import serve

    plan = env_plan(root, env)
    config = plan.serve_config()
    config["applications"] = [app for app in config["applications"] if app["name"] in apps]
    cpus = logical_cpus(config)
    ray_env = local_ray_env(plan)
    started_ray = not ray.is_initialized()
    if started_ray:
        print(f"starting Ray ({cpus} logical CPUs) and Serve for {env}: {', '.join(apps)}", file=sys.stderr)
        apply_ray_env(ray_env)
    elif (offered := ray.cluster_resources().get("CPU", 0)) < cpus:
        raise LoadTestError(f"the connected Ray offers {offered:g} CPUs; {env} needs {cpus} for {', '.join(apps)}")
    elif unset := sorted(name for name, value in ray_env.items() if os.environ.get(name) != value):
        raise LoadTestError(
            f"{env} runs Ray with {', '.join(f'{n}={ray_env[n]}' for n in unset)}; the connected Ray was "
            "started without. Hint: set them before ray.init (localrun.serve.apply_ray_env)"
        )
    ray_here = (
        local_ray(
            root,  # replicas resolve relative file:// model URIs against the directory Ray was started in
            address="local",  # a new Ray, even when `ray start` left one running on this machine
            num_cpus=cpus,
            include_dashboard=False,
            log_to_driver=False,
            logging_level=logging.WARNING,
            _system_config=RAY_SYSTEM_CONFIG,
        )
        if started_ray
        else contextlib.nullcontext()
    )
    with ray_here, tempfile.TemporaryDirectory(prefix="loadtest-predictions-") as predictions:
        if DB_URL_ENV not in os.environ:
            # Unless told where (as the cluster's secret tells the pods), each app logs this run's predictions to a
            # SQLite file of its own. The local default is one file for the whole machine, which every local Serve
            # writes to and nothing trims; contending for it doubled doubleit's p95 here.
            for application in config["applications"]:
                env_vars = application.setdefault("runtime_env", {}).setdefault("env_vars", {})
                env_vars[DB_URL_ENV] = f"sqlite:///{Path(predictions, application['name'])}.sqlite"
        try:
            served = deploy(config, _free_port())
            for name, seconds in served.seconds_to_running.items():
                print(f"  {name} running after {seconds:.1f} s", file=sys.stderr)
            yield served.url
        finally:
            if not started_ray:  # a Ray started here stops with its Serve (local_ray)
                serve.shutdown()


def run_app(
    root: Path, env: str, app: App, locustfile: Path, base_url: str, options: LoadOptions, report_dir: Path
) -> AppReport:
    """Drive one app with Locust headless from `root`; its CSV, HTML report, log and result replace `report_dir`."""
    shutil.rmtree(report_dir, ignore_errors=True)
    report_dir.mkdir(parents=True)
    app_url = base_url.rstrip("/") + app.route_prefix.rstrip("/")
    wait_ready(f"{app_url}/healthz", READY_TIMEOUT_S)
    users = options.users or users_needed(app.slo)
    print(
        f"{app.name}: {users} users offering {offered_rps(app.slo):g} req/s for {options.duration_s} s to {app_url}",
        file=sys.stderr,
    )
    command = [
        sys.executable,
        "-m",
        "locust",
        "--locustfile",
        str(locustfile),
        "--headless",
        "--only-summary",
        "--host",
        base_url,
        "--env",
        env,
        "--users",
        str(users),
        "--spawn-rate",
        f"{options.spawn_rate or users:g}",
        "--run-time",
        f"{options.duration_s}s",
        "--csv",
        str(report_dir / CSV_PREFIX),
        "--html",
        str(report_dir / HTML_FILE),
        "--result-json",
        str(report_dir / RESULT_FILE),
    ]
    log = report_dir / LOG_FILE
    with log.open("w", encoding="utf-8") as output:
        # cwd: `python -m` puts the repository root on sys.path, where the locustfile imports loadtests from.
        locust = subprocess.Popen(command, cwd=root, stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            returncode = locust.wait(options.duration_s + LOCUST_GRACE_S)
        except subprocess.TimeoutExpired:
            raise LoadTestError(f"{app.name}: Locust did not finish; see {log}") from None
        finally:
            stop_group(locust)
    try:
        result = read_result(report_dir / RESULT_FILE)
    except (OSError, ValidationError):
        raise LoadTestError(
            f"{app.name}: Locust exited with {returncode} without a measurement; end of {log}:\n{_tail(log)}"
        ) from None
    if result.locustfile_errors:
        raise LoadTestError(f"{app.name}: the locustfile raised (see {log}): {'; '.join(result.locustfile_errors)}")
    return AppReport(app, users, result.measurement, report_dir)


def wait_ready(url: str, timeout_s: float) -> None:
    """Poll GET `url` until it answers 200; raise LoadTestError with the last problem after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - http(s) URL built from --host
                if response.status == 200:
                    return
                problem = f"HTTP {response.status}"
        except urllib.error.HTTPError as error:
            problem = f"HTTP {error.code}"
        except (urllib.error.URLError, OSError) as error:
            problem = str(getattr(error, "reason", error))
        if time.monotonic() > deadline:
            raise LoadTestError(f"{url} is not ready after {timeout_s:g} s: {problem}")
        time.sleep(0.5)


def table(reports: list[AppReport]) -> str:
    """The results as an aligned text table: measured figures, (limits) from the spec, and the verdict."""
    header = (
        "app",
        "users",
        "requests",
        "req/s (min)",
        "p50 ms",
        "p95 ms (max)",
        "TTFT p95 ms (max)",
        "errors (max)",
        "SLO",
    )
    rows = [header]
    for report in reports:
        measured, slo = report.measurement, report.app.slo
        broken = report.violations
        rows.append(
            (
                report.app.name,
                str(report.users),
                str(measured.requests),
                f"{measured.rps:.1f} ({slo.min_rps:g})",
                f"{measured.p50_ms:g}",
                f"{measured.p95_ms:g} ({slo.p95_ms:g})",
                _ttft_cell(measured, slo),
                f"{measured.error_rate:.2%} ({slo.error_rate:.2%})",
                "pass" if not broken else "FAIL: " + ", ".join(v.field for v in broken),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = []
    for row in rows:
        cells = [
            cell.ljust(width) if i in (0, len(row) - 1) else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def _ttft_cell(measured: Measurement, slo: Slo) -> str:
    """The TTFT p95 measured and its limit; "-" for what there is not (an app that does not stream has neither)."""
    if measured.ttft_p95_ms is None and slo.ttft_p95_ms is None:
        return "-"
    value = "-" if measured.ttft_p95_ms is None else f"{measured.ttft_p95_ms:g}"
    return value if slo.ttft_p95_ms is None else f"{value} ({slo.ttft_p95_ms:g})"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((LOCAL_HOST, 0))
        return int(probe.getsockname()[1])


def _tail(path: Path) -> str:
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    return "\n".join(lines[-LOG_TAIL_LINES:])
