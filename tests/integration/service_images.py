"""The images the Docker backend of ``services.py`` runs, and whether this engine can have them.

An image is usable when the engine holds it, when it is one of the stand-ins below (built here from Debian packages
and PyPI, for machines that reach no container registry), or when the engine can pull it. The stand-ins:

* ``local/mariadb-mysql:10.11``: Debian's MariaDB behind an entrypoint with the official ``mysql`` image's contract
  (``images/mariadb/``);
* ``local/localstack:<version>``: LocalStack's ``localstack-core`` at the pins of ``tools/localstack_host.py``
  (``images/localstack/``).

Both are built on ``tools/image.py``'s local Debian base (made by debootstrap when missing). Select them with
``SERVICES_MYSQL_IMAGE`` / ``SERVICES_LOCALSTACK_IMAGE``.
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

_HERE = Path(__file__).resolve().parent
REPO_ROOT = _HERE.parents[1]
if str(REPO_ROOT) not in sys.path:  # `tools` is imported from the repository root
    sys.path.insert(0, str(REPO_ROOT))

from tools import image as image_tool  # noqa: E402
from tools import localstack_host  # noqa: E402

IMAGES_DIR = _HERE / "images"
MARIADB_STAND_IN = "local/mariadb-mysql:10.11"
LOCALSTACK_VERSION = next(p.split("==")[1] for p in localstack_host.LOCALSTACK_PINS if p.startswith("localstack-core"))
LOCALSTACK_STAND_IN = f"local/localstack:{LOCALSTACK_VERSION}"
PULL_TIMEOUT_S = 120.0
RECIPE_LABEL = "serving-toolkit.recipe-sha256"  # a stand-in is rebuilt when its Dockerfile, files or pins change


class ImageUnavailable(RuntimeError):
    """The engine cannot have an image; the message says why."""


def _docker(*args: str, timeout: float | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=False, timeout=timeout)


def present(image: str) -> bool:
    return _docker("image", "inspect", image).returncode == 0


def recipe_digest(context: Path, build_args: dict[str, str]) -> str:
    """sha256 of a stand-in's recipe: its build context (the CA bundle aside) and build arguments."""
    digest = hashlib.sha256(repr(sorted(build_args.items())).encode())
    for path in sorted(p for p in context.rglob("*") if p.is_file() and p.name != "build-ca.crt"):
        digest.update(path.relative_to(context).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _built_from(image: str) -> str | None:
    """The recipe digest a stand-in was built from (its RECIPE_LABEL), None when absent."""
    result = _docker("image", "inspect", "--format", f'{{{{index .Config.Labels "{RECIPE_LABEL}"}}}}', image)
    return result.stdout.strip() or None if result.returncode == 0 else None


def _build(image: str, context: Path, build_args: dict[str, str]) -> None:
    """`docker build` a stand-in on the local Debian base, labelled with its recipe's digest; prints what it does
    and how long it took."""
    image_tool.ensure_local_base()
    print(f"building {image} from {context.relative_to(REPO_ROOT)} on {image_tool.LOCAL_BASE}", flush=True)
    recipe = recipe_digest(context, build_args)
    args = ["build", "--quiet", "--network", "host", "--tag", image, "--label", f"{RECIPE_LABEL}={recipe}"]
    for name, value in {"BASE_IMAGE": image_tool.LOCAL_BASE, **build_args}.items():
        args += ["--build-arg", f"{name}={value}"]
    previous = _docker("image", "inspect", "--format", "{{.Id}}", image).stdout.strip()
    started = time.monotonic()
    # The classic builder: BuildKit needs the buildx plugin, which a plain engine install lacks.
    result = subprocess.run(
        ["docker", *args, str(context)], capture_output=True, text=True, env={**os.environ, "DOCKER_BUILDKIT": "0"}
    )
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-15:])
        raise ImageUnavailable(f"building {image} failed ({result.returncode}):\n{tail}")
    print(f"built {image} in {time.monotonic() - started:.0f} s", flush=True)
    if previous and previous != result.stdout.strip():
        _docker("image", "rm", previous)  # the superseded build, now untagged; kept only while a container uses it


@dataclass(frozen=True)
class StandIn:
    """How to build a stand-in: its context directory and build arguments."""

    context: Path
    build_args: dict[str, str]

    def current(self, image: str) -> bool:
        """Whether the engine holds `image` built from this recipe as it is now."""
        return _built_from(image) == recipe_digest(self.context, self.build_args)

    def build(self, image: str) -> None:
        ca_bundle = self.context / "build-ca.crt"  # for pip in a build stage only; kept out of git
        shutil.copyfile(os.environ.get("PIP_CERT") or image_tool.SYSTEM_CA_BUNDLE, ca_bundle)
        try:
            _build(image, self.context, self.build_args)
        finally:
            ca_bundle.unlink(missing_ok=True)


STAND_INS: dict[str, StandIn] = {
    MARIADB_STAND_IN: StandIn(IMAGES_DIR / "mariadb", {}),
    LOCALSTACK_STAND_IN: StandIn(
        IMAGES_DIR / "localstack", {"LOCALSTACK_PINS": " ".join(localstack_host.LOCALSTACK_PINS)}
    ),
}


def _base_obtainable() -> str | None:
    """Why the stand-ins' base can neither be found nor made, or None."""
    if present(image_tool.LOCAL_BASE):
        return None
    if shutil.which("debootstrap") is None or os.geteuid() != 0:
        return f"{image_tool.LOCAL_BASE} is absent and making it needs root and debootstrap"
    return None


@functools.cache
def _pull(image: str) -> str | None:
    """Pull `image`; None when it worked, else why not (asked once per process: a refusal is quick, a success
    leaves the image present)."""
    try:
        result = _docker("pull", "--quiet", image, timeout=PULL_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return f"pulling {image} took over {PULL_TIMEOUT_S:.0f} s"
    if result.returncode == 0:
        return None
    reason = (result.stderr.strip().splitlines() or ["no reason given"])[-1]
    return f"{image} is absent and cannot be pulled ({reason})"


def unobtainable(image: str) -> str | None:
    """Why the engine cannot have `image` (absent, not a stand-in, not pullable), or None when it can."""
    if image in STAND_INS:
        return None if STAND_INS[image].current(image) else _base_obtainable()
    if present(image):
        return None
    return _pull(image)


def ensure(image: str) -> None:
    """Make sure the engine holds `image`: there (a stand-in: built from its current recipe), built or pulled; else
    ImageUnavailable."""
    if image in STAND_INS:
        if not STAND_INS[image].current(image):
            STAND_INS[image].build(image)
        return
    if present(image):
        return
    why = _pull(image)
    if why is not None:
        stand_ins = ", ".join(STAND_INS)
        raise ImageUnavailable(f"{why}; the stand-ins this repository builds without a registry: {stand_ins}")


def main(argv: list[str]) -> int:
    """`python tests/integration/service_images.py IMAGE...`: make sure the engine holds each (CI builds the
    stand-ins before the tests, so that the build shows in its log with its time)."""
    for image in argv:
        try:
            ensure(image)
        except (ImageUnavailable, image_tool.ImageError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        print(f"{image}: present")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
