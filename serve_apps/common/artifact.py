"""A model artifact is `{uri, sha256}`; `fetch` is the one way to get its bytes: downloaded, verified, cached.

The spec code imports `ModelArtifact` as the single definition of an artifact, so this module imports only
pydantic and the standard library at the top; boto3 is imported when an s3:// artifact is fetched.
"""

import contextlib
import fcntl
import hashlib
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

SCHEMES = ("s3", "file")
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_CHUNK_BYTES = 1 << 20


class ArtifactError(Exception):
    """A model artifact could not be fetched, or its bytes do not match its sha256."""


class ModelArtifact(BaseModel):
    """A model file, named by where it lives and by the hash its bytes must have."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    uri: str = Field(
        description=(
            "s3://bucket/key or file://path. A relative file:// path (file://models/iris/iris.onnx) "
            "resolves against the working directory of the process that fetches it."
        ),
        examples=["s3://acme-models/iris/iris-logreg.onnx", "file://models/iris/iris-logreg.onnx"],
    )
    sha256: str = Field(
        description="SHA-256 of the artifact's bytes, 64 lowercase hex digits; checked before anything loads it.",
        examples=["9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"],
    )

    @field_validator("uri")
    @classmethod
    def uri_scheme_is_s3_or_file(cls, uri: str) -> str:
        scheme, separator, rest = uri.partition("://")
        if not separator or scheme not in SCHEMES:
            raise ValueError("uri scheme must be s3 or file: s3://bucket/key or file://path")
        if scheme == "s3":
            bucket, _, key = rest.partition("/")
            if not bucket or not key:
                raise ValueError("an s3 uri names a bucket and a key: s3://bucket/key")
        elif not rest:
            raise ValueError("a file uri names a path: file://path")
        return uri

    @field_validator("sha256")
    @classmethod
    def sha256_is_64_lowercase_hex(cls, sha256: str) -> str:
        if not _SHA256_HEX.fullmatch(sha256):
            raise ValueError("sha256 must be 64 lowercase hex digits (the output of `sha256sum`)")
        return sha256


def default_cache_dir() -> Path:
    """The node's model cache: $MODEL_CACHE_DIR, else ~/.cache/serving-models."""
    configured = os.environ.get("MODEL_CACHE_DIR")
    return Path(configured) if configured else Path.home() / ".cache" / "serving-models"


def file_path(uri: str) -> Path:
    """The local path of a file:// uri; a relative one resolves against the working directory."""
    return Path.cwd() / uri.removeprefix("file://")


def s3_client() -> Any:
    """A boto3 S3 client configured the standard AWS way.

    boto3 itself reads credentials, AWS_DEFAULT_REGION and AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_S3 (LocalStack);
    AWS_REGION is passed on because botocore only reads it for some services. With AWS_ROLE_ARN and no token file
    (Cloud Run), the credentials are the role's, assumed with a Google ID token (serve_apps/common/web_identity.py).
    """
    from serve_apps.common.web_identity import boto3_session

    return boto3_session().client("s3", region_name=os.environ.get("AWS_REGION") or None)


def split_s3_uri(uri: str) -> tuple[str, str]:
    """`s3://bucket/key` -> (bucket, key)."""
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def fetch(artifact: ModelArtifact, cache_dir: Path | None = None) -> Path:
    """Return a local path holding the artifact's bytes, verified against `artifact.sha256`.

    The cache (`cache_dir`, default `default_cache_dir()`) is keyed by hash: a file is named by the hash it
    has, written atomically, and re-hashed on every fetch, so a damaged cache entry is fetched again rather than
    loaded. Concurrent replicas on one node wait on a per-hash lock, so the node downloads once.
    Raises ArtifactError when the object is missing, cannot be read or does not match its sha256.
    """
    root = (cache_dir or default_cache_dir()) / "sha256"
    root.mkdir(parents=True, exist_ok=True)
    target = root / (artifact.sha256 + Path(artifact.uri).suffix)
    with _exclusive_lock(root / f"{artifact.sha256}.lock"):
        if target.exists() and sha256_of(target) == artifact.sha256:
            return target
        with _open_source(artifact) as source:
            _copy_verified(source, artifact, target)
    return target


@contextlib.contextmanager
def _exclusive_lock(path: Path) -> Iterator[None]:
    with path.open("a") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


@contextlib.contextmanager
def _open_source(artifact: ModelArtifact) -> Iterator[IO[bytes]]:
    uri = artifact.uri
    refused = f"expected sha256 {artifact.sha256}; nothing is served"
    if uri.startswith("file://"):
        path = file_path(uri)
        try:
            stream: IO[bytes] = path.open("rb")
        except OSError as error:
            raise ArtifactError(f"{uri}: cannot read {path} ({error.strerror}); {refused}") from error
        with stream:
            yield stream
        return

    from botocore.exceptions import BotoCoreError, ClientError

    bucket, key = split_s3_uri(uri)
    try:
        body = s3_client().get_object(Bucket=bucket, Key=key)["Body"]
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        if code in ("NoSuchKey", "NoSuchBucket", "404"):
            raise ArtifactError(f"{uri}: no such object ({code}); {refused}") from error
        raise ArtifactError(f"{uri}: cannot download ({error}); {refused}") from error
    except BotoCoreError as error:
        raise ArtifactError(f"{uri}: cannot download ({error}); {refused}") from error
    with contextlib.closing(body):
        yield body


def _copy_verified(source: IO[bytes], artifact: ModelArtifact, target: Path) -> None:
    digest = hashlib.sha256()
    # The temporary file sits beside the target so that os.replace is an atomic rename on one filesystem.
    with tempfile.NamedTemporaryFile(dir=target.parent, prefix=".partial-", delete=False) as partial:
        try:
            while chunk := source.read(_CHUNK_BYTES):
                digest.update(chunk)
                partial.write(chunk)
        except Exception as error:
            os.unlink(partial.name)
            raise ArtifactError(f"{artifact.uri}: download interrupted: {error}; nothing is served") from error
    actual = digest.hexdigest()
    if actual != artifact.sha256:
        os.unlink(partial.name)
        raise ArtifactError(
            f"{artifact.uri}: sha256 mismatch: expected {artifact.sha256}, got {actual}; "
            "refusing to load it, nothing is served. Hint: publish the artifact again or fix the sha256 in the spec"
        )
    os.replace(partial.name, target)
