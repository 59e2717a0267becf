"""Argo CD wiring: one Application per environment, the AppProject that fences them, and health checks."""

from __future__ import annotations

from typing import Any

from render.argocd_health import health_scripts
from render.plan import EnvPlan

ARGOCD_NAMESPACE = "argocd"
PROJECT = "serving"
RENDERED_DIR = "rendered"


def application(plan: EnvPlan, kinds: list[tuple[str, str]]) -> dict[str, Any]:
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
    if plan.autoscaling and ("ray.io", "RayService") in kinds:
        # The Ray autoscaler owns the worker counts; without this Argo CD and the autoscaler undo each other.
        spec["ignoreDifferences"] = [
            {
                "group": "ray.io",
                "kind": "RayService",
                "jqPathExpressions": [".spec.rayClusterConfig.workerGroupSpecs[].replicas"],
            }
        ]
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


def build(plans: list[EnvPlan], kinds_by_env: dict[str, list[tuple[str, str]]]) -> list[dict[str, Any]]:
    """Every Argo CD object: Applications, the AppProject and the health customizations."""
    all_kinds = [k for kinds in kinds_by_env.values() for k in kinds]
    return [
        app_project(plans, all_kinds),
        health_config_map(),
        *(application(p, kinds_by_env[p.name]) for p in plans),
    ]
