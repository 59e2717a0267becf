"""Rendered trees compared per environment: each added, removed or changed object with its impact and a
unified diff, and the cost delta of the change, as a Markdown report for a pull request comment.

    report = compare(old_files, new_files, book)        # path relative to rendered/ → YAML text, both sides
    print(diff_markdown(snapshot, report))

The old side comes from `render.review.snapshot` (a git ref), the new side from rendering the working tree. Both sides
are priced in the region of the environment's cluster in the working tree.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any

from render.errors import SpecError
from render.review.cost import PriceBook, Pricing, env_cost, signed_usd, templates, usd
from render.review.impact import NOT_DEPLOYED, Impact, classify
from render.review.resources import applied_manifests, is_applied, load_manifest
from render.review.snapshot import Snapshot
from render.spec.models import ARGOCD_DIR


@dataclass(frozen=True)
class ObjectChange:
    """One rendered file that was added, removed or changed, and what that does."""

    path: str
    change: str
    impact: Impact
    diff: str


@dataclass(frozen=True)
class CostDelta:
    """Monthly cost of an environment before and after, at min and at max scale (or why it is unknown)."""

    old_min: float = 0.0
    old_max: float = 0.0
    new_min: float = 0.0
    new_max: float = 0.0
    error: str = ""


@dataclass(frozen=True)
class EnvDiff:
    """The changes of one directory of rendered/ (an environment, or argocd)."""

    env: str
    changes: tuple[ObjectChange, ...]
    unchanged: int
    cost: CostDelta | None


def _parsed(text: str | None) -> dict[str, Any] | None:
    return load_manifest(text) if text is not None else None


def _unified(path: str, old: str | None, new: str | None) -> str:
    lines = difflib.unified_diff(
        (old or "").splitlines(),
        (new or "").splitlines(),
        f"a/rendered/{path}" if old is not None else "/dev/null",
        f"b/rendered/{path}" if new is not None else "/dev/null",
        lineterm="",
    )
    return "\n".join(lines)


def _pricing(book: PriceBook | None, env: str) -> Pricing | str:
    """The prices of `env`'s region, or why there are none."""
    if book is None:
        return "no clusters/prices.yaml: cost not estimated"
    try:
        return book.pricing(env)
    except SpecError as error:
        return str(error)


def _cost_delta(env: str, old: dict[str, str], new: dict[str, str], pricing: Pricing | str) -> CostDelta:
    if isinstance(pricing, str):
        return CostDelta(error=pricing)
    try:
        before, after = (
            env_cost(env, applied_manifests(old, env), pricing),
            env_cost(env, applied_manifests(new, env), pricing),
        )
    except SpecError as error:
        return CostDelta(error=str(error))
    return CostDelta(before.usd_min, before.usd_max, after.usd_min, after.usd_max)


def compare(old: dict[str, str], new: dict[str, str], book: PriceBook | None) -> list[EnvDiff]:
    """Per directory of rendered/ (environments first, argocd last): what changed between two rendered trees,
    priced from `book` when given."""
    directories = sorted({p.split("/")[0] for p in (*old, *new)}, key=lambda d: (d == ARGOCD_DIR, d))
    report = []
    for directory in directories:
        paths = sorted(p for p in set(old) | set(new) if p.split("/")[0] == directory)
        pricing = _pricing(book, directory)
        priced = pricing if isinstance(pricing, Pricing) else None
        changes = []
        for path in paths:
            before, after = old.get(path), new.get(path)
            if before == after:
                continue
            change = "added" if before is None else "removed" if after is None else "changed"
            impact = classify(_parsed(before), _parsed(after), priced) if is_applied(path) else Impact(NOT_DEPLOYED)
            changes.append(ObjectChange(path, change, impact, _unified(path, before, after)))
        cost = None if directory == ARGOCD_DIR or not changes else _cost_delta(directory, old, new, pricing)
        report.append(EnvDiff(directory, tuple(changes), len(paths) - len(changes), cost))
    return report


def _cost_view(cost: CostDelta | None) -> dict[str, str] | None:
    if cost is None:
        return None
    if cost.error:
        return {"error": cost.error}
    return {
        "error": "",
        "min": f"{usd(cost.old_min)} → {usd(cost.new_min)} ({signed_usd(cost.new_min - cost.old_min)})",
        "max": f"{usd(cost.old_max)} → {usd(cost.new_max)} ({signed_usd(cost.new_max - cost.old_max)})",
    }


def diff_view(snap: Snapshot, report: list[EnvDiff]) -> dict[str, Any]:
    """The values diff.md.j2 shows."""
    changed = [e for e in report if e.changes]
    labels = {c.impact.label.name: c.impact.label.meaning for e in changed for c in e.changes}
    return {
        "ref": snap.ref,
        "commit": snap.commit[:12],
        "source": snap.source,
        "envs": [
            {
                "name": e.env,
                "summary": f"{len(e.changes)} object(s) changed, {e.unchanged} unchanged",
                "cost": _cost_view(e.cost),
                "objects": [
                    {
                        "path": c.path,
                        "change": c.change,
                        "label": c.impact.label.name,
                        "details": list(c.impact.details),
                        "diff": c.diff,
                    }
                    for c in e.changes
                ],
            }
            for e in changed
        ],
        "unchanged": [e.env for e in report if not e.changes],
        "legend": sorted(labels.items()),
    }


def diff_markdown(snap: Snapshot, report: list[EnvDiff]) -> str:
    """The Markdown report of `python -m render diff`."""
    return templates().get_template("diff.md.j2").render(**diff_view(snap, report))
