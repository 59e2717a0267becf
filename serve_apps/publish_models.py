"""Upload the built artifacts to S3: `python -m serve_apps.publish_models <bucket> [--prefix P] [--models DIR]`.

Reads DIR/manifest.json (default models/), re-checks each file against its sha256, uploads it to
s3://<bucket>/<prefix>/<app>/<file> and prints the `{uri, sha256}` to put in the deployment spec.
S3 is reached the standard AWS way (credentials, AWS_REGION, AWS_ENDPOINT_URL for LocalStack).
"""

import argparse
from collections.abc import Sequence
from pathlib import Path

from serve_apps.common.artifact import ArtifactError, ModelArtifact, s3_client, sha256_of
from serve_apps.common.manifest import read_manifest


def publish(models_dir: Path, bucket: str, prefix: str) -> dict[str, ModelArtifact]:
    """Upload every manifest entry; returns the published artifact of each, by manifest name.

    Raises ArtifactError when a file no longer matches its manifest sha256 (rebuild first).
    """
    client = s3_client()
    published = {}
    for name, entry in read_manifest(models_dir).items():
        path = models_dir / entry.path
        actual = sha256_of(path)
        if actual != entry.sha256:
            raise ArtifactError(
                f"{path}: sha256 {actual} does not match the manifest's {entry.sha256}. "
                "Hint: run `python -m serve_apps.build_models` again"
            )
        key = "/".join(part for part in (prefix.strip("/"), entry.path) if part)
        client.upload_file(str(path), bucket, key, ExtraArgs={"Metadata": {"sha256": entry.sha256}})
        published[name] = ModelArtifact(uri=f"s3://{bucket}/{key}", sha256=entry.sha256)
    return published


def main(argv: Sequence[str] | None = None) -> None:
    """CLI entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bucket", help="S3 bucket to upload to")
    parser.add_argument("--prefix", default="", help="key prefix inside the bucket (default: none)")
    parser.add_argument("--models", type=Path, default=Path("models"), help="directory of manifest.json")
    args = parser.parse_args(argv)
    for name, artifact in publish(args.models, args.bucket, args.prefix).items():
        print(f"{name}  {artifact.uri}  {artifact.sha256}")


if __name__ == "__main__":
    main()
