#!/usr/bin/env python3
"""Run a real LocalStack as a plain host process (no Docker engine needed).

LocalStack's runtime is published on PyPI as ``localstack-core``. Its pins
conflict with the project's own dependencies, so it lives in its own virtualenv
(``$LOCALSTACK_VENV``, default ``<repo>/.venv-localstack``), built on demand.
See ``shared/recipes/localstack-without-docker.md`` for why each pin exists.

Library use::

    with LocalStackHost() as ls:            # builds the venv if needed
        boto3.client("s3", endpoint_url=ls.endpoint_url, ...)

CLI use (e.g. from a nox session)::

    python tools/localstack_host.py ensure-venv
    python tools/localstack_host.py start     # prints the endpoint, leaves it running
    python tools/localstack_host.py status
    python tools/localstack_host.py stop      # kills the process group it started

The process is always stopped by the PID/process group this module started,
never by name. Only the standard library is used, so any Python >= 3.10 can
drive it.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_VENV = REPO_ROOT / ".venv-localstack"

# Exact pins from the recipe; changing any of them rebuilds the venv.
LOCALSTACK_PINS: tuple[str, ...] = (
    "localstack-core[runtime]==4.9.2",
    "cbor2<5.7",
    "pyopenssl==26.0.0",
    "cryptography>=46,<47",
    "service_identity<26",
)
MARKER_NAME = ".localstack-host-pins.json"
STATE_NAME = "localstack-host.json"  # CLI start/stop bookkeeping, inside the venv

DEFAULT_PORT = 4566
DEFAULT_HOST = "127.0.0.1"
DEFAULT_SERVICES: tuple[str, ...] = ("s3", "secretsmanager", "sts", "iam")
READY_STATES = frozenset({"available", "running"})
DEFAULT_STARTUP_TIMEOUT = 120.0
HEALTH_PATH = "/_localstack/health"

Log = Callable[[str], None]


class LocalStackError(RuntimeError):
    """LocalStack could not be installed, started or reached."""


class _PortTaken(LocalStackError):
    """LocalStack could not bind its port (someone else holds it)."""


def _log(msg: str) -> None:
    print(f"[localstack-host] {msg}", file=sys.stderr, flush=True)


def venv_dir_from_env() -> Path:
    return Path(os.environ.get("LOCALSTACK_VENV") or DEFAULT_VENV).expanduser().resolve()


def venv_python(venv_dir: Path) -> Path:
    return venv_dir / "bin" / "python"


# --------------------------------------------------------------------------- venv


def _base_python() -> str:
    """Interpreter used for ``-m venv``: $LOCALSTACK_PYTHON, else this one."""
    return os.environ.get("LOCALSTACK_PYTHON") or sys.executable


def _python_version(python: str) -> str:
    out = subprocess.run(
        [python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip()


def _wanted_marker(python: str, pins: Sequence[str]) -> dict[str, object]:
    return {"pins": list(pins), "python": _python_version(python)}


def _read_marker(venv_dir: Path) -> dict[str, object] | None:
    try:
        return json.loads((venv_dir / MARKER_NAME).read_text())
    except (OSError, ValueError):
        return None


def venv_is_current(venv_dir: Path | None = None, pins: Sequence[str] = LOCALSTACK_PINS) -> bool:
    venv_dir = venv_dir or venv_dir_from_env()
    marker = _read_marker(venv_dir)
    return marker is not None and marker.get("pins") == list(pins) and venv_python(venv_dir).exists()


def _lock_path(venv_dir: Path) -> Path:
    # Outside the venv (it may be deleted) and outside the repo (nothing to gitignore).
    digest = hashlib.sha256(str(venv_dir).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"localstack-host-venv-{digest}.lock"


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def ensure_venv(
    venv_dir: Path | None = None,
    pins: Sequence[str] = LOCALSTACK_PINS,
    log: Log = _log,
) -> Path:
    """Create (idempotently) the LocalStack venv; return its directory.

    A marker file records the pins and the Python version; if either differs,
    the venv is rebuilt from scratch. Concurrent callers serialise on a lock.
    """
    venv_dir = (venv_dir or venv_dir_from_env()).resolve()
    python = _base_python()
    with _file_lock(_lock_path(venv_dir)):
        wanted = _wanted_marker(python, pins)
        if _read_marker(venv_dir) == wanted and venv_python(venv_dir).exists():
            return venv_dir
        t0 = time.monotonic()
        if venv_dir.exists():
            if not (venv_dir / "pyvenv.cfg").exists():
                raise LocalStackError(
                    f"{venv_dir} exists but is not a virtualenv; refusing to replace it "
                    "(set LOCALSTACK_VENV to another path)"
                )
            log(f"pins changed or venv incomplete: rebuilding {venv_dir}")
            shutil.rmtree(venv_dir)
        log(f"creating venv {venv_dir} with {python} (Python {wanted['python']})")
        subprocess.run([python, "-m", "venv", str(venv_dir)], check=True)
        log("installing " + " ".join(pins) + " (about a minute the first time)")
        cmd = [
            str(venv_python(venv_dir)),
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "--progress-bar",
            "off",
            *pins,
        ]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert proc.stdout is not None
        tail: list[str] = []
        for line in proc.stdout:
            line = line.rstrip()
            tail = [*tail[-39:], line]
            if line.startswith(("Collecting", "Successfully", "ERROR", "error")):
                log("pip: " + line[:160])
        if proc.wait() != 0:
            raise LocalStackError(f"pip install into {venv_dir} failed (exit {proc.returncode}):\n" + "\n".join(tail))
        (venv_dir / MARKER_NAME).write_text(json.dumps(wanted, indent=2) + "\n")
        log(f"venv ready in {time.monotonic() - t0:.1f}s")
        return venv_dir


# --------------------------------------------------------------------------- ports / health


def port_is_free(port: int, host: str = DEFAULT_HOST) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        # Same option LocalStack's server (twisted) sets: a port whose only users are
        # TIME_WAIT leftovers counts as free, a port with a listener does not.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


def free_port(host: str = DEFAULT_HOST) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def choose_port(preferred: int | None = DEFAULT_PORT, host: str = DEFAULT_HOST) -> int:
    """The preferred port if nobody listens there, else a free ephemeral port.

    We never reuse a port someone else holds: whatever answers there is a stranger.
    """
    if preferred and port_is_free(preferred, host):
        return preferred
    return free_port(host)


def read_health(endpoint_url: str, timeout: float = 2.0) -> dict[str, object]:
    if not endpoint_url.startswith(("http://", "https://")):
        raise ValueError(f"not an http(s) URL: {endpoint_url!r}")
    with urllib.request.urlopen(endpoint_url + HEALTH_PATH, timeout=timeout) as resp:  # noqa: S310 (checked above)
        return json.loads(resp.read().decode())


def wait_for_health(
    endpoint_url: str,
    services: Iterable[str] = DEFAULT_SERVICES,
    timeout: float = DEFAULT_STARTUP_TIMEOUT,
    interval: float = 0.25,
    alive: Callable[[], bool] | None = None,
) -> dict[str, object]:
    """Poll ``/_localstack/health`` until every service is available/running.

    ``alive`` (optional) is checked each round so a crashed process fails fast
    instead of running out the deadline. Raises LocalStackError on timeout.
    """
    wanted = list(services)
    deadline = time.monotonic() + timeout
    last: object = "no answer yet"
    while True:
        if alive is not None and not alive():
            raise LocalStackError(f"LocalStack exited before becoming healthy (last: {last})")
        try:
            health = read_health(endpoint_url)
            states = health.get("services", {})
            assert isinstance(states, dict)
            pending = {s: states.get(s) for s in wanted if states.get(s) not in READY_STATES}
            if not pending:
                return health
            last = f"not ready: {pending}"
        except (OSError, ValueError, urllib.error.URLError) as exc:
            last = repr(exc)
        if time.monotonic() >= deadline:
            raise LocalStackError(f"LocalStack at {endpoint_url} not healthy after {timeout:.0f}s ({last})")
        time.sleep(interval)


# --------------------------------------------------------------------------- process


def _pid_is_ours(pid: int) -> bool:
    """True if ``pid`` still runs LocalStack (guards against PID reuse)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"localstack.runtime.main" in cmdline


def _process_group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def kill_process_group(pgid: int, timeout: float = 20.0, log: Log = _log) -> None:
    """SIGTERM the group, wait up to ``timeout``, then SIGKILL; wait until gone."""
    for sig, grace in ((signal.SIGTERM, timeout), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(-pgid, os.WNOHANG)  # reap our own children if any
            if not _process_group_alive(pgid):
                return
            time.sleep(0.1)
        if sig == signal.SIGTERM:
            log(f"process group {pgid} ignored SIGTERM for {grace:.0f}s; sending SIGKILL")
    if _process_group_alive(pgid):
        raise LocalStackError(f"process group {pgid} survived SIGKILL")


def _parent_death_signal() -> Callable[[], None] | None:
    """A preexec_fn that asks Linux to SIGTERM the child when its parent dies."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)  # resolved in the parent, before fork
    prctl = libc.prctl
    parent = os.getpid()

    def preexec() -> None:
        prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG
        if os.getppid() != parent:  # parent already gone before prctl took effect
            os._exit(1)

    return preexec


class LocalStackHost:
    """One LocalStack process in host mode, owned by this object."""

    def __init__(
        self,
        venv_dir: Path | None = None,
        port: int | None = None,
        host: str = DEFAULT_HOST,
        services: Sequence[str] = DEFAULT_SERVICES,
        data_dir: Path | None = None,
        log_path: Path | None = None,
        startup_timeout: float = DEFAULT_STARTUP_TIMEOUT,
        extra_env: dict[str, str] | None = None,
        die_with_parent: bool = True,
        log: Log = _log,
    ) -> None:
        self.venv_dir = (venv_dir or venv_dir_from_env()).resolve()
        env_port = os.environ.get("LOCALSTACK_PORT")
        self.preferred_port = port if port is not None else int(env_port or DEFAULT_PORT)
        self.host = host
        self.services = tuple(services)
        self._own_data_dir = data_dir is None
        self.data_dir = data_dir
        self.log_path = log_path
        self.startup_timeout = startup_timeout
        self.extra_env = dict(extra_env or {})
        # If the owner is SIGKILLed, its finalizers never run: let the kernel send
        # SIGTERM to LocalStack then (Linux). The CLI's detached `start` turns this off.
        self.die_with_parent = die_with_parent
        self.log = log
        self.port: int | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self.pid: int | None = None
        self.startup_seconds: float | None = None
        self._log_offset = 0

    # -- public ------------------------------------------------------------
    @property
    def endpoint_url(self) -> str:
        if self.port is None:
            raise LocalStackError("LocalStack not started")
        return f"http://{self.host}:{self.port}"

    def start(self) -> LocalStackHost:
        if self.pid is not None:
            raise LocalStackError(f"already started (pid {self.pid})")
        ensure_venv(self.venv_dir, log=self.log)
        if self.data_dir is None:
            self.data_dir = Path(tempfile.mkdtemp(prefix="localstack-host-"))
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.log_path is None:
            self.log_path = self.data_dir / "localstack.log"
        t0 = time.monotonic()
        preferred: int | None = self.preferred_port
        for attempt in range(3):
            self.port = choose_port(preferred, self.host)
            if preferred and self.port != preferred:
                self.log(f"port {preferred} is taken; using free port {self.port}")
            self._spawn()
            try:
                wait_for_health(self.endpoint_url, self.services, timeout=self.startup_timeout, alive=self._alive)
                self._check_bound()  # whoever answered must be us
            except _PortTaken:
                # Someone grabbed the port between our check and LocalStack's bind.
                self.log(f"port {self.port} was taken before LocalStack could bind it; retrying")
                self._kill(timeout=2.0)  # a LocalStack that failed to bind ignores SIGTERM
                if attempt == 2:
                    self._cleanup_data()
                    raise LocalStackError("could not bind a port after 3 attempts") from None
                preferred = None
                continue
            except BaseException as exc:
                tail = self.log_tail()
                self.stop()
                if isinstance(exc, LocalStackError):
                    raise LocalStackError(f"{exc}\n--- {self.log_path} (tail) ---\n{tail}") from None
                raise
            break
        self.startup_seconds = time.monotonic() - t0
        self.log(f"healthy after {self.startup_seconds:.1f}s")
        return self

    def stop(self, timeout: float = 20.0) -> None:
        """Kill the process group we started (by PID), wait for it, remove temp data."""
        self._kill(timeout)
        self._cleanup_data()

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = Path(self.log_path).read_text(errors="replace") if self.log_path else ""
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> LocalStackHost:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- internals ---------------------------------------------------------
    def _spawn(self) -> None:
        assert self.log_path is not None
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with open(self.log_path, "ab") as logf:
            self.proc = subprocess.Popen(
                [str(venv_python(self.venv_dir)), "-m", "localstack.runtime.main"],
                stdin=subprocess.DEVNULL,
                stdout=logf,
                stderr=subprocess.STDOUT,
                env=self._environment(),
                cwd=self.data_dir,
                start_new_session=True,  # own process group: stop() kills exactly it
                preexec_fn=_parent_death_signal() if self.die_with_parent else None,
            )
        self.pid = self.proc.pid
        self.log(f"started pid {self.pid} on {self.endpoint_url}, log {self.log_path}")

    def _bind_failed(self) -> bool:
        # LocalStack 4.9 logs CannotListenError, then carries on and even prints
        # "Ready." -- so a failed bind has to be read from its log.
        try:
            with open(self.log_path or "", "rb") as fh:
                fh.seek(self._log_offset)
                return b"CannotListenError" in fh.read()
        except OSError:
            return False

    def _alive(self) -> bool:
        if self._bind_failed():
            raise _PortTaken(self.port)
        return self.proc is not None and self.proc.poll() is None

    def _check_bound(self) -> None:
        if self._bind_failed():
            raise _PortTaken(self.port)

    def _kill(self, timeout: float = 20.0) -> None:
        if self.pid is None:
            return
        kill_process_group(self.pid, timeout=timeout, log=self.log)
        if self.proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=5)
        self.log(f"stopped pid {self.pid}")
        self.pid = None
        self.proc = None

    def _cleanup_data(self) -> None:
        # The log lives in the temp data dir; LOCALSTACK_KEEP_DATA=1 keeps both.
        if self._own_data_dir and self.data_dir is not None and not os.environ.get("LOCALSTACK_KEEP_DATA"):
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def _environment(self) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            # Our own AWS_* / LocalStack settings of the caller must not leak in.
            if not k.startswith(("AWS_", "LOCALSTACK_", "GATEWAY_", "PYTHON"))
        }
        assert self.data_dir is not None
        env.update(
            {
                "GATEWAY_LISTEN": f"{self.host}:{self.port}",
                "SERVICES": ",".join(self.services),
                "PERSISTENCE": "0",
                # Host-mode directories: everything under our temp dir.
                "FILESYSTEM_ROOT": str(self.data_dir / "fs"),
                # No network beyond loopback: skip cert download, analytics, DNS server.
                "SKIP_SSL_CERT_DOWNLOAD": "1",
                "DISABLE_EVENTS": "1",
                "DNS_ADDRESS": "0",
                "AWS_DEFAULT_REGION": "us-east-1",
                "PYTHONUNBUFFERED": "1",
            }
        )
        env.update(self.extra_env)
        return env


# --------------------------------------------------------------------------- CLI


def _state_path(venv_dir: Path) -> Path:
    return Path(os.environ.get("LOCALSTACK_STATE") or venv_dir / STATE_NAME)


def _cli_start(args: argparse.Namespace) -> int:
    venv_dir = venv_dir_from_env()
    state_path = _state_path(venv_dir)
    if state_path.exists():
        state = json.loads(state_path.read_text())
        if _pid_is_ours(state["pid"]):
            print(state["endpoint_url"])
            _log(f"already running (pid {state['pid']})")
            return 0
        state_path.unlink()
    ls = LocalStackHost(venv_dir=venv_dir, port=args.port, startup_timeout=args.timeout, die_with_parent=False)
    ls.start()
    state = {
        "pid": ls.pid,
        "endpoint_url": ls.endpoint_url,
        "port": ls.port,
        "data_dir": str(ls.data_dir),
        "log_path": str(ls.log_path),
        "startup_seconds": ls.startup_seconds,
    }
    state_path.write_text(json.dumps(state, indent=2) + "\n")
    # Detach: the child stays alive after we exit; `stop` finds it via the state file.
    ls.proc = None
    print(ls.endpoint_url)
    return 0


def _cli_stop(_args: argparse.Namespace) -> int:
    state_path = _state_path(venv_dir_from_env())
    if not state_path.exists():
        _log("not running (no state file)")
        return 0
    state = json.loads(state_path.read_text())
    pid = int(state["pid"])
    if _pid_is_ours(pid):
        kill_process_group(pid)
        _log(f"stopped pid {pid}")
    else:
        _log(f"pid {pid} is no longer LocalStack; nothing to kill")
    if not os.environ.get("LOCALSTACK_KEEP_DATA"):
        shutil.rmtree(state["data_dir"], ignore_errors=True)
    state_path.unlink()
    return 0


def _cli_status(_args: argparse.Namespace) -> int:
    state_path = _state_path(venv_dir_from_env())
    if not state_path.exists():
        print("stopped")
        return 1
    state = json.loads(state_path.read_text())
    if not _pid_is_ours(int(state["pid"])):
        print("stale state file (process gone)")
        return 1
    try:
        health = read_health(state["endpoint_url"])
    except OSError as exc:
        print(f"pid {state['pid']} running but health failed: {exc}")
        return 1
    print(json.dumps({**state, "health": health.get("services")}, indent=2))
    return 0


def _cli_ensure_venv(_args: argparse.Namespace) -> int:
    print(ensure_venv())
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p_start = sub.add_parser("start", help="start in the background, print the endpoint URL")
    p_start.add_argument("--port", type=int, default=None, help="preferred port (default 4566)")
    p_start.add_argument("--timeout", type=float, default=DEFAULT_STARTUP_TIMEOUT)
    p_start.set_defaults(func=_cli_start)
    sub.add_parser("stop", help="stop the instance started by `start`").set_defaults(func=_cli_stop)
    sub.add_parser("status", help="show the running instance").set_defaults(func=_cli_status)
    sub.add_parser("ensure-venv", help="create/refresh $LOCALSTACK_VENV").set_defaults(func=_cli_ensure_venv)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except LocalStackError as exc:
        _log(f"error: {exc}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
