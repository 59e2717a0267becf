"""Build (and push) the serving image of the Dockerfile with a running Docker engine; `nox -s image` runs this.

    python -m tools.image [--base local|IMAGE] [--tag TAG] [--gpu] [--no-cache] [--push REGISTRY [--set-image ENV]]

It starts nothing but builds: it needs an engine that answers (`docker info`), and says how to start one if none
does. `--base local` builds on `local/debian-python:bookworm`, a Debian bookworm with its Python 3.11 made by
debootstrap when missing (root and debootstrap needed): the way to build where no registry can be reached. Without
it the Dockerfile's default, the official Python image pinned by digest, is the base. The build prints the image's
ID, size and build time and fails above SIZE_BUDGET_BYTES. `--push` prints the pushed digest reference and
`--set-image dev` writes it into dev's spec and renders, by `python -m render set-image` (then `nox -s promote`
carries it on). Only the standard library is used.
"""

from __future__ import annotations

import argparse
import configparser
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
LOCK = REPO_ROOT / "image" / "requirements.lock"
CA_BUNDLE = REPO_ROOT / "image" / "build-ca.crt"
WHEELS = REPO_ROOT / "image" / "wheels"
LOCAL_BASE = "local/debian-python:bookworm"
DEFAULT_TAG = "serving-toolkit:dev"
# Measured 2026-12-04 on the local Debian base: 2.07 GB (cold build 231 s on 2 shared cores); the budget allows 15 %.
SIZE_BUDGET_BYTES = 2_380_000_000
SYSTEM_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
_PIN = re.compile(r"^([A-Za-z0-9_.-]+)==(\S+)")
_PUSHED_DIGEST = re.compile(r"^\S+: digest: (sha256:[0-9a-f]{64}) size: \d+$", re.MULTILINE)
# A repository name without tag or digest, as Docker parses references (distribution/reference regexp.go): an
# optional registry host[:port], then lowercase path components.
_HOST = r"[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*(?::[0-9]+)?"
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REPOSITORY = re.compile(rf"^(?:{_HOST}/)?{_COMPONENT}(?:/{_COMPONENT})*$")


class ImageError(Exception):
    """The image could not be built or pushed; the message says why and what to do."""


def docker(*args: str, capture: bool = True) -> str:
    """Run the docker CLI; its stdout, or ImageError with its stderr."""
    result = subprocess.run(["docker", *args], capture_output=capture, text=True, check=False)
    if result.returncode != 0:
        detail = (result.stderr or "").strip().splitlines()[-1:] if capture else []
        raise ImageError(f"docker {' '.join(args[:2])} failed ({result.returncode}): {' '.join(detail)}")
    return (result.stdout or "").strip()


def engine_version() -> str:
    """The Docker engine's version; ImageError saying how to start one when none answers."""
    if shutil.which("docker") is None:
        raise ImageError("no docker CLI on PATH. Hint: install Docker (Debian: apt-get install docker.io)")
    result = subprocess.run(
        ["docker", "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True, check=False
    )
    if result.returncode != 0 or not result.stdout.strip():
        reason = (result.stderr.strip().splitlines() or ["no answer"])[-1]
        raise ImageError(
            f"no Docker engine answers ({reason}). Hint: start one — Docker Desktop, `systemctl start docker`, or as"
            " root `dockerd > dockerd.log 2>&1 &` (Debian: apt-get install docker.io) — and stop it by its PID after"
        )
    return result.stdout.strip()


def has_image(ref: str) -> bool:
    """Whether the engine holds `ref`."""
    return subprocess.run(["docker", "image", "inspect", ref], capture_output=True, check=False).returncode == 0


def debian_mirror() -> str:
    """The Debian mirror this machine's apt uses (deb822 sources first), for debootstrap."""
    sources = sorted(Path("/etc/apt/sources.list.d").glob("*.sources"))
    for source in sources:
        for line in source.read_text().splitlines():
            if line.startswith("URIs:") and "security" not in line:
                return line.split()[1]
    legacy = Path("/etc/apt/sources.list")
    for line in legacy.read_text().splitlines() if legacy.exists() else []:
        fields = line.split()
        if fields[:1] == ["deb"] and "security" not in line:
            return next(f for f in fields[1:] if "://" in f)
    raise ImageError("no Debian mirror in /etc/apt/sources.list.d/*.sources or /etc/apt/sources.list")


def ensure_local_base() -> None:
    """Make LOCAL_BASE with debootstrap when the engine lacks it (about a minute, 265 MB)."""
    if has_image(LOCAL_BASE):
        return
    if shutil.which("debootstrap") is None or os.geteuid() != 0:
        raise ImageError(f"{LOCAL_BASE} is missing; making it needs root and debootstrap (apt-get install debootstrap)")
    print(f"making {LOCAL_BASE} with debootstrap", flush=True)
    with tempfile.TemporaryDirectory() as rootfs:
        subprocess.run(
            [
                *("debootstrap", "--variant=minbase", "--include=python3,python3-venv,ca-certificates"),
                *("bookworm", rootfs, debian_mirror()),
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        tar = subprocess.Popen(["tar", "-C", rootfs, "-c", "."], stdout=subprocess.PIPE)
        subprocess.run(["docker", "import", "-", LOCAL_BASE], stdin=tar.stdout, check=True, stdout=subprocess.DEVNULL)
        if tar.wait() != 0:
            raise ImageError(f"tar of the debootstrap tree failed ({tar.returncode})")


def find_links() -> list[Path]:
    """pip's find-links directories on this machine ($PIP_FIND_LINKS, then pip.conf files)."""
    links = os.environ.get("PIP_FIND_LINKS", "").split()
    config = configparser.ConfigParser()
    config.read(["/etc/pip.conf", "/etc/xdg/pip/pip.conf", Path.home() / ".config/pip/pip.conf"])
    links += config.get("global", "find-links", fallback="").split()
    return [
        Path(link.removeprefix("file://"))
        for link in dict.fromkeys(links)
        if "://" not in link or link.startswith("file://")
    ]


def local_wheels(lock: Path) -> list[Path]:
    """The wheels of locked versions PyPI does not have (a local label: torch==2.13.0+cpu), from find-links;
    ImageError naming where to get one that is missing."""
    wanted = []
    for line in lock.read_text().splitlines():
        match = _PIN.match(line)
        if match and "+" in match.group(2):
            wanted.append((match.group(1).replace("-", "_").lower(), match.group(2)))
    found = []
    for name, version in wanted:
        candidates = [w for d in find_links() if d.is_dir() for w in d.glob("*.whl")]
        matching = [w for w in candidates if w.name.lower().startswith(f"{name}-{version}-".lower())]
        if not matching:
            raise ImageError(
                f"{lock.name}: {name}=={version} is not on PyPI and no find-links directory holds its wheel. Hint: pip"
                f" download it into one (torch CPU builds: https://download.pytorch.org/whl/cpu) and set PIP_FIND_LINKS"
            )
        found += matching
    return found


def prepare_context() -> None:
    """Put the CA bundle pip trusts and the local wheels where the Dockerfile copies them from."""
    shutil.copyfile(os.environ.get("PIP_CERT") or SYSTEM_CA_BUNDLE, CA_BUNDLE)
    shutil.rmtree(WHEELS, ignore_errors=True)
    WHEELS.mkdir(parents=True)
    for wheel in local_wheels(LOCK):
        shutil.copyfile(wheel, WHEELS / wheel.name)


def build(tag: str, base: str | None, gpu: bool = False, no_cache: bool = False) -> tuple[str, int, float]:
    """Build the Dockerfile as `tag` on `base` (None: the Dockerfile's default); (image ID, bytes, seconds)."""
    prepare_context()
    args = ["build", "--network", "host", "--tag", tag, "--build-arg", f"VARIANT={'gpu' if gpu else 'cpu'}"]
    if base is not None:
        args += ["--build-arg", f"BASE_IMAGE={base}"]
    if no_cache:
        args.append("--no-cache")
    started = time.monotonic()
    # The classic builder: BuildKit needs the buildx plugin, which a plain engine install lacks.
    result = subprocess.run(["docker", *args, str(REPO_ROOT)], env={**os.environ, "DOCKER_BUILDKIT": "0"}, check=False)
    seconds = time.monotonic() - started
    if result.returncode != 0:
        hint = " Hint: no registry reachable? Build on a local base: -- --base local" if base is None else ""
        raise ImageError(f"docker build failed ({result.returncode}).{hint}")
    image_id, size = docker("image", "inspect", "--format", "{{.Id}} {{.Size}}", tag).split()
    return image_id, int(size), seconds


def smoke_check(tag: str) -> None:
    """Run the image once without network: every runtime import, the probe tools, a non-root user."""
    imports = "import ray.serve, torch, onnxruntime, tokenizers, xgboost, sklearn, sqlalchemy, pymysql, boto3, jinja2"
    script = f"{imports}; import serve_apps.entrypoint; import os; assert os.getuid() != 0, 'runs as root'"
    docker("run", "--rm", "--network", "none", tag, "python", "-c", script)
    docker("run", "--rm", "--network", "none", tag, "bash", "-c", "wget --version >/dev/null")


def commit_tag() -> str:
    """The tag a pushed image gets: the repository's commit, 12 hex digits."""
    return subprocess.run(
        ["git", "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True, check=True, cwd=REPO_ROOT
    ).stdout.strip()


def push(tag: str, registry: str) -> str:
    """Tag the local image `tag` (any image) as `registry:<commit>` (registry e.g.
    123456789012.dkr.ecr.eu-west-1.amazonaws.com/serving), push it and return its digest reference
    `registry@sha256:…`, the one to put in env.image. The engine must already be logged in to the registry."""
    repository = registry.rstrip("/")
    remote = f"{repository}:{commit_tag()}"
    docker("tag", tag, remote)
    try:
        output = docker("push", remote)
    except ImageError as error:
        raise ImageError(f"{error}. Hint: is {registry} reachable, and the engine logged in (docker login)?") from error
    # The push's own last line (`<tag>: digest: sha256:… size: …`): the engine's RepoDigests may also hold digests
    # of earlier pushes of the same image to this repository.
    match = _PUSHED_DIGEST.search(output)
    if match is None:
        raise ImageError(f"docker push {remote} printed no digest: {output.splitlines()[-1:]}")
    return f"{repository}@{match.group(1)}"


def set_image(env: str, reference: str, root: Path = REPO_ROOT) -> None:
    """Write `reference` into `env`'s spec under `root` and render (`python -m render set-image`, which prints what
    changed); ImageError when it refuses."""
    command = [sys.executable, "-m", "render", "--root", str(root), "set-image", env, reference]
    if subprocess.run(command, check=False).returncode != 0:
        raise ImageError(f"set-image refused {reference} for {env} (above); the image is pushed, the spec unchanged")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="nox -s image --", description=__doc__.splitlines()[0])
    parser.add_argument("--base", help=f"base image; `local` builds on {LOCAL_BASE} (made if missing)")
    parser.add_argument("--tag", default=DEFAULT_TAG, help=f"local tag (default {DEFAULT_TAG})")
    parser.add_argument("--gpu", action="store_true", help="onnxruntime-gpu; runs on GPUs only on a CUDA base")
    parser.add_argument("--no-cache", action="store_true", help="build every layer again (a cold build)")
    parser.add_argument("--push", metavar="REGISTRY", help="then tag as REGISTRY:<commit>, push, print the digest")
    parser.add_argument("--set-image", metavar="ENV", help="then write the pushed digest into ENV's spec and render")
    args = parser.parse_args(argv)
    # Checked before the build, which takes minutes: these would fail only after it.
    if args.set_image and not args.push:
        parser.error("--set-image needs --push: it writes the digest of the image pushed")
    if args.push and not _REPOSITORY.match(args.push):
        parser.error(
            f"--push {args.push!r} is not a repository name: [host[:port]/]lowercase/path, no tag (the commit is the"
            " tag), e.g. 123456789012.dkr.ecr.eu-west-1.amazonaws.com/serving"
        )
    if args.set_image:
        # As render.spec.load.known_envs finds them (this tool runs without the project installed).
        envs = sorted(
            d.name
            for d in (REPO_ROOT / "deployments").iterdir()
            if d.is_dir() and d.name != "base" and any([*d.glob("*.yaml"), *d.glob("*.yml")])
        )
        if args.set_image not in envs:
            parser.error(f"--set-image {args.set_image!r} is no environment; known: {', '.join(envs)}")
    try:
        print(f"Docker engine {engine_version()}")
        base = args.base
        if base == "local":
            ensure_local_base()
            base = LOCAL_BASE
            print(f"base: {LOCAL_BASE} (Debian bookworm's Python 3.11 by debootstrap), NOT the production base")
        if args.gpu:
            print("GPU variant: onnxruntime-gpu; its CUDA provider needs a CUDA 12 + cuDNN 9 base (no GPU here)")
        image_id, size, seconds = build(args.tag, base, args.gpu, args.no_cache)
        smoke_check(args.tag)
        print(f"image {args.tag}: {image_id}, {size / 1e9:.2f} GB, built in {seconds:.0f} s")
        if size > SIZE_BUDGET_BYTES:
            raise ImageError(f"{size / 1e9:.2f} GB exceeds the size budget of {SIZE_BUDGET_BYTES / 1e9:.2f} GB")
        print(f"size budget: {size / 1e9:.2f} GB of {SIZE_BUDGET_BYTES / 1e9:.2f} GB")
        if args.push:
            reference = push(args.tag, args.push)
            print(f"pushed: {reference}", flush=True)
            if args.set_image:
                set_image(args.set_image, reference)
    except ImageError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
