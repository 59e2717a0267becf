"""spec → plan → target outputs → validated files, with no I/O beyond reading the spec and the CRDs."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from render import argocd, parity
from render.errors import RenderError
from render.manifests import dump, file_name
from render.plan import EnvPlan, plan_env
from render.spec.load import load_clusters, load_specs
from render.spec.models import ARGOCD_DIR
from render.targets import BUILDERS, aws_iam
from render.targets.base import NativeBody, TargetOutput
from render.validate.aws import request_problems
from render.validate.cloudrun import run_service_problems
from render.validate.crd import CrdIndex, validate
from render.validate.knative import knative_service_problems
from render.validate.serve import serve_config_problems

# How each native body is validated: by its API service ("ecs"), else by its full name ("run.v2.Service").
_NATIVE_VALIDATORS: dict[str, Callable[[NativeBody], list[str]]] = {
    "ecs": lambda b: request_problems("ecs", b.api.split(".", 1)[1], b.body),
    "application-autoscaling": lambda b: request_problems("application-autoscaling", b.api.split(".", 1)[1], b.body),
    "run.v2.Service": lambda b: run_service_problems(b.body),
    "run.v1.Service": lambda b: knative_service_problems(b.body),
}


@dataclass
class Rendered:
    """What a render produced: file texts by path relative to rendered/, what it could not check, and the parity
    summary (one line per environment, plus a warning per field its target ignores that the environment's own files
    set)."""

    files: dict[str, str]
    notes: list[str] = field(default_factory=list)
    seconds_by_stage: dict[str, float] = field(default_factory=dict)
    parity: list[str] = field(default_factory=list)


def _validate_manifests(manifests: list[dict[str, Any]], index: CrdIndex | None, skipped: set[str]) -> list[str]:
    if index is None:
        return []
    problems: list[str] = []
    for manifest in manifests:
        if index.has(manifest["apiVersion"], manifest["kind"]):
            problems += validate(manifest, index)
        else:
            skipped.add(f"{manifest['apiVersion']} {manifest['kind']}")
    return problems


def _validate_output(env: str, output: TargetOutput, index: CrdIndex | None, skipped: set[str]) -> list[str]:
    problems = _validate_manifests(output.manifests, index, skipped)
    for where, text in output.serve_configs.items():
        problems += [f"{where}: {p}" for p in serve_config_problems(text)]
    for body in output.native:
        validator = _NATIVE_VALIDATORS.get(body.api) or _NATIVE_VALIDATORS[body.api.split(".", 1)[0]]
        problems += [f"{env}/{body.path}: {p}" for p in validator(body)]
    return problems


def _place(files: dict[str, str], path: str, text: str) -> None:
    if path in files:
        raise RenderError(f"two objects would both be written to rendered/{path}")
    files[path] = text


def _native_text(body: NativeBody) -> str:
    return dump(body.body) if body.suffix == "yaml" else json.dumps(body.body, indent=2, sort_keys=True) + "\n"


def render_repo(root: Path, crd_dir: Path | None, envs: list[str] | None = None) -> Rendered:
    """Render every environment (or those named) of the repo at `root`; raise SpecError or RenderError."""
    clock = _Clock()
    specs = load_specs(root, envs)
    clusters = load_clusters(root)
    clock.lap("spec")
    plans: list[EnvPlan] = [plan_env(spec, clusters) for spec in specs.values()]
    clock.lap("plan")
    outputs = {plan.name: BUILDERS[plan.spec.env.target.kind](plan) for plan in plans}
    shared = aws_iam.shared_roles({plan.name: (plan.cluster, outputs[plan.name].manifests) for plan in plans})
    if shared:
        raise RenderError("\n".join(shared))
    argocd_manifests = argocd.build(plans, outputs)
    reports = {plan.name: parity.report(plan, outputs[plan.name]) for plan in plans}
    clock.lap("manifests")
    index = CrdIndex(crd_dir) if crd_dir is not None else None
    skipped: set[str] = set()
    problems = [p for env, output in outputs.items() for p in _validate_output(env, output, index, skipped)]
    problems += _validate_manifests(argocd_manifests, index, skipped)
    if problems:
        raise RenderError("rendered manifests failed validation:\n" + "\n".join(sorted(problems)))
    clock.lap("validate")
    files: dict[str, str] = {}
    for env, output in outputs.items():
        for manifest in output.manifests:
            _place(files, f"{env}/{file_name(manifest)}", dump(manifest))
        for body in output.native:
            _place(files, f"{env}/{body.path}", _native_text(body))
        _place(files, f"{env}/{parity.REPORT}", reports[env])
    for manifest in argocd_manifests:
        _place(files, f"{ARGOCD_DIR}/{file_name(manifest)}", dump(manifest))
    clock.lap("serialize")
    notes = (
        ["CRD validation skipped: no CRD directory (pass --crd-dir or set SERVING_CRD_DIR)"]
        if index is None
        else [f"no CRD for {kind} in {crd_dir}: not validated against a schema" for kind in sorted(skipped)]
    )
    summary = [line for plan in plans for line in parity.summary(plan, outputs[plan.name])]
    return Rendered(files=dict(sorted(files.items())), notes=notes, seconds_by_stage=clock.laps, parity=summary)


class _Clock:
    """Wall time per named stage, for progress output and the render benchmark."""

    def __init__(self, now: Callable[[], float] = time.perf_counter) -> None:
        self._now = now
        self._last = now()
        self.laps: dict[str, float] = {}

    def lap(self, stage: str) -> None:
        now = self._now()
        self.laps[stage] = now - self._last
        self._last = now
