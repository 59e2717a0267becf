"""The spec's JSON Schema: committed, current, fully described, and named by every spec file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, get_args

from pydantic import BaseModel

from render.spec.models import Spec
from render.spec.schema import SCHEMA_FILE, spec_json_schema

ROOT = Path(__file__).parents[3]


def _classes(annotation: Any) -> list[Any]:
    return [annotation, *(c for arg in get_args(annotation) for c in _classes(arg))]


def _models(model: type[BaseModel], seen: set[type[BaseModel]]) -> set[type[BaseModel]]:
    """The model and every model reachable through its fields (Optional, list, dict and unions included)."""
    seen.add(model)
    for field in model.model_fields.values():
        for inner in _classes(field.annotation):
            if isinstance(inner, type) and issubclass(inner, BaseModel) and inner not in seen:
                _models(inner, seen)
    return seen


def test_schema_file_is_current() -> None:
    committed = json.loads((ROOT / SCHEMA_FILE).read_text())
    assert committed == spec_json_schema(), "run `nox -s schema` and commit deployments/schema.json"


def test_every_spec_field_is_described() -> None:
    undescribed = [
        f"{model.__name__}.{name}"
        for model in _models(Spec, set())
        for name, field in model.model_fields.items()
        if not field.description
    ]
    assert undescribed == []


def test_every_spec_model_forbids_unknown_keys() -> None:
    assert [m.__name__ for m in _models(Spec, set()) if m.model_config.get("extra") != "forbid"] == []


def test_every_spec_file_names_the_schema() -> None:
    files = sorted((ROOT / "deployments").glob("*/*.yaml"))
    assert files
    for file in files:
        if file.parent.name == "deployments":
            continue
        assert file.read_text().startswith("# yaml-language-server: $schema=../schema.json\n"), file
