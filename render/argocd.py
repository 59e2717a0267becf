"""Argo CD wiring: one Application per environment, the AppProject that fences them, and health checks."""

from __future__ import annotations

from typing import Any

from render.argocd_health import health_scripts
from render.errors import RenderError
from render.manifests import group_kind
from render.plan import EnvPlan
from render.targets.base import NATIVE_DIR, TargetOutput

ARGOCD_NAMESPACE = "argocd"
PROJECT = "serving"
RENDERED_DIR = "rendered"


def application(plan: EnvPlan, output: TargetOutput) -> dict[str, Any]:
    """The Application that syncs rendered/<env> to the environment's cluster."""
    env = plan.spec.env
    spec: dict[str, Any] = {
        "project": PROJECT,
        "source": {
            "repoURL": env.gitops.repo_url,
            "targetRevision": env.gitops.revision,
            "path": f"{RENDERED_DIR}/{env.name}",
        },
        "destination": {"name": plan.cluster.argocd_destination, "namespace": namespace_of(plan)},
        "syncPolicy": {
            "automated": {"prune": True, "selfHeal": True},
            "syncOptions": ["CreateNamespace=true", "ServerSideApply=true", "RespectIgnoreDifferences=true"],
            "retry": {"limit": 5, "backoff": {"duration": "10s", "factor": 2, "maxDuration": "3m"}},
        },
    }
    if output.native:
        # Native API bodies sit in native/ for pipelines of one's own; Argo CD must never apply them. It reads only
        # the top directory unless `recurse` is on; the exclude (a glob in which * also matches /) keeps that so.
        spec["source"]["directory"] = {"recurse": False, "exclude": f"{NATIVE_DIR}/*"}
    if output.ignore_differences:
        # Fields a controller owns at run time (an autoscaler's counts); Argo CD would otherwise undo it.
        spec["ignoreDifferences"] = [_scalar_paths_only(entry) for entry in output.ignore_differences]
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": {
            "name": f"serving-{env.name}",
            "namespace": ARGOCD_NAMESPACE,
            "labels": {"app.kubernetes.io/part-of": PROJECT, "serving.toolkit/env": env.name},
            "finalizers": ["resources-finalizer.argocd.argoproj.io"],
        },
        "spec": spec,
    }


def _scalar_paths_only(entry: dict[str, Any]) -> dict[str, Any]:
    """An ignoreDifferences entry, refused when a path goes through a list.

    With RespectIgnoreDifferences, Argo CD copies the ignored fields' live values into what it applies by a merge
    patch (argoproj/argo-cd controller/sync.go, normalizeTargetResources); for a kind without a built-in schema (every
    CRD) that is a JSON merge patch, which replaces a list whole: ignoring `workerGroupSpecs[].replicas` kept the
    *whole live* workerGroupSpecs, so a new image reached the head and never the workers.
    """
    paths = [*entry.get("jsonPointers", []), *entry.get("jqPathExpressions", [])]
    through_list = [p for p in paths if "[" in p or any(part.isdigit() for part in p.split("/"))]
    if through_list:
        raise RenderError(
            f"ignoreDifferences on {entry.get('kind')}: {', '.join(through_list)} goes through a list; Argo CD would"
            " keep the whole live list on sync. Hint: ignore a field outside lists, or let its controller own it"
        )
    return entry


def namespace_of(plan: EnvPlan) -> str:
    """The namespace the environment's objects are applied to."""
    return str(plan.spec.env.target.namespace)


def app_project(plans: list[EnvPlan], kinds: list[tuple[str, str]]) -> dict[str, Any]:
    """The AppProject: only these repos, these destinations and these kinds may be synced."""
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "AppProject",
        "metadata": {"name": PROJECT, "namespace": ARGOCD_NAMESPACE},
        "spec": {
            "description": "Ray Serve model serving, rendered by the serving toolkit.",
            "sourceRepos": sorted({p.spec.env.gitops.repo_url for p in plans}),
            "destinations": sorted(
                ({"name": p.cluster.argocd_destination, "namespace": namespace_of(p)} for p in plans),
                key=lambda d: (d["name"], d["namespace"]),
            ),
            "clusterResourceWhitelist": [{"group": "", "kind": "Namespace"}],
            "namespaceResourceWhitelist": [{"group": group, "kind": kind} for group, kind in sorted(set(kinds))],
        },
    }


def health_config_map() -> dict[str, Any]:
    """argocd-cm keys adding Lua health checks for kinds Argo CD ships none for (merged by server-side apply)."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "argocd-cm",
            "namespace": ARGOCD_NAMESPACE,
            "labels": {"app.kubernetes.io/name": "argocd-cm", "app.kubernetes.io/part-of": "argocd"},
        },
        "data": health_scripts(),
    }


def build(plans: list[EnvPlan], outputs: dict[str, TargetOutput]) -> list[dict[str, Any]]:
    """Every Argo CD object: Applications, the AppProject and the health customizations."""
    all_kinds = sorted({group_kind(m) for output in outputs.values() for m in output.manifests})
    return [
        app_project(plans, all_kinds),
        health_config_map(),
        *(application(p, outputs[p.name]) for p in plans),
    ]
