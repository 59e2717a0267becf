"""Helpers for spec tests: a copy of the fixture repo to change one key at a time."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from render.errors import SpecError
from render.spec.load import load_specs
from render.targets.base import NATIVE_DIR
from render.validate.crd import CrdIndex
from tests.golden_tree import FIXTURE_REPO


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A private copy of tests/fixtures/repo (envs dev and prod)."""
    target = tmp_path / "repo"
    shutil.copytree(FIXTURE_REPO, target)
    return target


def edit(repo: Path, file: str, change: Callable[[dict[str, Any]], None]) -> None:
    """Load a YAML file of the repo, let `change` mutate it, write it back."""
    path = repo / file
    data = yaml.safe_load(path.read_text()) if path.exists() else {}
    change(data)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def problems(repo: Path, envs: list[str] | None = None) -> list[str]:
    """Every problem the spec loader reports, as printed."""
    with pytest.raises(SpecError) as caught:
        load_specs(repo, envs)
    return [str(p) for p in caught.value.problems]


def app(data: dict[str, Any], name: str) -> dict[str, Any]:
    """The app entry called `name` in a layer, created when absent."""
    apps = data.setdefault("apps", [])
    for entry in apps:
        if entry["name"] == name:
            return entry
    apps.append({"name": name})
    return apps[-1]


def deployment(data: dict[str, Any], app_name: str, name: str = "Echo") -> dict[str, Any]:
    """The deployment entry of an app in a layer, created when absent."""
    deployments = app(data, app_name).setdefault("deployments", [])
    for entry in deployments:
        if entry["name"] == name:
            return entry
    deployments.append({"name": name})
    return deployments[-1]


def not_validated_notes(files: dict[str, str], crd_dir: Path) -> list[str]:
    """The notes render must print for these rendered files: one per kind the CRD directory holds no CRD for."""
    index = CrdIndex(crd_dir)
    kinds = {
        (doc["apiVersion"], doc["kind"])
        for path, text in files.items()
        if path.endswith(".yaml") and f"/{NATIVE_DIR}/" not in path  # native/ bodies go to APIs, not to a cluster
        for doc in yaml.safe_load_all(text)
        if isinstance(doc, dict) and "kind" in doc
    }
    missing = sorted(f"{api_version} {kind}" for api_version, kind in kinds if not index.has(api_version, kind))
    return [f"no CRD for {kind} in {crd_dir}: not validated against a schema" for kind in missing]
