"""spec → plan → manifests → validated files, with no I/O beyond reading the spec and the CRDs."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from render import argocd
from render.errors import RenderError
from render.manifests import dump, file_name, group_kind
from render.plan import EnvPlan, plan_env
from render.spec.load import load_clusters, load_specs
from render.targets import BUILDERS
from render.validate.crd import CrdIndex, validate
from render.validate.serve import serve_config_problems

ARGOCD_DIR = "argocd"


@dataclass
class Rendered:
    """What a render produced: file texts by path relative to rendered/, and what it could not check."""

    files: dict[str, str]
    notes: list[str] = field(default_factory=list)
    seconds_by_stage: dict[str, float] = field(default_factory=dict)


def _validate(manifests: list[dict[str, Any]], index: CrdIndex | None, skipped: set[str]) -> list[str]:
    problems: list[str] = []
    for manifest in manifests:
        where = f"{manifest['kind']}/{manifest['metadata']['name']}"
        if manifest["kind"] == "RayService":
            problems += [
                f"{where}: spec.serveConfigV2: {p}" for p in serve_config_problems(manifest["spec"]["serveConfigV2"])
            ]
        if index is None:
            continue
        if index.has(manifest["apiVersion"], manifest["kind"]):
            problems += validate(manifest, index)
        else:
            skipped.add(f"{manifest['apiVersion']} {manifest['kind']}")
    return problems


def _place(files: dict[str, str], directory: str, manifests: list[dict[str, Any]]) -> None:
    for manifest in manifests:
        path = f"{directory}/{file_name(manifest)}"
        if path in files:
            raise RenderError(f"two manifests would both be written to rendered/{path}")
        files[path] = dump(manifest)


def render_repo(root: Path, crd_dir: Path | None, envs: list[str] | None = None) -> Rendered:
    """Render every environment (or those named) of the repo at `root`; raise SpecError or RenderError."""
    clock = _Clock()
    specs = load_specs(root, envs)
    clusters = load_clusters(root)
    clock.lap("spec")
    plans: list[EnvPlan] = [plan_env(spec, clusters) for spec in specs.values()]
    clock.lap("plan")
    manifests_by_env = {plan.name: BUILDERS[plan.spec.env.target.kind](plan) for plan in plans}
    kinds_by_env = {env: sorted({group_kind(m) for m in ms}) for env, ms in manifests_by_env.items()}
    argocd_manifests = argocd.build(plans, kinds_by_env)
    clock.lap("manifests")
    index = CrdIndex(crd_dir) if crd_dir is not None else None
    skipped: set[str] = set()
    problems = [p for ms in [*manifests_by_env.values(), argocd_manifests] for p in _validate(ms, index, skipped)]
    if problems:
        raise RenderError("rendered manifests failed validation:\n" + "\n".join(sorted(problems)))
    clock.lap("validate")
    files: dict[str, str] = {}
    for env, manifests in manifests_by_env.items():
        _place(files, env, manifests)
    _place(files, ARGOCD_DIR, argocd_manifests)
    clock.lap("serialize")
    notes = (
        ["CRD validation skipped: no CRD directory (pass --crd-dir or set SERVING_CRD_DIR)"]
        if index is None
        else [f"no CRD for {kind} in {crd_dir}: not validated against a schema" for kind in sorted(skipped)]
    )
    return Rendered(files=dict(sorted(files.items())), notes=notes, seconds_by_stage=clock.laps)


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
