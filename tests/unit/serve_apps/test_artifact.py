"""ModelArtifact validation and fetch(): file:// and s3:// (moto's S3 server), hash checks, the cache."""

import hashlib
from pathlib import Path

import boto3
import pytest
from pydantic import ValidationError

from serve_apps.common.artifact import ArtifactError, ModelArtifact, fetch

CONTENT = b"model bytes\n"
CONTENT_SHA256 = hashlib.sha256(CONTENT).hexdigest()
OTHER_SHA256 = "0" * 64


@pytest.fixture
def model_file(tmp_path: Path) -> Path:
    path = tmp_path / "source" / "model.onnx"
    path.parent.mkdir()
    path.write_bytes(CONTENT)
    return path


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "cache"


def test_artifact_accepts_s3_and_file_uris() -> None:
    assert ModelArtifact(uri="s3://bucket/key/model.onnx", sha256=CONTENT_SHA256).uri == "s3://bucket/key/model.onnx"
    assert ModelArtifact(uri="file://models/iris/x.onnx", sha256=CONTENT_SHA256).uri == "file://models/iris/x.onnx"


@pytest.mark.parametrize("uri", ["https://example.com/model.onnx", "models/model.onnx", "gs://bucket/key"])
def test_artifact_refuses_other_schemes(uri: str) -> None:
    with pytest.raises(ValidationError, match="uri scheme must be s3 or file"):
        ModelArtifact(uri=uri, sha256=CONTENT_SHA256)


def test_artifact_refuses_s3_uri_without_key() -> None:
    with pytest.raises(ValidationError, match="an s3 uri names a bucket and a key"):
        ModelArtifact(uri="s3://bucket", sha256=CONTENT_SHA256)


@pytest.mark.parametrize("sha256", ["abc", CONTENT_SHA256.upper(), CONTENT_SHA256 + "0", "g" * 64])
def test_artifact_refuses_malformed_sha256(sha256: str) -> None:
    with pytest.raises(ValidationError, match="sha256 must be 64 lowercase hex digits"):
        ModelArtifact(uri="file://m.onnx", sha256=sha256)


def test_artifact_refuses_unknown_fields() -> None:
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        ModelArtifact.model_validate({"uri": "file://m.onnx", "sha256": CONTENT_SHA256, "md5": "x"})


def test_fetch_file_uri_returns_verified_copy_named_by_hash(model_file: Path, cache: Path) -> None:
    path = fetch(ModelArtifact(uri=f"file://{model_file}", sha256=CONTENT_SHA256), cache)
    assert path.read_bytes() == CONTENT
    assert path.name == f"{CONTENT_SHA256}.onnx"
    assert path.is_relative_to(cache)


def test_fetch_relative_file_uri_resolves_against_cwd(
    model_file: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(model_file.parent.parent)
    path = fetch(ModelArtifact(uri="file://source/model.onnx", sha256=CONTENT_SHA256), cache)
    assert path.read_bytes() == CONTENT


def test_fetch_uses_model_cache_dir_env(model_file: Path, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODEL_CACHE_DIR", str(cache))
    assert fetch(ModelArtifact(uri=f"file://{model_file}", sha256=CONTENT_SHA256)).is_relative_to(cache)


def test_fetch_refuses_hash_mismatch_and_caches_nothing(model_file: Path, cache: Path) -> None:
    uri = f"file://{model_file}"
    with pytest.raises(ArtifactError) as error:
        fetch(ModelArtifact(uri=uri, sha256=OTHER_SHA256), cache)
    assert str(error.value).startswith(f"{uri}: sha256 mismatch: expected {OTHER_SHA256}, got {CONTENT_SHA256}")
    assert [p.name for p in (cache / "sha256").iterdir()] == [f"{OTHER_SHA256}.lock"]


def test_fetch_missing_file_names_uri(tmp_path: Path, cache: Path) -> None:
    uri = f"file://{tmp_path}/absent.onnx"
    expected = (
        f"^{uri}: cannot read .* \\(No such file or directory\\); expected sha256 {CONTENT_SHA256}; nothing is served$"
    )
    with pytest.raises(ArtifactError, match=expected):
        fetch(ModelArtifact(uri=uri, sha256=CONTENT_SHA256), cache)


def test_fetch_replaces_damaged_cache_entry(model_file: Path, cache: Path) -> None:
    artifact = ModelArtifact(uri=f"file://{model_file}", sha256=CONTENT_SHA256)
    cached = fetch(artifact, cache)
    cached.write_bytes(b"bit rot")
    assert fetch(artifact, cache).read_bytes() == CONTENT


def test_fetch_serves_cache_without_source(model_file: Path, cache: Path) -> None:
    artifact = ModelArtifact(uri=f"file://{model_file}", sha256=CONTENT_SHA256)
    fetch(artifact, cache)
    model_file.unlink()
    assert fetch(artifact, cache).read_bytes() == CONTENT


@pytest.fixture
def s3_model(s3_bucket: str) -> str:
    boto3.client("s3").put_object(Bucket=s3_bucket, Key="iris/model.onnx", Body=CONTENT)
    return f"s3://{s3_bucket}/iris/model.onnx"


def test_fetch_s3_uri(s3_model: str, cache: Path) -> None:
    path = fetch(ModelArtifact(uri=s3_model, sha256=CONTENT_SHA256), cache)
    assert path.read_bytes() == CONTENT


def test_fetch_s3_hash_mismatch(s3_model: str, cache: Path) -> None:
    uri = s3_model
    with pytest.raises(ArtifactError, match=f"^{uri}: sha256 mismatch: expected {OTHER_SHA256}, got {CONTENT_SHA256}"):
        fetch(ModelArtifact(uri=uri, sha256=OTHER_SHA256), cache)


def test_fetch_s3_missing_object(s3_bucket: str, cache: Path) -> None:
    uri = f"s3://{s3_bucket}/iris/absent.onnx"
    with pytest.raises(
        ArtifactError, match=f"^{uri}: no such object \\(NoSuchKey\\); expected sha256 {CONTENT_SHA256}"
    ):
        fetch(ModelArtifact(uri=uri, sha256=CONTENT_SHA256), cache)
