"""Backing services for the integration tests: a MySQL database and an S3 endpoint.

Two interchangeable backends produce the same :class:`Services` object:

* ``docker``: Testcontainers (``MySqlContainer``, ``LocalStackContainer``) with pinned
  image tags and readiness waits; used wherever a Docker engine answers.
* ``local``: real local processes, for machines without a Docker engine: the
  MariaDB/MySQL server at 127.0.0.1:3306 (a fresh, uniquely named database per run,
  dropped afterwards) and LocalStack in host mode (``tools/localstack_host.py``),
  started from its own virtualenv and stopped by its process group.

``SERVICES_BACKEND=auto|docker|local`` chooses (default ``auto``: docker if an engine answers
``ping`` and can have every image the backend runs, else local). The images are settings
(``SERVICES_MYSQL_IMAGE``, ``SERVICES_LOCALSTACK_IMAGE``); "can have" means present, a stand-in
that ``service_images.py`` builds without a registry, or pullable. When Testcontainers' Ryuk
reaper image cannot be had either, Ryuk is disabled and this module removes its containers
itself, including those a killed run left behind. When nothing usable is running,
:class:`ServicesUnavailable` says what to start.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import secrets
import socket
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import psutil
import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url
from sqlalchemy.pool import NullPool

from tests.integration import service_images

REPO_ROOT = Path(__file__).resolve().parents[2]

# --------------------------------------------------------------------------- settings

BACKEND_ENV = "SERVICES_BACKEND"
BACKEND_CHOICES = ("auto", "docker", "local")

# Pinned images for the docker backend (override with the env vars, keep them pinned). Where no registry is
# reachable, the stand-ins of service_images.py: local/mariadb-mysql:10.11 and local/localstack:4.9.2.
MYSQL_IMAGE = os.environ.get("SERVICES_MYSQL_IMAGE", "mysql:8.4")
LOCALSTACK_IMAGE = os.environ.get(
    "SERVICES_LOCALSTACK_IMAGE", f"localstack/localstack:{service_images.LOCALSTACK_VERSION}"
)
# Every container of the docker backend carries its owner (host, pid, process start time): without Ryuk, the next
# run removes the containers of an owner that is gone.
OWNER_LABEL = "serving-toolkit.tests.owner"

# Admin connection for the local backend (a database is created and dropped through it).
LOCAL_MYSQL_ADMIN_ENV = "SERVICES_MYSQL_ADMIN_URL"
DEFAULT_LOCAL_MYSQL_ADMIN_URL = "mysql+pymysql://root:@127.0.0.1:3306"

AWS_SERVICES = ("s3", "secretsmanager", "sts", "iam")
AWS_REGION = "us-east-1"
AWS_ACCESS_KEY_ID = "test"
AWS_SECRET_ACCESS_KEY = "test"

DB_PREFIX = "it_"  # every database this module creates (and the only ones it drops)
READY_TIMEOUT = 120.0

START_DOCKER_HINT = (
    "start a Docker engine so that `docker info` answers (e.g. `sudo systemctl start docker`, "
    "Docker Desktop or colima; DOCKER_HOST is honoured)"
)
START_LOCAL_HINT = (
    "start the local MariaDB/MySQL server on 127.0.0.1:3306 (user root, empty password), e.g. "
    '`start-stop-daemon --start --oknodo --background --exec "$(command -v mariadbd)"`, '
    f"or point {LOCAL_MYSQL_ADMIN_ENV} at one; LocalStack is then started by the tests "
    "themselves in host mode from $LOCALSTACK_VENV "
    "(prepare it with `python tools/localstack_host.py ensure-venv`)"
)


IMAGES_HINT = (
    f"set SERVICES_MYSQL_IMAGE={service_images.MARIADB_STAND_IN} and "
    f"SERVICES_LOCALSTACK_IMAGE={service_images.LOCALSTACK_STAND_IN} (stand-ins built here from Debian packages "
    "and PyPI), or make the images pullable"
)


class ServicesUnavailable(RuntimeError):
    """No backend can provide the services; the message says what to start."""


# --------------------------------------------------------------------------- result


@dataclass(frozen=True)
class Services:
    """What the tests get, whichever backend produced it."""

    backend: str
    mysql_url: str  # SQLAlchemy form, e.g. mysql+pymysql://root:@127.0.0.1:3306/it_...
    s3_endpoint_url: str
    mysql_database: str
    aws_region: str = AWS_REGION
    aws_access_key_id: str = AWS_ACCESS_KEY_ID
    aws_secret_access_key: str = AWS_SECRET_ACCESS_KEY
    details: Mapping[str, Any] = field(default_factory=dict)  # start-up times, images, pids

    def aws_env(self) -> dict[str, str]:
        """Environment variables that point AWS SDKs/CLIs at the emulator."""
        return {
            "AWS_ENDPOINT_URL": self.s3_endpoint_url,
            "AWS_ACCESS_KEY_ID": self.aws_access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.aws_secret_access_key,
            "AWS_DEFAULT_REGION": self.aws_region,
            "AWS_REGION": self.aws_region,
        }

    def client(self, service_name: str, **kwargs: Any) -> Any:
        """A boto3 client bound explicitly to the emulator (independent of env vars)."""
        import boto3

        params: dict[str, Any] = {
            "endpoint_url": self.s3_endpoint_url,
            "region_name": self.aws_region,
            "aws_access_key_id": self.aws_access_key_id,
            "aws_secret_access_key": self.aws_secret_access_key,
        }
        params.update(kwargs)
        return boto3.client(service_name, **params)

    def summary(self) -> str:
        timing = self.details.get("startup_seconds")
        extra = f", ready in {timing:.1f}s" if isinstance(timing, float) else ""
        if self.backend == "docker":
            extra += f", images {self.details['mysql_image']} + {self.details['localstack_image']}"
            extra += f", {self.details['ryuk']}"
        elif self.details.get("not_docker"):
            extra += f"; not docker: {self.details['not_docker']}"
        return f"{self.backend} (mysql db {self.mysql_database}, s3 {self.s3_endpoint_url}{extra})"


# --------------------------------------------------------------------------- probes


def docker_available(timeout: float = 3.0) -> tuple[bool, str]:
    """(True, "") if a Docker engine answers ``ping``, else (False, why)."""
    try:
        import docker
    except ImportError as exc:  # pragma: no cover - docker is a test dependency
        return False, f"docker SDK not installed ({exc})"
    client = None
    try:
        client = docker.from_env(timeout=int(max(timeout, 1)))
        client.ping()
    except Exception as exc:  # DockerException, requests errors, socket errors...
        return False, f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    finally:
        if client is not None:
            with contextlib.suppress(Exception):
                client.close()
    return True, ""


def local_mysql_admin_url(environ: Mapping[str, str] | None = None) -> URL:
    env = os.environ if environ is None else environ
    return make_url(env.get(LOCAL_MYSQL_ADMIN_ENV) or DEFAULT_LOCAL_MYSQL_ADMIN_URL)


def _engine(url: URL | str, timeout: float = 5.0) -> sa.Engine:
    return sa.create_engine(url, poolclass=NullPool, connect_args={"connect_timeout": int(timeout)})


def mysql_available(admin_url: URL | str, timeout: float = 3.0) -> tuple[bool, str]:
    """(True, "") if ``SELECT 1`` works through ``admin_url``, else (False, why)."""
    engine = _engine(admin_url, timeout)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except Exception as exc:
        return False, f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
    finally:
        engine.dispose()
    return True, ""


def wait_for_mysql(url: URL | str, timeout: float = READY_TIMEOUT, interval: float = 0.5) -> None:
    """Poll ``SELECT 1`` until it works or the deadline passes."""
    deadline = time.monotonic() + timeout
    while True:
        ok, why = mysql_available(url)
        if ok:
            return
        if time.monotonic() >= deadline:
            raise ServicesUnavailable(f"MySQL at {make_url(url)!r} not ready after {timeout}s: {why}")
        time.sleep(interval)


# --------------------------------------------------------------------------- detection


def docker_images_unobtainable(images: tuple[str, ...] | None = None) -> str:
    """Why the engine cannot have the docker backend's images ("" when it can have them all)."""
    images = images or (MYSQL_IMAGE, LOCALSTACK_IMAGE)
    reasons = [why for why in map(service_images.unobtainable, images) if why]
    return "; ".join(reasons)


def choose_backend(environ: Mapping[str, str] | None = None) -> tuple[str, str]:
    """``("docker" | "local", why)`` according to ``SERVICES_BACKEND``; ``why`` says why ``auto`` did not take
    Docker ("" otherwise).

    Raises :class:`ServicesUnavailable` (saying what to start) if the requested
    backend, or for ``auto`` either backend, is not available.
    """
    env = os.environ if environ is None else environ
    choice = (env.get(BACKEND_ENV) or "auto").strip().lower()
    if choice not in BACKEND_CHOICES:
        raise ServicesUnavailable(f"{BACKEND_ENV}={choice!r} is not one of {'|'.join(BACKEND_CHOICES)}")

    docker_why = ""
    if choice in ("auto", "docker"):
        ok, docker_why = docker_available()
        if ok:
            docker_why = docker_images_unobtainable()
            if not docker_why:
                return "docker", ""
            docker_why = f"a Docker engine answers, but {docker_why}"
        if choice == "docker":
            raise ServicesUnavailable(
                f"{BACKEND_ENV}=docker but {docker_why if ok else f'no Docker engine answers ({docker_why})'}. "
                f"To run the integration tests, {START_DOCKER_HINT if not ok else IMAGES_HINT}; "
                f"or use {BACKEND_ENV}=local and {START_LOCAL_HINT}."
            )
        docker_why = docker_why if ok else f"no Docker engine answers ({docker_why})"

    admin_url = local_mysql_admin_url(env)
    ok, mysql_why = mysql_available(admin_url)
    if ok:
        return "local", docker_why
    where = admin_url.render_as_string(hide_password=True)
    if choice == "local":
        raise ServicesUnavailable(
            f"{BACKEND_ENV}=local but MySQL/MariaDB at {where} does not answer ({mysql_why}). "
            f"To run the integration tests, {START_LOCAL_HINT}."
        )
    raise ServicesUnavailable(
        f"No backing services for the integration tests: {docker_why} and MySQL/MariaDB at {where} does not "
        f"answer ({mysql_why}). Either {START_DOCKER_HINT} ({IMAGES_HINT}), or {START_LOCAL_HINT}."
    )


def detect_backend(environ: Mapping[str, str] | None = None) -> str:
    """``"docker"`` or ``"local"``: :func:`choose_backend` without its reason."""
    return choose_backend(environ)[0]


# --------------------------------------------------------------------------- backends


class Backend(Protocol):
    name: str

    def start(self) -> Services: ...

    def stop(self) -> None: ...


def new_database_name() -> str:
    """Unique per run: prefix, UTC timestamp, pid, random suffix (<= 64 chars)."""
    stamp = time.strftime("%Y%m%d%H%M%S", time.gmtime())
    return f"{DB_PREFIX}{stamp}_{os.getpid()}_{secrets.token_hex(3)}"


class MariaDbDatabase:
    """A throwaway database on an existing MySQL/MariaDB server.

    ``create()``/``drop()`` are what :class:`LocalBackend` uses; also a context
    manager that always drops. Only names starting with ``it_`` are accepted,
    so a typo can never drop somebody else's database.
    """

    def __init__(self, admin_url: URL | str, name: str | None = None) -> None:
        self.admin_url = make_url(admin_url).set(database=None)
        self.name = name or new_database_name()
        if not (
            self.name.startswith(DB_PREFIX)
            and self.name.replace("_", "").isalnum()
            and self.name.isascii()
            and len(self.name) <= 64
        ):
            raise ValueError(f"refusing database name {self.name!r} (must match {DB_PREFIX}[A-Za-z0-9_]*)")

    @property
    def url(self) -> str:
        return self.admin_url.set(database=self.name).render_as_string(hide_password=False)

    def _admin(self, sql: str) -> list[Any]:
        engine = _engine(self.admin_url)
        try:
            with engine.begin() as conn:
                result = conn.execute(sa.text(sql))
                return list(result) if result.returns_rows else []
        finally:
            engine.dispose()

    def create(self) -> str:
        self._admin(f"CREATE DATABASE `{self.name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
        return self.url

    def drop(self) -> None:
        self._admin(f"DROP DATABASE IF EXISTS `{self.name}`")

    def exists(self) -> bool:
        rows = self._admin(f"SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = '{self.name}'")
        return bool(rows)

    def __enter__(self) -> MariaDbDatabase:
        self.create()
        return self

    def __exit__(self, *exc: object) -> None:
        self.drop()


def _load_localstack_host() -> Any:
    """``tools/localstack_host.py``, through one function that a test can swap for a fake."""
    return importlib.import_module("tools.localstack_host")


class LocalBackend:
    """MariaDB at 127.0.0.1:3306 (fresh database) + LocalStack in host mode."""

    name = "local"

    def __init__(self, admin_url: URL | str | None = None, not_docker: str = "") -> None:
        self.admin_url = make_url(admin_url) if admin_url else local_mysql_admin_url()
        self.not_docker = not_docker  # why `auto` did not choose Docker, for the report
        self._stack = contextlib.ExitStack()
        self.database: MariaDbDatabase | None = None
        self.localstack: Any = None

    def start(self) -> Services:
        localstack_host = _load_localstack_host()
        t0 = time.monotonic()
        with contextlib.ExitStack() as stack:
            ok, why = mysql_available(self.admin_url)
            if not ok:
                raise ServicesUnavailable(
                    f"MySQL/MariaDB at {self.admin_url.render_as_string(hide_password=True)} "
                    f"does not answer ({why}). {START_LOCAL_HINT}."
                )
            self.database = MariaDbDatabase(self.admin_url)
            self.database.create()
            stack.callback(self.database.drop)
            t_db = time.monotonic() - t0

            self.localstack = localstack_host.LocalStackHost(services=AWS_SERVICES, startup_timeout=READY_TIMEOUT)
            try:
                self.localstack.start()
            except localstack_host.LocalStackError as exc:
                raise ServicesUnavailable(f"LocalStack (host mode) did not start: {exc}") from exc
            stack.callback(self.localstack.stop)
            self._stack = stack.pop_all()

        return Services(
            backend=self.name,
            mysql_url=self.database.url,
            mysql_database=self.database.name,
            s3_endpoint_url=self.localstack.endpoint_url,
            details={
                "startup_seconds": time.monotonic() - t0,
                "mysql_seconds": t_db,
                "localstack_seconds": self.localstack.startup_seconds,
                "localstack_pid": self.localstack.pid,
                "localstack_log": str(self.localstack.log_path),
                "localstack_venv": str(self.localstack.venv_dir),
                "not_docker": self.not_docker,
            },
        )

    def stop(self) -> None:
        """Stop LocalStack (by process group), then drop the database."""
        self._stack.close()


def owner_id() -> str:
    """This process as the owner of containers: host, pid and start time (a reused pid is another owner)."""
    return f"{socket.gethostname()}:{os.getpid()}:{psutil.Process().create_time():.0f}"


def owner_alive(owner: str) -> bool:
    """Whether the process an :func:`owner_id` names still runs (owners of other hosts count as alive)."""
    host, _, rest = owner.partition(":")
    pid, _, started = rest.partition(":")
    if host != socket.gethostname():
        return True
    try:
        return f"{psutil.Process(int(pid)).create_time():.0f}" == started
    except (psutil.NoSuchProcess, ValueError):
        return False


def reap_orphans(client: Any) -> list[str]:
    """Remove the containers of this module whose owner is gone (Ryuk's job, when Ryuk cannot run)."""
    removed = []
    for container in client.containers.list(all=True, filters={"label": OWNER_LABEL}):
        if not owner_alive(container.labels.get(OWNER_LABEL, "")):
            container.remove(force=True, v=True)
            removed.append(container.name)
    return removed


def settle_ryuk() -> str:
    """Disable Testcontainers' Ryuk reaper when its image cannot be had; what was decided, for the report."""
    from testcontainers.core.config import testcontainers_config

    if testcontainers_config.ryuk_disabled:
        return "ryuk disabled by TESTCONTAINERS_RYUK_DISABLED"
    why = service_images.unobtainable(testcontainers_config.ryuk_image)
    if not why:
        return f"ryuk {testcontainers_config.ryuk_image}"
    testcontainers_config.ryuk_disabled = True
    return f"ryuk disabled ({why}): containers removed by this backend, a killed run's by the next"


class DockerBackend:
    """Testcontainers: MySqlContainer + LocalStackContainer, pinned image tags (stand-ins built when named)."""

    name = "docker"

    def __init__(self, mysql_image: str = MYSQL_IMAGE, localstack_image: str = LOCALSTACK_IMAGE) -> None:
        self.mysql_image = mysql_image
        self.localstack_image = localstack_image
        self._stack = contextlib.ExitStack()

    def start(self) -> Services:
        import docker
        from testcontainers.community.localstack import LocalStackContainer
        from testcontainers.community.mysql import MySqlContainer

        localstack_host = _load_localstack_host()
        t0 = time.monotonic()
        try:
            for image in (self.mysql_image, self.localstack_image):
                service_images.ensure(image)
        except service_images.ImageUnavailable as exc:
            raise ServicesUnavailable(f"{exc}. {IMAGES_HINT}") from exc
        t_images = time.monotonic() - t0
        ryuk = settle_ryuk()
        client = docker.from_env()
        try:
            reaped = reap_orphans(client)
        finally:
            client.close()
        labels = {OWNER_LABEL: owner_id()}
        db_name = new_database_name()
        with contextlib.ExitStack() as stack:
            mysql = MySqlContainer(
                self.mysql_image,
                dialect="pymysql",
                username="root",
                password="test",
                dbname=db_name,
            ).with_kwargs(labels=labels)
            # start() waits for "ready for connections" twice in the log (init + final).
            stack.enter_context(mysql)
            mysql_url = mysql.get_connection_url()
            wait_for_mysql(mysql_url)  # and then for a real query to succeed
            t_db = time.monotonic() - t0

            localstack = LocalStackContainer(self.localstack_image, region_name=AWS_REGION).with_kwargs(labels=labels)
            localstack.with_services(*AWS_SERVICES)
            localstack.with_env("PERSISTENCE", "0")
            stack.enter_context(localstack)  # start() waits for "Ready." in the log
            endpoint = localstack.get_url()
            localstack_host.wait_for_health(endpoint, AWS_SERVICES, timeout=READY_TIMEOUT)
            self._stack = stack.pop_all()

        return Services(
            backend=self.name,
            mysql_url=mysql_url,
            mysql_database=db_name,
            s3_endpoint_url=endpoint,
            details={
                "startup_seconds": time.monotonic() - t0,
                "images_seconds": t_images,
                "mysql_seconds": t_db,
                "mysql_image": self.mysql_image,
                "localstack_image": self.localstack_image,
                "ryuk": ryuk,
                "reaped": reaped,
            },
        )

    def stop(self) -> None:
        """Stop and remove both containers (the database goes with them)."""
        self._stack.close()


def make_backend(name: str | None = None) -> Backend:
    """Backend instance for ``name`` (``docker``/``local``), detected if None."""
    name, why = (name, "") if name else choose_backend()
    if name == "docker":
        return DockerBackend()
    if name == "local":
        return LocalBackend(not_docker=why)
    raise ValueError(f"unknown backend {name!r}")


@contextlib.contextmanager
def open_services(name: str | None = None) -> Iterator[Services]:
    """Start the services for one session and always stop them afterwards."""
    backend = make_backend(name)
    try:
        yield backend.start()
    finally:
        backend.stop()
