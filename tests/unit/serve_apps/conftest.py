"""Fixtures of the serve_apps unit tests: built model artifacts and throwaway databases."""

from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from moto.server import ThreadedMotoServer

from serve_apps.build_models import build_all
from serve_apps.common.manifest import manifest_matches, read_manifest
from tests.integration.services import MariaDbDatabase, local_mysql_admin_url

REPO_ROOT = Path(__file__).resolve().parents[3]
S3_BUCKET = "models-test"


@pytest.fixture(scope="session")
def built_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Absolute path of every built artifact, by manifest name.

    Reuses the repo's models/ when its files match its manifest (`python -m serve_apps.build_models` ran),
    else builds into a temporary directory (about 30 s, most of it the zero-shot export).
    """
    models_dir = REPO_ROOT / "models"
    if manifest_matches(models_dir):
        return {name: models_dir / entry.path for name, entry in read_manifest(models_dir).items()}
    out = tmp_path_factory.mktemp("models")
    return {name: out / entry.path for name, entry in build_all(out).items()}


@pytest.fixture(scope="session")
def mariadb_url() -> Iterator[str]:
    """URL of a fresh database on the local MariaDB ($SERVICES_MYSQL_ADMIN_URL, default root@127.0.0.1:3306),
    dropped after the session."""
    with MariaDbDatabase(local_mysql_admin_url()) as database:
        yield database.url


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """An S3 API over HTTP (moto in server mode, as LocalStack would be) holding an empty S3_BUCKET."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    boto3.client(
        "s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test"
    ).create_bucket(Bucket=S3_BUCKET)
    yield endpoint
    server.stop()


@pytest.fixture
def s3_bucket(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """S3_BUCKET, with the standard AWS environment pointing boto3 at the test S3 endpoint."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    return S3_BUCKET
