"""What the container tests of the serving image share: a Docker engine (their modules skip, saying why, when none
answers), the image ($SERVING_IMAGE, else built here), and the doubleit app rendered for a target, its model
mounted read-only where the spec's file:// URI points inside the image.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from render.pipeline import render_repo
from tests.integration.single_app import REPO_ROOT
from tools import image as image_tool

APP = "doubleit"
WORKDIR = "/home/ray"  # the image's working directory: relative file:// model URIs resolve against it
MODEL = "models/doubleit/doubleit.pt"


def _no_engine() -> str | None:
    """Why no Docker engine can be used, or None."""
    try:
        image_tool.engine_version()
    except image_tool.ImageError as error:
        return str(error)
    return None


_NO_ENGINE = _no_engine()
needs_engine = pytest.mark.skipif(_NO_ENGINE is not None, reason=f"needs a Docker engine: {_NO_ENGINE}")


def docker(*args: str, check: bool = True, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=check, env=env)


def logs(container: str) -> str:
    """The last lines a container wrote, for a failure message."""
    result = docker("logs", "--tail", "60", container, check=False)
    return (result.stdout + result.stderr)[-4000:]


def model_volume() -> tuple[str, str]:
    """`docker run` options mounting the doubleit model read-only at the path its file:// URI names."""
    return "--volume", f"{REPO_ROOT / MODEL}:{WORKDIR}/{MODEL}:ro"


@contextlib.contextmanager
def serving_image() -> Iterator[str]:
    """$SERVING_IMAGE, else the Dockerfile built under a tag of this run (removed after; shared layers stay)."""
    given = os.environ.get("SERVING_IMAGE")
    if given:
        yield given
        return
    tag = f"serving-toolkit:it-{uuid.uuid4().hex[:8]}"
    try:
        image_tool.ensure_local_base()
        base: str | None = image_tool.LOCAL_BASE
        print(f"\nbuilding {tag} on {base} (Debian bookworm's Python by debootstrap), not the production base")
    except image_tool.ImageError as error:
        base = None
        print(f"\nbuilding {tag} on the Dockerfile's production base ({error})")
    image_id, size, seconds = image_tool.build(tag, base)
    print(f"image {image_id[:19]}, {size / 1e9:.2f} GB, built in {seconds:.0f} s")
    try:
        yield tag
    finally:
        docker("rmi", tag, check=False)


def render_app(
    tmp_path_factory: pytest.TempPathFactory, fixture_repo: Path, env_name: str, max_ongoing_requests: int
) -> dict[str, str]:
    """The rendered files of env `env_name` of a fixture repo, its apps replaced by doubleit (one replica of a
    quarter CPU) whose model is the file:// artifact of models/ (and, on Cloud Run, no AWS role: nothing is read
    from S3)."""
    manifest = json.loads((REPO_ROOT / "models/manifest.json").read_text())[APP]
    assert manifest["uri"] == f"file://{MODEL}", manifest
    repo = tmp_path_factory.mktemp(f"image-{env_name}") / "repo"
    shutil.copytree(fixture_repo, repo)
    app = {
        "name": APP,
        "import_path": "serve_apps.doubleit.app:app_builder",
        "route_prefix": f"/{APP}",
        "model": {"uri": manifest["uri"], "sha256": manifest["sha256"]},
        "slo": {"p95_ms": 50, "error_rate": 0.0, "min_rps": 10},
        "deployments": [
            {
                "name": "DoubleIt",
                "num_replicas": 1,
                "max_ongoing_requests": max_ongoing_requests,
                "ray_actor_options": {"num_cpus": 0.25},
            }
        ],
    }
    (repo / "deployments/base/apps.yaml").write_text(yaml.safe_dump({"apps": [app]}))
    env_file = repo / f"deployments/{env_name}/env.yaml"
    env = yaml.safe_load(env_file.read_text())
    del env["apps"]  # per-app overlays of the fixture's echo apps
    for key in ("aws_role_arn", "service_account_unique_id"):
        env["env"]["target"].pop(key, None)
    env_file.write_text(yaml.safe_dump(env))
    return render_repo(repo, None, [env_name]).files
