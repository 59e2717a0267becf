"""models/manifest.json: what `build_models` wrote, and what `publish_models` uploads."""

import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from serve_apps.common.artifact import ModelArtifact, sha256_of

MANIFEST_NAME = "manifest.json"


class ManifestEntry(BaseModel):
    """One built artifact."""

    model_config = ConfigDict(extra="forbid")

    path: str = Field(description="The file's path relative to the directory of the manifest: <app>/<file>.")
    uri: str = Field(description="file:// URI of the file; relative when the file lies under the build's cwd.")
    sha256: str = Field(description="SHA-256 of the file's bytes.")
    size_bytes: int = Field(ge=0, description="Size of the file.")

    def artifact(self) -> ModelArtifact:
        """The `{uri, sha256}` the spec and the app take."""
        return ModelArtifact(uri=self.uri, sha256=self.sha256)


_MANIFEST = TypeAdapter(dict[str, ManifestEntry])


def read_manifest(models_dir: Path) -> dict[str, ManifestEntry]:
    """The entries of `models_dir/manifest.json`, by name."""
    return _MANIFEST.validate_json((models_dir / MANIFEST_NAME).read_bytes())


def write_manifest(models_dir: Path, entries: dict[str, ManifestEntry]) -> Path:
    """Write the entries sorted by name, so an unchanged build rewrites the same file."""
    path = models_dir / MANIFEST_NAME
    document = {name: entries[name].model_dump() for name in sorted(entries)}
    path.write_text(json.dumps(document, indent=2) + "\n")
    return path


def manifest_matches(models_dir: Path) -> bool:
    """Whether `models_dir` holds a manifest and every file it lists, with the listed sha256."""
    if not (models_dir / MANIFEST_NAME).is_file():
        return False
    return all(
        (models_dir / entry.path).is_file() and sha256_of(models_dir / entry.path) == entry.sha256
        for entry in read_manifest(models_dir).values()
    )
