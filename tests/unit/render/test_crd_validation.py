"""Validation against CRDs: the schema conversion on small inline schemas, then the real upstream CRDs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from render.validate import crd
from render.validate.crd import (
    CRD_DIR_ENV,
    CrdError,
    CrdIndex,
    UnknownKind,
    crd_dir_from_env,
    to_json_schema,
    validate,
)

WIDGET_CRD = """\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  names: {kind: Widget, plural: widgets}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          apiVersion: {type: string}
          kind: {type: string}
          metadata: {type: object}
          spec:
            type: object
            required: [size]
            properties:
              size: {type: integer, format: int32}
              port: {x-kubernetes-int-or-string: true, anyOf: [{type: integer}, {type: string}]}
              note: {type: string, nullable: true}
              mode: {type: string, enum: [fast, slow]}
              values: {type: object, x-kubernetes-preserve-unknown-fields: true}
              selector: {type: object}
              env: {type: object, additionalProperties: {type: string}}
              ports:
                type: array
                x-kubernetes-list-type: map
                x-kubernetes-list-map-keys: [name]
                items:
                  type: object
                  properties:
                    name: {type: string}
                    number: {type: integer}
  - name: v0
    served: false
    storage: false
    schema:
      openAPIV3Schema: {type: object}
"""


@pytest.fixture
def widget_index(tmp_path: Path) -> CrdIndex:
    (tmp_path / "nested").mkdir()
    config_map = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: not-a-crd}\n"
    (tmp_path / "nested" / "bundle.yaml").write_text(f"---\n{config_map}---\n{WIDGET_CRD}")
    return CrdIndex(tmp_path)


def minimal_widget(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "metadata": {"name": "w1", "namespace": "ml-serving"},
        "spec": {"size": 3, **spec},
    }


def test_minimal_widget_is_valid(widget_index: CrdIndex) -> None:
    assert validate(minimal_widget(), widget_index) == []


def test_unknown_field_is_named_with_a_hint(widget_index: CrdIndex) -> None:
    assert validate(minimal_widget(sise=4), widget_index) == [
        "Widget/w1: spec.sise: unknown field. Hint: did you mean 'size'?"
    ]


def test_every_error_is_reported_sorted(widget_index: CrdIndex) -> None:
    widget = minimal_widget(mode="medium", size="3")
    widget["spec"]["ports"] = [{"name": "http", "numbr": 80}]
    assert validate(widget, widget_index) == [
        "Widget/w1: spec.mode: got 'medium'; expected one of 'fast', 'slow'",
        "Widget/w1: spec.ports[0].numbr: unknown field. Hint: did you mean 'number'?",
        "Widget/w1: spec.size: got '3'; expected integer",
    ]


def test_missing_required_field_is_named(widget_index: CrdIndex) -> None:
    widget = minimal_widget()
    del widget["spec"]["size"]
    assert validate(widget, widget_index) == ["Widget/w1: spec.size: required field is missing"]


@pytest.mark.parametrize("port", [8080, "http"])
def test_int_or_string_accepts_both(widget_index: CrdIndex, port: int | str) -> None:
    assert validate(minimal_widget(port=port), widget_index) == []


def test_int_or_string_rejects_other_types(widget_index: CrdIndex) -> None:
    assert validate(minimal_widget(port=True), widget_index) == [
        "Widget/w1: spec.port: got True; expected integer or string"
    ]


def test_nullable_admits_null_only_where_declared(widget_index: CrdIndex) -> None:
    assert validate(minimal_widget(note=None), widget_index) == []
    assert validate(minimal_widget(port=None), widget_index) == [
        "Widget/w1: spec.port: got None; expected integer or string"
    ]


def test_preserve_unknown_fields_stays_open(widget_index: CrdIndex) -> None:
    assert validate(minimal_widget(values={"any": {"thing": [1, "two"]}}), widget_index) == []


def test_bare_object_stays_open(widget_index: CrdIndex) -> None:
    assert validate(minimal_widget(selector={"app": "iris"}), widget_index) == []


def test_additional_properties_schema_is_kept(widget_index: CrdIndex) -> None:
    assert validate(minimal_widget(env={"A": "1", "B": 2}), widget_index) == [
        "Widget/w1: spec.env.B: got 2; expected string"
    ]


def test_int32_overflow_is_rejected(widget_index: CrdIndex) -> None:
    assert validate(minimal_widget(size=2**31), widget_index) == [
        "Widget/w1: spec.size: got 2147483648; not a valid int32"
    ]


def test_list_map_rejects_duplicate_keys(widget_index: CrdIndex) -> None:
    widget = minimal_widget(ports=[{"name": "http", "number": 80}, {"name": "http", "number": 81}])
    assert validate(widget, widget_index) == ["Widget/w1: spec.ports[1]: duplicate entry: same name as item [0]"]


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("name", "Zero_Shot", "metadata.name: got 'Zero_Shot'; must be a DNS-1123 subdomain"),
        ("name", "a" * 254, "metadata.name: got 'aaaa"),
        ("namespace", "ml.serving", "metadata.namespace: got 'ml.serving'; must be a DNS-1123 label"),
        ("labels", {"app": 1}, "metadata.labels.app: got 1; expected string"),
        ("labels", {"app": "a b"}, "metadata.labels.app: got 'a b'; must be empty or at most 63"),
        ("labels", {"-bad": "x"}, 'metadata.labels["-bad"]: invalid key; must be an optional DNS-1123'),
        ("annotations", {"note": ["x"]}, "metadata.annotations.note: got ['x']; expected string"),
        ("label", {}, "metadata.label: unknown field. Hint: did you mean 'labels'?"),
    ],
)
def test_metadata_is_validated(widget_index: CrdIndex, field: str, value: object, error: str) -> None:
    widget = minimal_widget()
    widget["metadata"][field] = value
    [message] = validate(widget, widget_index)
    assert message.startswith(f"Widget/{widget['metadata']['name']}: {error}")


def test_unserved_version_is_unknown(widget_index: CrdIndex) -> None:
    assert widget_index.has("example.com/v1", "Widget")
    assert not widget_index.has("example.com/v0", "Widget")


def test_unknown_kind_is_reported_as_not_validated(widget_index: CrdIndex, tmp_path: Path) -> None:
    pod_monitor = {"apiVersion": "monitoring.coreos.com/v1", "kind": "PodMonitor", "metadata": {"name": "ray"}}
    assert not widget_index.has("monitoring.coreos.com/v1", "PodMonitor")
    with pytest.raises(UnknownKind) as raised:
        validate(pod_monitor, widget_index)
    assert str(raised.value) == f"no CRD for monitoring.coreos.com/v1 PodMonitor in {tmp_path}: not validated"


def test_missing_crd_dir_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(CrdError, match="not a directory of CRDs"):
        CrdIndex(tmp_path / "absent")


def test_structural_schema_conversion_closes_objects() -> None:
    schema = to_json_schema({"type": "object", "properties": {"a": {"type": "string", "description": "A."}}})
    assert schema == {"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": False}


def test_crd_dir_flag_wins_over_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CRD_DIR_ENV, "/from/env")
    assert crd_dir_from_env("/from/flag") == Path("/from/flag")


def test_crd_dir_env_wins_over_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CRD_DIR_ENV, "/from/env")
    assert crd_dir_from_env(None) == Path("/from/env")


def test_crd_dir_defaults_to_shared_crds_beside_the_repo(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(CRD_DIR_ENV, raising=False)
    monkeypatch.setattr(crd, "_REPO_ROOT", tmp_path / "main")
    (tmp_path / "shared" / "crds").mkdir(parents=True)
    assert crd_dir_from_env(None) == tmp_path / "shared" / "crds"


def test_crd_dir_is_none_without_flag_env_or_shared_crds(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(CRD_DIR_ENV, raising=False)
    monkeypatch.setattr(crd, "_REPO_ROOT", tmp_path / "main")
    assert crd_dir_from_env(None) is None


# The upstream CRDs (KubeRay v1.7, Argo CD v3.5, ACK ECS v1.2) from ../shared/crds or $SERVING_CRD_DIR.


@pytest.fixture(scope="module")
def index() -> CrdIndex:
    crd_dir = crd_dir_from_env(None)
    if crd_dir is None:
        pytest.skip("../shared/crds not found: CRD validation not exercised")
    return CrdIndex(crd_dir)


def minimal_rayservice() -> dict[str, Any]:
    def group(name: str) -> dict[str, Any]:
        container = {
            "name": name,
            "image": "rayproject/ray:2.60.0",
            "resources": {"limits": {"cpu": 2, "memory": "8Gi"}, "requests": {"cpu": "1500m"}},
        }
        return {"rayStartParams": {}, "template": {"spec": {"containers": [container]}}}

    worker = {"groupName": "cpu", "replicas": 1, "minReplicas": 1, "maxReplicas": 4, **group("ray-worker")}
    return {
        "apiVersion": "ray.io/v1",
        "kind": "RayService",
        "metadata": {
            "name": "zero-shot-prod",
            "namespace": "ml-serving",
            "labels": {"app.kubernetes.io/name": "zero-shot"},
        },
        "spec": {
            "serveConfigV2": "applications: []\n",
            "rayClusterConfig": {
                "rayVersion": "2.60.0",
                "enableInTreeAutoscaling": True,
                "headGroupSpec": group("ray-head"),
                "workerGroupSpecs": [worker],
            },
        },
    }


def head_container(rayservice: dict[str, Any]) -> dict[str, Any]:
    container: dict[str, Any] = rayservice["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]["spec"][
        "containers"
    ][0]
    return container


def minimal_application() -> dict[str, Any]:
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": {
            "name": "serving-prod",
            "namespace": "argocd",
            "finalizers": ["resources-finalizer.argocd.argoproj.io"],
        },
        "spec": {
            "project": "serving",
            "source": {
                "repoURL": "https://github.com/acme/serving.git",
                "targetRevision": "main",
                "path": "rendered/prod",
            },
            "destination": {"name": "eks-prod-eu", "namespace": "ml-serving"},
            "syncPolicy": {"automated": {"prune": True, "selfHeal": True}, "syncOptions": ["ServerSideApply=true"]},
        },
    }


def minimal_appproject() -> dict[str, Any]:
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "AppProject",
        "metadata": {"name": "serving", "namespace": "argocd"},
        "spec": {
            "sourceRepos": ["https://github.com/acme/serving.git"],
            "destinations": [{"name": "eks-prod-eu", "namespace": "ml-serving"}],
            "namespaceResourceWhitelist": [{"group": "ray.io", "kind": "RayService"}],
        },
    }


def minimal_task_definition() -> dict[str, Any]:
    return {
        "apiVersion": "ecs.services.k8s.aws/v1alpha1",
        "kind": "TaskDefinition",
        "metadata": {"name": "zero-shot", "namespace": "ml-serving"},
        "spec": {
            "family": "zero-shot",
            "executionRoleARN": "arn:aws:iam::123456789012:role/ecs-task-execution",
            "networkMode": "awsvpc",
            "requiresCompatibilities": ["FARGATE"],
            "cpu": "1024",
            "memory": "4096",
            "containerDefinitions": [
                {
                    "name": "ray",
                    "image": "rayproject/ray:2.60.0",
                    "essential": True,
                    "portMappings": [{"containerPort": 8000}],
                }
            ],
        },
    }


def test_minimal_rayservice_is_valid(index: CrdIndex) -> None:
    assert validate(minimal_rayservice(), index) == []


def test_misspelt_container_field_is_rejected_with_its_path(index: CrdIndex) -> None:
    rayservice = minimal_rayservice()
    head_container(rayservice)["imagePullPolcy"] = "Always"
    assert validate(rayservice, index) == [
        "RayService/zero-shot-prod: spec.rayClusterConfig.headGroupSpec.template.spec.containers[0].imagePullPolcy:"
        " unknown field. Hint: did you mean 'imagePullPolicy'?"
    ]


def test_wrong_type_is_rejected(index: CrdIndex) -> None:
    rayservice = minimal_rayservice()
    rayservice["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]["maxReplicas"] = "4"
    assert validate(rayservice, index) == [
        "RayService/zero-shot-prod: spec.rayClusterConfig.workerGroupSpecs[0].maxReplicas: got '4'; expected integer"
    ]


@pytest.mark.parametrize("cpu", [2, "2", "1500m"])
def test_quantity_is_int_or_string(index: CrdIndex, cpu: int | str) -> None:
    rayservice = minimal_rayservice()
    head_container(rayservice)["resources"]["limits"]["cpu"] = cpu
    assert validate(rayservice, index) == []


def test_quantity_string_must_parse(index: CrdIndex) -> None:
    rayservice = minimal_rayservice()
    head_container(rayservice)["resources"]["limits"]["cpu"] = "two"
    [error] = validate(rayservice, index)
    assert error.startswith(
        "RayService/zero-shot-prod: spec.rayClusterConfig.headGroupSpec.template.spec.containers[0]"
        ".resources.limits.cpu: got 'two'; does not match"
    )


def test_argocd_application_is_valid(index: CrdIndex) -> None:
    assert validate(minimal_application(), index) == []


def test_argocd_helm_values_object_preserves_unknown_fields(index: CrdIndex) -> None:
    application = minimal_application()
    application["spec"]["source"]["helm"] = {"valuesObject": {"anything": {"nested": [1, {"goes": True}]}}}
    assert validate(application, index) == []


def test_argocd_helm_is_still_closed_around_values_object(index: CrdIndex) -> None:
    application = minimal_application()
    application["spec"]["source"]["helm"] = {"valueObject": {}}
    assert validate(application, index) == [
        "Application/serving-prod: spec.source.helm.valueObject: unknown field. Hint: did you mean 'valuesObject'?"
    ]


def test_argocd_appproject_is_valid(index: CrdIndex) -> None:
    assert validate(minimal_appproject(), index) == []


def test_ack_task_definition_is_valid(index: CrdIndex) -> None:
    assert validate(minimal_task_definition(), index) == []


def test_ack_task_definition_rejects_the_aws_api_spelling(index: CrdIndex) -> None:
    task_definition = minimal_task_definition()
    task_definition["spec"]["executionRoleArn"] = task_definition["spec"].pop("executionRoleARN")
    assert validate(task_definition, index) == [
        "TaskDefinition/zero-shot: spec.executionRoleArn: unknown field. Hint: did you mean 'executionRoleARN'?"
    ]


def test_kind_without_crd_is_unknown(index: CrdIndex) -> None:
    # Core kinds never have a CRD, and no controller defines example.com's Gadget: absent whatever the directory holds.
    assert not index.has("v1", "ServiceAccount")
    assert not index.has("example.com/v1", "Gadget")
    with pytest.raises(UnknownKind, match=r"^no CRD for example\.com/v1 Gadget in .+: not validated$"):
        validate({"apiVersion": "example.com/v1", "kind": "Gadget", "metadata": {"name": "g"}}, index)
