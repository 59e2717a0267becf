"""The Docker backend's images and clean-up, on a real engine: the MariaDB stand-in keeps the official mysql image's
contract, an image no registry has is reported as unobtainable, and the containers of a run that is gone are
removed. Skips, saying why, when no Docker engine answers."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import services as svc
import sqlalchemy as sa

from tests.integration import service_images

_ENGINE_UP, _ENGINE_WHY = svc.docker_available()
pytestmark = pytest.mark.skipif(not _ENGINE_UP, reason=f"needs a Docker engine: {_ENGINE_WHY}")


@pytest.fixture
def client() -> Iterator[Any]:
    import docker

    engine = docker.from_env()
    try:
        yield engine
    finally:
        engine.close()


@pytest.fixture
def mariadb_image() -> str:
    try:
        service_images.ensure(service_images.MARIADB_STAND_IN)
    except Exception as exc:  # ImageError (no base, no debootstrap) or ImageUnavailable
        pytest.skip(f"the MariaDB stand-in cannot be built here: {exc}")
    return service_images.MARIADB_STAND_IN


def _run(client: Any, image: str, env: dict[str, str], **kwargs: Any) -> Any:
    return client.containers.run(
        image,
        environment=env,
        detach=True,
        ports={"3306/tcp": ("127.0.0.1", None)},
        labels={svc.OWNER_LABEL: svc.owner_id()},
        **kwargs,
    )


def _wait_ready(container: Any, timeout: float = 90.0) -> str:
    """The container's log once it says "ready for connections" twice (the temporary server, then the real one)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        container.reload()
        log = container.logs().decode(errors="replace")
        if log.count("ready for connections") >= 2:
            return log
        if container.status == "exited":
            break
        time.sleep(0.5)
    pytest.fail(f"{container.image.tags} not ready ({container.status}):\n{container.logs().decode()[-2000:]}")


def _url(container: Any, user: str, password: str, database: str) -> sa.URL:
    container.reload()
    port = int(container.ports["3306/tcp"][0]["HostPort"])
    return sa.URL.create("mysql+pymysql", user, password, "127.0.0.1", port, database)


def test_mariadb_stand_in_honours_the_mysql_variables(client: Any, mariadb_image: str, tmp_path: Path) -> None:
    """MYSQL_ROOT_PASSWORD, MYSQL_DATABASE, MYSQL_USER + MYSQL_PASSWORD and an init script, as the official image
    reads them: the user reaches its database over TCP with quotes in its password, root reaches everything from
    outside the container, the init script ran in the database."""
    initdb = tmp_path / "initdb"
    initdb.mkdir()
    (initdb / "10-seed.sql").write_text("CREATE TABLE seeded (id INT PRIMARY KEY); INSERT INTO seeded VALUES (7);\n")
    initdb.chmod(0o755)
    password = "it's a \\ secret"
    env = {
        "MYSQL_ROOT_PASSWORD": "root-pw",
        "MYSQL_DATABASE": "shop",
        "MYSQL_USER": "app",
        "MYSQL_PASSWORD": password,
    }
    container = _run(client, mariadb_image, env, volumes={str(initdb): {"bind": "/docker-entrypoint-initdb.d"}})
    try:
        log = _wait_ready(container)
        assert "running /docker-entrypoint-initdb.d/10-seed.sql" in log
        engine = sa.create_engine(_url(container, "app", password, "shop"))
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT id FROM seeded")).scalar() == 7
            assert conn.execute(sa.text("SELECT @@character_set_server")).scalar() == "utf8mb4"
            with pytest.raises(sa.exc.OperationalError):  # the user has its database, not the server
                conn.execute(sa.text("CREATE DATABASE other"))
        engine.dispose()
        root = sa.create_engine(_url(container, "root", "root-pw", "mysql"))
        with root.begin() as conn:
            conn.execute(sa.text("CREATE DATABASE it_other"))
        root.dispose()
    finally:
        container.remove(force=True, v=True)


def test_mariadb_stand_in_refuses_to_start_without_a_password_option(client: Any, mariadb_image: str) -> None:
    container = _run(client, mariadb_image, {"MYSQL_DATABASE": "shop"})
    try:
        assert container.wait(timeout=60)["StatusCode"] == 1
        assert "MYSQL_ROOT_PASSWORD, MYSQL_ALLOW_EMPTY_PASSWORD and MYSQL_RANDOM_ROOT_PASSWORD" in (
            container.logs().decode()
        )
    finally:
        container.remove(force=True, v=True)


def test_an_image_no_registry_has_is_unobtainable() -> None:
    name = f"serving-toolkit.invalid/nothing-{uuid.uuid4().hex[:8]}:0"
    why = service_images.unobtainable(name)
    assert why is not None and why.startswith(f"{name} is absent and cannot be pulled")
    with pytest.raises(service_images.ImageUnavailable, match="stand-ins this repository builds"):
        service_images.ensure(name)


def test_containers_of_a_run_that_is_gone_are_reaped(client: Any, mariadb_image: str) -> None:
    """Without Ryuk, the next run removes what a killed run left: containers whose owner process is gone go, the
    live owner's stay."""
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_owner = svc.owner_id().rsplit(":", 2)[0] + f":{finished.stdout.strip()}:0"
    assert not svc.owner_alive(dead_owner) and svc.owner_alive(svc.owner_id())
    orphan = client.containers.create(mariadb_image, labels={svc.OWNER_LABEL: dead_owner})
    kept = client.containers.create(mariadb_image, labels={svc.OWNER_LABEL: svc.owner_id()})
    try:
        removed = svc.reap_orphans(client)
        assert orphan.name in removed and kept.name not in removed
        names = {c.name for c in client.containers.list(all=True)}
        assert orphan.name not in names and kept.name in names
    finally:
        kept.remove(force=True)
        if orphan.name in {c.name for c in client.containers.list(all=True)}:
            orphan.remove(force=True)


def test_a_stand_in_is_rebuilt_when_its_recipe_changes(tmp_path: Path) -> None:
    """The recipe digest covers every file of the context and the build arguments, not the CA bundle, which
    differs between machines and is not part of the image."""
    (tmp_path / "Dockerfile").write_text("FROM x\n")
    (tmp_path / "entrypoint.sh").write_text("echo one\n")
    first = service_images.recipe_digest(tmp_path, {"PINS": "a==1"})
    (tmp_path / "build-ca.crt").write_text("machine-specific\n")
    assert service_images.recipe_digest(tmp_path, {"PINS": "a==1"}) == first
    assert service_images.recipe_digest(tmp_path, {"PINS": "a==2"}) != first
    (tmp_path / "entrypoint.sh").write_text("echo two\n")
    assert service_images.recipe_digest(tmp_path, {"PINS": "a==1"}) != first
