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
            # The root app never prunes or deletes an environment's Application: removing it from git, or deleting
            # the root, must not cascade (this finalizer) into the environment's workloads and IAM roles.
            "annotations": {SYNC_OPTIONS: NEVER_REMOVE},
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
        "metadata": {"name": PROJECT, "namespace": ARGOCD_NAMESPACE, "annotations": {SYNC_OPTIONS: NEVER_REMOVE}},
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


# Sync options Argo CD reads from a resource's annotation (argoproj/argo-cd docs/user-guide/sync-options.md):
# Prune=false keeps it when it leaves git, Delete=false keeps it when its Application is deleted.
SYNC_OPTIONS = "argocd.argoproj.io/sync-options"
NEVER_REMOVE = "Prune=false,Delete=false"


def health_config_map() -> dict[str, Any]:
    """A partial argocd-cm holding only the Lua health check keys, never Argo CD's whole ConfigMap.

    Server-side apply patches just these keys into the existing argocd-cm ("ServerSideApply can also be used to patch
    existing resources by providing a partial yaml", docs/user-guide/sync-options.md); Prune=false and Delete=false
    keep the app of apps from ever deleting argocd-cm itself, which would take Argo CD's own settings with it.
    """
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "argocd-cm",
            "namespace": ARGOCD_NAMESPACE,
            "annotations": {SYNC_OPTIONS: f"ServerSideApply=true,{NEVER_REMOVE}"},
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
