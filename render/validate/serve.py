"""Validate a serveConfigV2 string with Ray's own ServeDeploySchema, refusing keys Ray would ignore."""

from __future__ import annotations

import typing
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError
from ray.serve.schema import ServeDeploySchema


def _ignored_keys(given: Any, model: Any, path: str) -> list[str]:
    """Keys of `given` that the validated `model` dropped or kept only as extras: Ray would ignore them."""
    problems: list[str] = []
    if isinstance(model, BaseModel) and isinstance(given, dict):
        fields = type(model).model_fields
        aliases = {f.alias: name for name, f in fields.items() if f.alias}
        for key, value in given.items():
            name = aliases.get(key, key)
            if name not in fields:
                problems.append(f"{path}{key}: Ray does not know this key and would ignore it")
                continue
            problems += _ignored_keys(value, _as_model(getattr(model, name), fields[name].annotation), f"{path}{key}.")
    elif isinstance(model, list) and isinstance(given, list):
        for index, (item_given, item_model) in enumerate(zip(given, model, strict=False)):
            problems += _ignored_keys(item_given, item_model, f"{path}{index}.")
    return problems


def _as_model(value: Any, annotation: Any) -> Any:
    """Ray types some options `Union[Dict, SomeConfig]` and keeps the dict: check it against SomeConfig too."""
    if isinstance(value, dict):
        for member in typing.get_args(annotation):
            if isinstance(member, type) and issubclass(member, BaseModel):
                return member.model_validate(value)
    return value


def serve_config_problems(serve_config_v2: str) -> list[str]:
    """Every problem Ray would have with this serveConfigV2 text; empty when it is valid."""
    try:
        data = yaml.load(serve_config_v2, Loader=yaml.CSafeLoader)
    except yaml.YAMLError as error:
        return [f"serveConfigV2 is not YAML: {error}"]
    try:
        schema = ServeDeploySchema.model_validate(data)
    except ValidationError as error:
        return [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors()]
    return _ignored_keys(data, schema, "")
