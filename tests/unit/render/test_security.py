"""Nothing exposed, nothing secret: checks on everything render emits for the real deployments/ and the fixture."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, get_args

import pytest
import yaml
from pydantic import BaseModel

from render.pipeline import render_repo
from render.plan import HAPROXY_THREADS_ENV, MAX_REQUEST_BODY_BYTES_ENV, PRELOAD_MODULES_ENV, THROUGHPUT_OPTIMIZED_ENV
from render.spec.models import SecretRef, Spec
from tests.golden_tree import FIXTURE_REPO

ROOT = Path(__file__).parents[3]

SECRET_LOOKING = {
    "AWS access key id": re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b"),
    "private key": re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    "URL with a password": re.compile(r"\b[a-z][a-z0-9+.-]*://[^/\s:@]+:[^/\s@]+@"),
    "password assignment": re.compile(r"(?i)\b(password|passwd|secret_key|api_key)\s*[:=]\s*['\"]?[^\s'\"{}]{4,}"),
    "bearer token": re.compile(r"(?i)\bbearer\s+[a-z0-9._-]{16,}"),
}
SECRET_FIELD = re.compile(r"(?i)(password|passwd|token|secret|api_key|credential)")


@pytest.fixture(scope="module", params=["deployments", "fixture"])
def rendered(request: pytest.FixtureRequest) -> dict[str, Any]:
    root = ROOT if request.param == "deployments" else FIXTURE_REPO
    files = render_repo(root, None).files
    # native/ holds cloud API bodies for pipelines of one's own: Argo CD never applies them (its scans are text-only).
    manifests = {p: t for p, t in files.items() if p.endswith(".yaml") and "/native/" not in p}
    return {path: yaml.safe_load(text) for path, text in manifests.items()} | {
        f"{path}#text": text for path, text in files.items()
    }


def _manifests(rendered: dict[str, Any]) -> list[dict[str, Any]]:
    return [m for path, m in rendered.items() if not path.endswith("#text")]


def test_no_secret_looking_value_is_rendered(rendered: dict[str, Any]) -> None:
    found = [
        f"{path.removesuffix('#text')}: {what}"
        for path, text in rendered.items()
        if path.endswith("#text")
        for what, pattern in SECRET_LOOKING.items()
        if pattern.search(text)
    ]
    assert found == []


def test_the_scan_catches_a_planted_secret() -> None:
    planted = "env:\n- name: DB\n  value: mysql://serving:hunter2@db:3306/x\n"
    assert SECRET_LOOKING["URL with a password"].search(planted)
    assert SECRET_LOOKING["AWS access key id"].search("key: AKIAIOSFODNN7EXAMPLE")


def _fields(model: type[BaseModel], prefix: str, seen: set[type]) -> list[tuple[str, Any]]:
    seen.add(model)
    found = []
    for name, field in model.model_fields.items():
        found.append((f"{prefix}{name}", field.annotation))
        stack = [field.annotation]
        while stack:
            annotation = stack.pop()
            stack.extend(get_args(annotation))
            # A SecretRef's own fields name where a secret lives: they are the reference, not a value.
            nested = isinstance(annotation, type) and issubclass(annotation, BaseModel) and annotation is not SecretRef
            if nested and annotation not in seen:
                found += _fields(annotation, f"{prefix}{name}.", seen)
    return found


def test_spec_has_no_field_that_would_carry_a_secret_value() -> None:
    suspicious = [
        path
        for path, annotation in _fields(Spec, "", set())
        if SECRET_FIELD.search(path.rsplit(".", 1)[-1]) and SecretRef not in _all_args(annotation)
    ]
    # `secrets` maps variable names to SecretRef; `secret_store` names a ClusterSecretStore, not a secret.
    assert suspicious == ["env.target.secret_store"]


def _all_args(annotation: Any) -> list[Any]:
    return [annotation, *(a for arg in get_args(annotation) for a in _all_args(arg))]


def test_secret_variables_reach_pods_only_as_references(rendered: dict[str, Any]) -> None:
    for manifest in _manifests(rendered):
        if manifest["kind"] != "RayService":
            continue
        cluster = manifest["spec"]["rayClusterConfig"]
        groups = [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]
        for group in groups:
            for container in group["template"]["spec"]["containers"]:
                for variable in container.get("env", []):
                    if "value" in variable:  # only the body limit and Ray's own settings are plain
                        plain = {
                            MAX_REQUEST_BODY_BYTES_ENV,
                            PRELOAD_MODULES_ENV,
                            HAPROXY_THREADS_ENV,
                            *THROUGHPUT_OPTIMIZED_ENV,
                        }
                        assert variable["name"] in plain, variable
                    else:
                        assert set(variable["valueFrom"]) == {"secretKeyRef"}, variable


def test_dashboard_and_gcs_are_never_exposed(rendered: dict[str, Any]) -> None:
    for manifest in _manifests(rendered):
        assert manifest["kind"] not in ("Ingress", "Gateway", "HTTPRoute", "Route")
        if manifest["kind"] == "Service":
            assert manifest["spec"].get("type", "ClusterIP") == "ClusterIP"
        if manifest["kind"] == "RayService":
            head = manifest["spec"]["rayClusterConfig"]["headGroupSpec"]
            assert head["serviceType"] == "ClusterIP"
            assert not head.get("enableIngress", False)
            assert manifest["spec"].get("serveService", {}).get("spec", {}).get("type", "ClusterIP") == "ClusterIP"


def test_ray_token_auth_stays_on(rendered: dict[str, Any]) -> None:
    services = [m for m in _manifests(rendered) if m["kind"] == "RayService"]
    assert services
    assert all(m["spec"]["rayClusterConfig"]["authOptions"] == {"mode": "token"} for m in services)


def test_applications_stay_inside_their_project(rendered: dict[str, Any]) -> None:
    manifests = _manifests(rendered)
    project = next(m for m in manifests if m["kind"] == "AppProject")
    allowed = {(d["name"], d["namespace"]) for d in project["spec"]["destinations"]}
    kinds = {(k["group"], k["kind"]) for k in project["spec"]["namespaceResourceWhitelist"]}
    for app in (m for m in manifests if m["kind"] == "Application"):
        assert app["spec"]["project"] == project["metadata"]["name"]
        destination = app["spec"]["destination"]
        assert (destination["name"], destination["namespace"]) in allowed
    for path, manifest in rendered.items():
        if path.endswith("#text") or path.startswith("argocd/"):
            continue
        group = manifest["apiVersion"].split("/")[0] if "/" in manifest["apiVersion"] else ""
        assert (group, manifest["kind"]) in kinds, path
    assert project["spec"]["clusterResourceWhitelist"] == [{"group": "", "kind": "Namespace"}]
