"""Checks of the backing services themselves (MySQL, S3, Secrets Manager) and of
the backend selection / lifecycle code, on whichever backend the run uses."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import time
import uuid
from pathlib import Path
from typing import ClassVar

import boto3
import pytest
import services as svc
import sqlalchemy as sa

localstack_host = svc._load_localstack_host()


def _local_mysql_or_skip() -> sa.URL:
    admin = svc.local_mysql_admin_url()
    ok, why = svc.mysql_available(admin)
    if not ok:
        pytest.skip(f"local MySQL/MariaDB not reachable ({why}); only needed by the local backend")
    return admin


# --------------------------------------------------------------------------- backend selection


def test_reported_backend_matches_detection(services: svc.Services) -> None:
    assert services.backend in ("docker", "local")
    assert services.backend == svc.detect_backend()


def test_detect_honours_explicit_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(svc, "docker_available", lambda: (True, ""))
    monkeypatch.setattr(svc, "docker_images_unobtainable", lambda: "")
    monkeypatch.setattr(svc, "mysql_available", lambda *a, **k: (True, ""))
    assert svc.detect_backend({"SERVICES_BACKEND": "docker"}) == "docker"
    assert svc.detect_backend({"SERVICES_BACKEND": "local"}) == "local"  # even with Docker up
    assert svc.detect_backend({"SERVICES_BACKEND": "auto"}) == "docker"
    assert svc.detect_backend({}) == "docker"  # default is auto

    monkeypatch.setattr(svc, "docker_available", lambda: (False, "no engine (test)"))
    assert svc.detect_backend({"SERVICES_BACKEND": "auto"}) == "local"
    assert svc.detect_backend({"SERVICES_BACKEND": " LOCAL "}) == "local"

    with pytest.raises(svc.ServicesUnavailable, match=r"not one of auto\|docker\|local"):
        svc.detect_backend({"SERVICES_BACKEND": "podman"})


def test_detect_docker_without_engine_says_what_to_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(svc, "docker_available", lambda: (False, "no engine (test)"))
    with pytest.raises(svc.ServicesUnavailable) as err:
        svc.detect_backend({"SERVICES_BACKEND": "docker"})
    msg = str(err.value)
    assert "SERVICES_BACKEND=docker" in msg
    assert "no engine (test)" in msg
    assert "start a Docker engine" in msg


def test_engine_without_its_images_is_not_chosen(monkeypatch: pytest.MonkeyPatch) -> None:
    """An engine that answers but cannot have an image (no registry) sends `auto` to the local backend, saying
    why, and makes an explicit `docker` fail naming the stand-ins."""
    monkeypatch.setattr(svc, "docker_available", lambda: (True, ""))
    monkeypatch.setattr(svc, "mysql_available", lambda *a, **k: (True, ""))
    monkeypatch.setattr(svc, "docker_images_unobtainable", lambda: "mysql:8.4 is absent and cannot be pulled (test)")
    name, why = svc.choose_backend({"SERVICES_BACKEND": "auto"})
    assert name == "local"
    assert why == "a Docker engine answers, but mysql:8.4 is absent and cannot be pulled (test)"
    with pytest.raises(svc.ServicesUnavailable) as err:
        svc.detect_backend({"SERVICES_BACKEND": "docker"})
    assert "cannot be pulled (test)" in str(err.value)
    assert "SERVICES_MYSQL_IMAGE=local/mariadb-mysql:10.11" in str(err.value)


def test_detect_docker_real_probe() -> None:
    """Same as above against the real engine and images of this machine."""
    engine_up, _why = svc.docker_available()
    missing = svc.docker_images_unobtainable() if engine_up else ""
    if engine_up and not missing:
        assert svc.detect_backend({"SERVICES_BACKEND": "docker"}) == "docker"
    else:
        hint = "start a Docker engine" if not engine_up else "SERVICES_MYSQL_IMAGE="
        with pytest.raises(svc.ServicesUnavailable, match=hint):
            svc.detect_backend({"SERVICES_BACKEND": "docker"})


def test_detect_nothing_available_says_what_to_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(svc, "docker_available", lambda: (False, "no engine (test)"))
    monkeypatch.setattr(svc, "mysql_available", lambda *a, **k: (False, "refused (test)"))
    with pytest.raises(svc.ServicesUnavailable) as err:
        svc.detect_backend({"SERVICES_BACKEND": "auto"})
    msg = str(err.value)
    assert "start a Docker engine" in msg and "mariadbd" in msg
    with pytest.raises(svc.ServicesUnavailable, match=r"SERVICES_BACKEND=local.*mariadbd"):
        svc.detect_backend({"SERVICES_BACKEND": "local"})


# --------------------------------------------------------------------------- MySQL


def test_mysql_roundtrip_in_fresh_database(mysql_url: str, services: svc.Services) -> None:
    engine = sa.create_engine(mysql_url)
    try:
        with engine.begin() as conn:
            assert conn.execute(sa.text("SELECT DATABASE()")).scalar() == services.mysql_database
            assert services.mysql_database.startswith(svc.DB_PREFIX)
            conn.execute(sa.text("CREATE TABLE models (id INT PRIMARY KEY, name VARCHAR(64) NOT NULL)"))
            conn.execute(
                sa.text("INSERT INTO models (id, name) VALUES (:id, :name)"),
                [{"id": 1, "name": "resnet"}, {"id": 2, "name": "bert"}],
            )
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT id, name FROM models ORDER BY id")).all()
        assert [tuple(r) for r in rows] == [(1, "resnet"), (2, "bert")]
    finally:
        engine.dispose()


def test_database_create_drop_on_throwaway_name() -> None:
    """The create/drop code the local backend uses, on a name of our own."""
    admin = _local_mysql_or_skip()
    db = svc.MariaDbDatabase(admin, svc.new_database_name())
    assert not db.exists()
    url = db.create()
    try:
        assert db.exists()
        engine = sa.create_engine(url)
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE TABLE t (x INT)"))
        engine.dispose()
    finally:
        db.drop()
    assert not db.exists()
    db.drop()  # idempotent

    with pytest.raises(RuntimeError), svc.MariaDbDatabase(admin) as scoped:
        assert scoped.exists()
        raise RuntimeError("boom")
    assert not scoped.exists()  # dropped even when the body fails


def test_database_refuses_foreign_names() -> None:
    for bad in ("mysql", "prod", "it_x`; DROP DATABASE mysql; --", "it_" + "x" * 80):
        with pytest.raises(ValueError, match="refusing"):
            svc.MariaDbDatabase(svc.DEFAULT_LOCAL_MYSQL_ADMIN_URL, bad)


class _FakeHost:
    """Stands in for LocalStackHost so LocalBackend's lifecycle runs in milliseconds."""

    LocalStackError = localstack_host.LocalStackError
    instances: ClassVar[list[_FakeHost]] = []

    def __init__(self, fail: bool = False, **_kw: object) -> None:
        self.fail = fail
        self.stopped = False
        self.endpoint_url = "http://127.0.0.1:1"
        self.startup_seconds = 0.0
        self.pid = None
        self.log_path = self.venv_dir = "-"
        _FakeHost.instances.append(self)

    def start(self) -> _FakeHost:
        if self.fail:
            raise localstack_host.LocalStackError("fake start-up failure")
        return self

    def stop(self) -> None:
        self.stopped = True


@pytest.mark.parametrize("fail", [False, True], ids=["stop", "failed-start"])
def test_local_backend_drops_its_database(monkeypatch: pytest.MonkeyPatch, fail: bool) -> None:
    """LocalBackend.stop() (or a failed start) drops the run's database."""
    admin = _local_mysql_or_skip()
    fake_module = type(
        "M",
        (),
        {
            "LocalStackHost": lambda **kw: _FakeHost(fail=fail, **kw),
            "LocalStackError": localstack_host.LocalStackError,
        },
    )
    monkeypatch.setattr(svc, "_load_localstack_host", lambda: fake_module)
    backend = svc.LocalBackend(admin)
    if fail:
        with pytest.raises(svc.ServicesUnavailable, match="fake start-up failure"):
            backend.start()
        assert backend.database is not None and not backend.database.exists()
        return
    started = backend.start()
    assert backend.database is not None and backend.database.exists()
    assert started.mysql_url.endswith("/" + backend.database.name)
    backend.stop()
    assert not backend.database.exists()
    assert _FakeHost.instances[-1].stopped


# --------------------------------------------------------------------------- S3 / AWS


def test_s3_put_get_1mb(services: svc.Services, s3_bucket: str) -> None:
    payload = os.urandom(1024 * 1024)
    digest = hashlib.sha256(payload).hexdigest()
    s3 = services.client("s3")
    s3.put_object(Bucket=s3_bucket, Key="blobs/model.bin", Body=payload)
    head = s3.head_object(Bucket=s3_bucket, Key="blobs/model.bin")
    assert head["ContentLength"] == len(payload)
    body = s3.get_object(Bucket=s3_bucket, Key="blobs/model.bin")["Body"].read()
    assert hashlib.sha256(body).hexdigest() == digest


def test_aws_env_points_at_emulator(s3_endpoint: str, s3_bucket: str) -> None:
    assert os.environ["AWS_ENDPOINT_URL"] == s3_endpoint
    assert os.environ["AWS_ACCESS_KEY_ID"] == "test"
    assert os.environ["AWS_REGION"] == os.environ["AWS_DEFAULT_REGION"] == "us-east-1"
    s3 = boto3.client("s3")  # no explicit endpoint/credentials: env only
    s3.put_object(Bucket=s3_bucket, Key="k", Body=b"v")
    assert s3.get_object(Bucket=s3_bucket, Key="k")["Body"].read() == b"v"
    assert s3_bucket in [b["Name"] for b in s3.list_buckets()["Buckets"]]


def test_secretsmanager_create_get(services: svc.Services, s3_endpoint: str) -> None:
    sm = services.client("secretsmanager")
    name = f"it/{uuid.uuid4().hex}"
    value = json.dumps({"user": "svc", "password": uuid.uuid4().hex})
    arn = sm.create_secret(Name=name, SecretString=value)["ARN"]
    try:
        got = sm.get_secret_value(SecretId=name)
        assert got["SecretString"] == value
        assert got["ARN"] == arn
    finally:
        sm.delete_secret(SecretId=name, ForceDeleteWithoutRecovery=True)


# --------------------------------------------------------------------------- tools/localstack_host.py


def test_choose_port_avoids_a_taken_port() -> None:
    with socket.socket() as stranger:
        stranger.bind(("127.0.0.1", 0))
        stranger.listen()
        taken = stranger.getsockname()[1]
        assert not localstack_host.port_is_free(taken)
        chosen = localstack_host.choose_port(taken)
        assert chosen != taken
        assert localstack_host.port_is_free(chosen)


def test_wait_for_health_has_a_deadline() -> None:
    port = localstack_host.free_port()
    t0 = time.monotonic()
    with pytest.raises(localstack_host.LocalStackError, match="not healthy after"):
        localstack_host.wait_for_health(f"http://127.0.0.1:{port}", timeout=0.5, interval=0.1)
    assert time.monotonic() - t0 < 5


def test_venv_marker_detects_pin_change(tmp_path: Path) -> None:
    assert not localstack_host.venv_is_current(tmp_path / "nothing-here")
    venv = localstack_host.venv_dir_from_env()
    if localstack_host.venv_is_current(venv):
        assert not localstack_host.venv_is_current(venv, pins=("localstack-core==0.0.1",))


def test_localstack_host_start_stop_kills_its_process_group(
    services: svc.Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A second, private instance whose first port is stolen before it binds:
    it must notice (not talk to the stranger), move to a free port, become
    healthy, and on stop() its whole process group must be gone."""
    if services.backend != "local":
        pytest.skip("host-mode LocalStack belongs to the local backend; docker backend in use")
    real_choose_port = localstack_host.choose_port
    with socket.socket() as stranger:
        stranger.bind(("127.0.0.1", 0))
        stranger.listen()
        stolen = stranger.getsockname()[1]
        choices = iter([stolen])  # first answer: a port that is (now) someone else's
        monkeypatch.setattr(
            localstack_host,
            "choose_port",
            lambda preferred=None, host="127.0.0.1": next(choices, None) or real_choose_port(preferred, host),
        )
        host = localstack_host.LocalStackHost(port=0, services=("s3",))
        with host:
            pgid = host.pid
            assert pgid is not None
            assert host.port not in (stolen, None)
            assert host.endpoint_url != services.s3_endpoint_url
            health = localstack_host.read_health(host.endpoint_url)
            assert health["services"]["s3"] in ("available", "running")
    assert host.pid is None
    with pytest.raises(ProcessLookupError):
        os.killpg(pgid, 0)
