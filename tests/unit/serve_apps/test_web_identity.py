"""AWS credentials from a Google ID token: a local HTTP server stands in for the GCP metadata server (a boundary
that cannot run here), and STS and S3 are moto in server mode, reached over HTTP by boto3 as Cloud Run would reach
AWS. moto's STS does not verify the token's signature, so the trust conditions are checked in
tests/unit/render/test_cloudrun.py; here: what is asked of the metadata server, what reaches STS, that the model is
read with the assumed role's keys, and that they are renewed before they expire."""

from __future__ import annotations

import datetime
import hashlib
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import boto3
import botocore.credentials
import pytest

from serve_apps.common import web_identity
from serve_apps.common.artifact import ModelArtifact, fetch
from serve_apps.common.web_identity import IdentityError, boto3_session, google_id_token
from tests.unit.serve_apps.conftest import S3_BUCKET

ROLE_ARN = "arn:aws:iam::123456789012:role/serving-run"
CONTENT = b"model bytes"


class MetadataServer:
    """A GCP metadata server that answers the identity path with a numbered token and records each request."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = urlparse(self.path)
                owner.requests.append(
                    {"path": url.path, "query": parse_qs(url.query), "flavor": self.headers.get("Metadata-Flavor")}
                )
                if url.path != web_identity.IDENTITY_PATH or self.headers.get("Metadata-Flavor") != "Google":
                    self.send_error(403 if url.path == web_identity.IDENTITY_PATH else 404)
                    return
                body = f"id-token-{len(owner.requests)}".encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> MetadataServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def metadata(monkeypatch: pytest.MonkeyPatch) -> Iterator[MetadataServer]:
    """A local metadata server, named by GCE_METADATA_HOST."""
    with MetadataServer() as server:
        monkeypatch.setenv(web_identity.METADATA_HOST_ENV, server.host)
        yield server


@pytest.fixture
def cloud_run_env(s3_endpoint: str, metadata: MetadataServer, monkeypatch: pytest.MonkeyPatch) -> MetadataServer:
    """The environment the Cloud Run render gives a container with aws_role_arn: a role, no key, no token file."""
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_ROLE_ARN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.delenv(web_identity.TOKEN_FILE_ENV, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)  # STS and S3 alike
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ROLE_ARN", ROLE_ARN)
    monkeypatch.setenv("AWS_ROLE_SESSION_NAME", "run-echo")
    monkeypatch.setenv("GOOGLE_ID_TOKEN_AUDIENCE", "sts.amazonaws.com")
    web_identity._web_identity_session.cache_clear()
    return metadata


def test_id_token_is_asked_for_the_audience_with_the_metadata_flavor(metadata: MetadataServer) -> None:
    assert google_id_token("sts.amazonaws.com") == "id-token-1"
    assert metadata.requests == [
        {"path": web_identity.IDENTITY_PATH, "query": {"audience": ["sts.amazonaws.com"]}, "flavor": "Google"}
    ]


def test_no_metadata_server_is_an_identity_error(monkeypatch: pytest.MonkeyPatch) -> None:
    with MetadataServer() as gone:
        host = gone.host
    monkeypatch.setenv(web_identity.METADATA_HOST_ENV, host)
    with pytest.raises(IdentityError, match=f"^no ID token from the metadata server at {host}: "):
        google_id_token("sts.amazonaws.com")


def test_without_a_role_the_default_chain_is_used(metadata: MetadataServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ROLE_ARN", raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "dev-key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "dev-secret")
    assert boto3_session().get_credentials().method == "env"
    assert metadata.requests == []


def test_with_a_token_file_botocore_assumes_the_role_itself(
    metadata: MetadataServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    token = tmp_path / "token"
    token.write_text("eks-token")
    # Keys in the environment come first in botocore's chain: this test needs none, whatever ran before it.
    for variable in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("AWS_ROLE_ARN", ROLE_ARN)
    monkeypatch.setenv(web_identity.TOKEN_FILE_ENV, str(token))
    assert boto3_session().get_credentials().method == "assume-role-with-web-identity"
    assert metadata.requests == []


def test_the_model_is_read_with_the_assumed_roles_keys(
    cloud_run_env: MetadataServer, s3_endpoint: str, tmp_path: Path
) -> None:
    boto3.client(
        "s3", endpoint_url=s3_endpoint, region_name="us-east-1", aws_access_key_id="admin", aws_secret_access_key="x"
    ).put_object(Bucket=S3_BUCKET, Key="echo/model.bin", Body=CONTENT)
    artifact = ModelArtifact(uri=f"s3://{S3_BUCKET}/echo/model.bin", sha256=hashlib.sha256(CONTENT).hexdigest())
    assert fetch(artifact, tmp_path).read_bytes() == CONTENT
    credentials = boto3_session().get_credentials()
    assert credentials.method == web_identity.METHOD
    assert credentials.get_frozen_credentials().access_key.startswith("ASIA")  # STS temporary keys, not a user's
    assert [r["query"] for r in cloud_run_env.requests] == [{"audience": ["sts.amazonaws.com"]}]
    caller = boto3_session().client("sts", region_name="us-east-1").get_caller_identity()
    assert caller["Arn"] == "arn:aws:sts::123456789012:assumed-role/serving-run/run-echo"


def test_keys_are_renewed_with_a_new_id_token_before_they_expire(
    cloud_run_env: MetadataServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    credentials = boto3_session().get_credentials()
    first = credentials.get_frozen_credentials()
    assert len(cloud_run_env.requests) == 1
    assert credentials.get_frozen_credentials() == first  # valid for an hour: no new token, no STS call
    assert len(cloud_run_env.requests) == 1
    # 50 minutes later, within botocore's 15-minute refresh window of the one-hour keys. botocore reads its clock in
    # two places: the refreshable credentials and the fetcher's cache of the STS answer.
    later = datetime.datetime.now(datetime.UTC) + datetime.timedelta(minutes=50)
    monkeypatch.setattr(credentials, "_time_fetcher", lambda: later)
    monkeypatch.setattr(botocore.credentials, "_local_now", lambda: later)
    renewed = credentials.get_frozen_credentials()
    assert len(cloud_run_env.requests) == 2
    assert renewed.access_key != first.access_key
