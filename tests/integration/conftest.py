"""Integration-test configuration.

Sections (keep them grouped; other session fixtures, e.g. Ray, get their own):

1. marker: everything under tests/integration is ``pytest.mark.integration``
2. reporting: which services backend the run used (header + terminal summary)
3. backing services: ``services``, ``mysql_url``, ``s3_endpoint``, ``s3_bucket``
4. Ray: ``ray_cluster``, one local Ray for the whole session

The services backend is chosen by ``SERVICES_BACKEND=auto|docker|local`` (see
``services.py``). If no backend is available the tests using these fixtures
FAIL (not skip) with a message saying what to start.
"""

from __future__ import annotations

import contextlib
import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

_HERE = Path(__file__).resolve().parent
if str(_HERE) not in sys.path:  # `services.py` sits next to this file (works in any import mode)
    sys.path.insert(0, str(_HERE))

import services as _svc  # noqa: E402

# =========================================================================== 1. marker


def pytest_configure(config: pytest.Config) -> None:
    # pyproject.toml registers the marker; only register it here when run without that config.
    if not any(line.split(":")[0].strip() == "integration" for line in config.getini("markers")):
        config.addinivalue_line("markers", "integration: talks to real services (MySQL, S3, Ray)")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--alone",
        choices=("run", "skip", "only"),
        default="run",
        help="tests marked `alone` (they measure speed against a goal): run them (default), leave them out, or run "
        "only them; `nox -s tests` runs them after the unit tests that ran beside the others have finished",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # This hook sees the items of the whole run; only mark the ones below this directory.
    for item in items:
        if _HERE in Path(item.path).resolve().parents:
            item.add_marker(pytest.mark.integration)
    alone = config.getoption("--alone")
    if alone != "run":
        kept: list[pytest.Item] = []
        left_out: list[pytest.Item] = []
        for item in items:
            marked = item.get_closest_marker("alone") is not None
            (kept if marked == (alone == "only") else left_out).append(item)
        config.hook.pytest_deselected(items=left_out)
        items[:] = kept


# =========================================================================== 2. reporting

_SERVICES_KEY = pytest.StashKey[_svc.Services]()
_SERVICES_ERROR_KEY = pytest.StashKey[str]()


def pytest_report_header(config: pytest.Config) -> str:
    # Only shown when this conftest is loaded at start-up (pytest given a path in
    # tests/integration); the terminal-summary line below is always shown.
    choice = os.environ.get(_svc.BACKEND_ENV) or "auto"
    try:
        detected = _svc.detect_backend()
    except _svc.ServicesUnavailable as exc:
        detected = f"UNAVAILABLE ({exc})"
    return f"services backend: {_svc.BACKEND_ENV}={choice} -> {detected}"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, exitstatus: int, config: pytest.Config) -> None:
    used = config.stash.get(_SERVICES_KEY, None)
    error = config.stash.get(_SERVICES_ERROR_KEY, None)
    if used is not None:
        line = f"services backend used: {used.summary()}"
    elif error is not None:
        line = f"services backend FAILED: {error}"
    else:
        return  # no test in this run asked for the services
    terminalreporter.write_sep("-", "integration services")
    terminalreporter.write_line(line)


# =========================================================================== 3. backing services


@pytest.fixture(scope="session")
def services(request: pytest.FixtureRequest) -> Iterator[_svc.Services]:
    """MySQL + S3 for the whole session, from Docker (Testcontainers) or local processes."""
    error = None
    try:
        backend = _svc.make_backend()
        started = backend.start()
    except Exception as exc:  # ServicesUnavailable, LocalStack/container start-up errors
        error = f"{type(exc).__name__}: {exc}"
    if error is not None:  # fail outside `except` so the report shows only the message
        request.config.stash[_SERVICES_ERROR_KEY] = error
        pytest.fail(f"integration services unavailable: {error}", pytrace=False)
    request.config.stash[_SERVICES_KEY] = started
    try:
        yield started
    finally:
        backend.stop()


@pytest.fixture(scope="session")
def mysql_url(services: _svc.Services) -> str:
    """SQLAlchemy URL of a database that exists only for this session."""
    return services.mysql_url


@pytest.fixture(scope="module")
def database(mysql_url: str) -> Iterator[_svc.MariaDbDatabase]:
    """A database of the test module's own, so its tables hold only what that module's clients caused."""
    with _svc.MariaDbDatabase(mysql_url) as db:
        yield db


@pytest.fixture(scope="session")
def s3_endpoint(services: _svc.Services) -> Iterator[str]:
    """S3 endpoint URL; also points the AWS env vars at it for the session (restored after)."""
    import boto3

    with pytest.MonkeyPatch.context() as mp:
        for name in list(os.environ):
            # Anything that could redirect SDKs elsewhere: service-specific endpoints,
            # profiles, session tokens, "ignore endpoint" switches.
            if name.startswith("AWS_ENDPOINT_URL_") or name in (
                "AWS_PROFILE",
                "AWS_DEFAULT_PROFILE",
                "AWS_SESSION_TOKEN",
                "AWS_SECURITY_TOKEN",
                "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
            ):
                mp.delenv(name, raising=False)
        for name, value in services.aws_env().items():
            mp.setenv(name, value)
        mp.setattr(boto3, "DEFAULT_SESSION", None)  # no credentials cached from before
        yield services.s3_endpoint_url


@pytest.fixture
def s3_bucket(services: _svc.Services, s3_endpoint: str) -> Iterator[str]:
    """A fresh, empty bucket for one test; emptied and deleted afterwards."""
    s3 = services.client("s3")
    name = f"it-{uuid.uuid4().hex[:20]}"
    s3.create_bucket(Bucket=name)
    try:
        yield name
    finally:
        paginator = s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=name):
            keys = [{"Key": obj["Key"]} for obj in page.get("Contents", [])]
            if keys:
                s3.delete_objects(Bucket=name, Delete={"Objects": keys})
        s3.delete_bucket(Bucket=name)


# =========================================================================== 4. Ray

REPO_ROOT = _HERE.parents[1]
# Logical CPUs, not cores: enough for every dev app at its max replicas (3, localrun.serve.logical_cpus) and
# for test_serve_apps.py's quarter-CPU replicas; Ray shares the machine's cores among them.
RAY_NUM_CPUS = 4
RAY_OBJECT_STORE_BYTES = 200 * 1024**2  # Serve passes small objects only
# Read by Ray's processes when they start. A replica whose constructor fails is retried 3 times by default; once is
# enough to see the failure in a test.
RAY_ENV = {"RAY_SERVE_MAX_PER_REPLICA_RETRY_COUNT": "1"}


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[Any]:
    """A local Ray for the whole session (RAY_NUM_CPUS, no dashboard, workers at the load tests' niceness),
    started in the repository root; yields ray.init's context and shuts Ray down at the end.

    Replicas inherit the directory Ray starts in (relative ``file://`` model URIs resolve against it) and this
    process's environment at that moment, plus RAY_ENV and the dev environment's Ray variables (EnvPlan.ray_env, as
    its containers carry them; they stay set while Ray runs, where the load test checks them): give per-test
    settings (database URL, AWS endpoint) to the Serve application's ``runtime_env.env_vars``. Serve is not started
    here: a config deploy replaces every application, so each test module starts Serve itself and ends with
    ``serve.shutdown()``, leaving Ray up.
    """
    import ray

    from loadtests.run import RAY_SYSTEM_CONFIG
    from localrun.serve import env_plan, local_ray_env

    with pytest.MonkeyPatch.context() as session_env:
        for name, value in local_ray_env(env_plan(REPO_ROOT, "dev")).items():
            session_env.setenv(name, value)
        with contextlib.chdir(REPO_ROOT), pytest.MonkeyPatch.context() as patch:
            for name, value in RAY_ENV.items():
                patch.setenv(name, value)
            context = ray.init(
                address="local",  # a new Ray, even when `ray start` left one running on this machine
                num_cpus=RAY_NUM_CPUS,
                include_dashboard=False,
                object_store_memory=RAY_OBJECT_STORE_BYTES,
                log_to_driver=False,
                _system_config=RAY_SYSTEM_CONFIG,
            )
        try:
            yield context
        finally:
            ray.shutdown()
