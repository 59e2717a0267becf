"""The parity report: every field of the spec and how the environment's target honours it.

The field list is walked from the Spec model itself (with the environment's own target config in place of the
target union), so a field added to the spec shows up here at once; a field no declaration covers fails the render
(`ParityGap`), and tests render every target, so a new field cannot be forgotten.

Paths name list items with `[]` and mapping values with `<key>`: `apps[].deployments[].ray_actor_options.num_gpus`,
`env.secrets.<key>.aws_secrets_manager`.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from pydantic import BaseModel

from render.errors import RenderError
from render.plan import EnvPlan
from render.spec.models import Spec
from render.targets.base import COMMON_PARITY, Honour, Support, TargetConfigBase, TargetOutput, exact

TEMPLATES = Path(__file__).parent / "templates"
REPORT = "PARITY.md"


class ParityGap(RenderError):
    """A spec field that a target declares nothing about: a new field that a target has not been taught."""


@dataclass(frozen=True)
class FieldRow:
    """One spec field: its path, its description, how the target honours it, whether this env sets it, the files
    that do, and whether one of those is the environment's own (deployments/<env>/) rather than inherited."""

    path: str
    description: str
    honour: Honour
    stated: bool
    files: tuple[str, ...]
    here: bool


def spec_fields(target_config: type[BaseModel]) -> list[tuple[str, str]]:
    """(path, description) of every leaf field of the Spec, with `target_config` as the target."""
    return list(_walk(Spec, "", target_config))


def _walk(model: type[BaseModel], prefix: str, target_config: type[BaseModel]) -> Iterator[tuple[str, str]]:
    for name, info in model.model_fields.items():
        path, inner = _unwrap(info.annotation, f"{prefix}{name}", target_config)
        if isinstance(inner, type) and issubclass(inner, BaseModel):
            yield from _walk(inner, f"{path}.", target_config)
        else:
            yield path, info.description or ""


def _unwrap(annotation: Any, path: str, target_config: type[BaseModel]) -> tuple[str, Any]:
    """Follow Annotated, Optional, list and dict to the model (or scalar) inside, extending the path."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(annotation)[0], path, target_config)
    if origin in (Union, types.UnionType):
        members = [m for m in typing.get_args(annotation) if m is not type(None)]
        models = [m for m in members if isinstance(m, type) and issubclass(m, BaseModel)]
        if len(models) > 1:
            # The discriminated target union: this report is about one target.
            return path, target_config
        return _unwrap(members[0], path, target_config) if len(members) == 1 else (path, annotation)
    if origin is list:
        inner_path, inner = _unwrap(typing.get_args(annotation)[0], f"{path}[]", target_config)
        return (inner_path, inner) if isinstance(inner, type) and issubclass(inner, BaseModel) else (path, annotation)
    if origin is dict:
        inner_path, inner = _unwrap(typing.get_args(annotation)[1], f"{path}.<key>", target_config)
        return (inner_path, inner) if isinstance(inner, type) and issubclass(inner, BaseModel) else (path, annotation)
    return path, annotation


def rows(plan: EnvPlan, output: TargetOutput) -> list[FieldRow]:
    """Every spec field with its honour; raises ParityGap for a field nothing declares."""
    target_config: type[TargetConfigBase] = type(plan.spec.env.target)
    own = {
        f"env.target.{path}": exact(f"target setting: {description}")
        for path, description in _walk(target_config, "", target_config)
    }
    declared: Mapping[str, Honour] = {**COMMON_PARITY, **own, **output.parity}
    stated = _stated(plan.spec)
    fields = spec_fields(target_config)
    gaps = [path for path, _ in fields if path not in declared]
    if gaps:
        raise ParityGap(
            f"the {target_config.target_kind()} target declares nothing about spec field(s) {', '.join(gaps)}: "
            "say how it honours them in its parity (render/targets/)"
        )
    sources = plan.spec.sources
    table = []
    for path, description in fields:
        files = sorted({f for named in stated.get(path, []) for f in sources.files_setting(named)})
        here = any(f in sources.own for f in files)
        table.append(FieldRow(path, description, declared[path], path in stated, tuple(files), here))
    return table


def _stated(spec: Spec) -> dict[str, list[str]]:
    """The fields the environment's files state (pydantic's model_fields_set), in spec_fields' form, each with the
    named key paths it covers (`apps[iris].slo.p95_ms` for `apps[].slo.p95_ms`)."""
    stated: dict[str, list[str]] = {}
    for path, named in _stated_walk(spec, "", ""):
        stated.setdefault(path, []).append(named)
    return stated


def _stated_walk(value: Any, prefix: str, named: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, BaseModel):
        for name in value.model_fields_set:
            path = f"{prefix}.{name}" if prefix else name
            key = f"{named}.{name}" if named else name
            yield path, key
            yield from _stated_walk(getattr(value, name), path, key)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            # Named items (apps, deployments, worker groups) as the overlay merge names them, others by position.
            label = getattr(item, "name", None) if isinstance(item, BaseModel) else None
            yield from _stated_walk(item, f"{prefix}[]", f"{named}[{label if isinstance(label, str) else index}]")
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _stated_walk(item, f"{prefix}.<key>", f"{named}.{key}")


def report(plan: EnvPlan, output: TargetOutput) -> str:
    """PARITY.md of one environment."""
    table = rows(plan, output)
    counts = {support.value: sum(r.honour.support is support for r in table) for support in Support}
    ignored = [r for r in table if r.honour.support is Support.IGNORED and r.stated]
    return (
        _templates()
        .get_template("parity.md.j2")
        .render(
            env=plan.name,
            target=plan.spec.env.target.kind,
            counts=counts,
            rows=[
                {
                    "path": r.path,
                    "support": r.honour.support.value,
                    "how": _cell(r.honour.how),
                    "stated": "here" if r.here else "inherited" if r.stated else "",
                }
                for r in table
            ],
            ignored_here=[{"path": r.path, "how": r.honour.how, "files": r.files} for r in ignored if r.here],
            ignored_inherited=[{"path": r.path, "how": r.honour.how, "files": r.files} for r in ignored if not r.here],
            sizing=output.sizing,
            streaming=output.streaming,
            native=[body.path for body in output.native],
        )
    )


def summary(plan: EnvPlan, output: TargetOutput) -> list[str]:
    """The stdout summary of one environment: counts, then a warning for each field the target ignores that the
    environment's own files set (what it inherits it cannot remove, so that is counted, not warned about)."""
    table = rows(plan, output)
    kind = plan.spec.env.target.kind
    counts = ", ".join(
        f"{n} {support.value}" for support in Support if (n := sum(r.honour.support is support for r in table))
    )
    ignored = [r for r in table if r.honour.support is Support.IGNORED and r.stated]
    inherited = sum(not r.here for r in ignored)
    also = f"; {kind} ignores {inherited} inherited setting(s)" if inherited else ""
    lines = [f"parity of {plan.name} ({kind}): {counts}{also}; see rendered/{plan.name}/{REPORT}"]
    lines += [
        f"warning: {plan.name}: {r.path} is set in {', '.join(f for f in r.files if f in plan.spec.sources.own)}"
        f" but {kind} cannot honour it: {r.honour.how}"
        for r in ignored
        if r.here
    ]
    return lines


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return text.replace("|", "\\|").replace("\n", " ")


def _templates() -> Environment:
    return Environment(  # noqa: S701 - Markdown, not HTML
        loader=FileSystemLoader(TEMPLATES),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
