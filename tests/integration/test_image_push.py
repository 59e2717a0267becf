"""`nox -s image -- --push <registry> --set-image <env>` against a real registry: the CNCF distribution registry
(Debian's docker-registry) serving on 127.0.0.1, where the Docker engine pushes without TLS. A tiny image (one file
of this run, made with `docker import`: the push is what is tested, not the serving image) is pushed with
tools/image.py's push; the digest reference it returns must name the manifest the registry holds under the pushed
tag, and set-image must put exactly that reference into every image field of the environment's rendered manifests
(KubeRay, ECS and Cloud Run fixture environments, in copies of the fixture repos).

It skips, saying why, when no Docker engine answers or docker-registry is not installed. The registry is stopped by
its PID and every tag made here is removed.
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import tarfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from render.spec.load import load_specs
from tests.golden_tree import FIXTURE_REPO, TARGETS_REPO
from tests.integration.single_app import free_port
from tools import image as image_tool

REGISTRY_READY_S = 30.0
MANIFEST_V2 = "application/vnd.docker.distribution.manifest.v2+json"
REPOSITORY = "serving"


def _unusable() -> str | None:
    """Why this module cannot run here, or None."""
    if shutil.which("docker-registry") is None:
        return "needs docker-registry (Debian: apt-get install docker-registry)"
    try:
        image_tool.engine_version()
    except image_tool.ImageError as error:
        return f"needs a Docker engine: {error}"
    return None


_UNUSABLE = _unusable()
pytestmark = pytest.mark.skipif(_UNUSABLE is not None, reason=str(_UNUSABLE))


def docker(*args: str, stdin: bytes | None = None) -> str:
    return subprocess.run(["docker", *args], input=stdin, capture_output=True, check=True).stdout.decode().strip()


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """host:port of a registry of our own, storage in a temporary directory; stopped by its PID after."""
    home = tmp_path_factory.mktemp("registry")
    address = f"127.0.0.1:{free_port()}"
    config = {
        "version": 0.1,
        "log": {"level": "warn", "accesslog": {"disabled": True}},
        "storage": {"filesystem": {"rootdirectory": str(home / "storage")}},
        "http": {"addr": address},
    }
    (home / "config.yml").write_text(yaml.safe_dump(config))
    with (home / "registry.log").open("wb") as log:
        process = subprocess.Popen(
            ["docker-registry", "serve", str(home / "config.yml")], stdout=log, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + REGISTRY_READY_S
        while True:
            try:
                if httpx.get(f"http://{address}/v2/", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                log_text = (home / "registry.log").read_text()
                raise RuntimeError(f"docker-registry did not answer on {address}: {log_text}")
            time.sleep(0.1)
        print(f"\ndocker-registry {address} (PID {process.pid}), storage in {home / 'storage'}")
        yield address
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def pushed(registry: str) -> Iterator[str]:
    """The digest reference tools/image.py's push returns for a one-file image of this run."""
    run = uuid.uuid4().hex[:12]
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        content = f"pushed by {__name__}, run {run}\n".encode()
        member = tarfile.TarInfo("pushed.txt")
        member.size = len(content)
        tar.addfile(member, io.BytesIO(content))
    local = f"local/push-test:{run}"
    docker("import", "-", local, stdin=archive.getvalue())
    remote = f"{registry}/{REPOSITORY}:{image_tool.commit_tag()}"
    try:
        reference = image_tool.push(local, f"{registry}/{REPOSITORY}")
        print(f"pushed {local} as {remote}: {reference}")
        yield reference
    finally:
        subprocess.run(["docker", "rmi", remote, local], capture_output=True, check=False)


def test_push_returns_the_digest_the_registry_serves_for_the_tag(registry: str, pushed: str) -> None:
    response = httpx.get(
        f"http://{registry}/v2/{REPOSITORY}/manifests/{image_tool.commit_tag()}", headers={"Accept": MANIFEST_V2}
    )
    response.raise_for_status()
    assert pushed == f"{registry}/{REPOSITORY}@{response.headers['Docker-Content-Digest']}"


def images(node: Any) -> Iterator[str]:
    """Every value of an `image` key in a document."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "image" and isinstance(value, str):
                yield value
            else:
                yield from images(value)
    elif isinstance(node, list):
        for item in node:
            yield from images(item)


def rendered_images(directory: Path) -> set[str]:
    """The images every rendered manifest (YAML) and API body (JSON) under `directory` names."""
    found: set[str] = set()
    for path in sorted(directory.rglob("*")):
        if path.suffix == ".yaml":
            for document in yaml.safe_load_all(path.read_text()):
                found.update(images(document))
        elif path.suffix == ".json":
            found.update(images(json.loads(path.read_text())))
    return found


@pytest.mark.parametrize(
    ("fixture", "env"),
    [(FIXTURE_REPO, "dev"), (TARGETS_REPO, "fargate"), (TARGETS_REPO, "run")],
    ids=["kuberay-dev", "ecs-fargate", "cloudrun-run"],
)
def test_set_image_renders_exactly_the_pushed_digest(
    fixture: Path, env: str, pushed: str, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(fixture, repo)
    before = load_specs(repo, [env])[env].env.image
    image_tool.set_image(env, pushed, root=repo)
    out = capfd.readouterr().out
    print(out)
    assert f": env.image: '{before}' → '{pushed}'" in out
    assert rendered_images(repo / "rendered" / env) == {pushed}
