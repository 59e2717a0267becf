"""Validate manifests against the CustomResourceDefinitions of the controllers that consume them.

A CRD schema is a Kubernetes *structural* OpenAPI v3 schema. The API server prunes the fields it does not
know instead of rejecting them, so a misspelt field in a RayService vanishes silently in the cluster. Here
every object schema that lists its fields is closed, so the same typo fails at render time, naming the field.

    index = CrdIndex(crd_dir)
    if index.has(obj["apiVersion"], obj["kind"]):
        errors = validate(obj, index)

Building the index reads only `spec.group` and `spec.names.kind` of each CRD; a CRD's schema is parsed and
compiled the first time an object of its kind is validated, so the megabytes of CRDs a run does not use
cost next to nothing.

Not checked: the CEL rules of `x-kubernetes-validations` (no CEL evaluator here), and what controllers
enforce only at reconcile time (KubeRay's validation.go, for instance).
"""

from __future__ import annotations

import difflib
import json
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator, FormatChecker, ValidationError
from jsonschema.protocols import Validator
from jsonschema.validators import extend
from yaml.events import (
    AliasEvent,
    DocumentEndEvent,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
)

from render.errors import ServingError

CRD_DIR_ENV = "SERVING_CRD_DIR"

_REPO_ROOT = Path(__file__).resolve().parents[2]
# libyaml's loader reads the 1 MB KubeRay CRD in 0.25 s, the pure-Python one in 1.2 s.
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_DOCUMENT_START = re.compile(r"^---(?=[ \t]|$)", re.MULTILINE)
_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_LIST_MAP_KEYS = "x-kubernetes-list-map-keys"
# Keywords of a structural schema that mean the same in JSON Schema and are copied as they are.
_COPIED = (
    "enum",
    "format",
    "maxItems",
    "maxLength",
    "maxProperties",
    "maximum",
    "minItems",
    "minLength",
    "minProperties",
    "minimum",
    "multipleOf",
    "pattern",
    "required",
    "uniqueItems",
)

_DNS1123_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_SUBDOMAIN = rf"{_DNS1123_LABEL}(\.{_DNS1123_LABEL})*"
_QUALIFIED_NAME = r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
_LABEL_KEY_RULE = {
    "pattern": rf"^((?=[^/]{{1,253}}/){_DNS1123_SUBDOMAIN}/)?{_QUALIFIED_NAME}$",
    "x-rule": "must be an optional DNS-1123 subdomain prefix and '/', then a name of at most 63 letters, "
    "digits, '-', '_' or '.', starting and ending with a letter or digit",
}
# ObjectMeta as a manifest author writes it. A CRD may not constrain metadata beyond name, so controller-gen
# emits a bare `type: object`; the fields the API server sets (uid, resourceVersion, ...) have no place in
# a rendered manifest, so they are unknown fields here.
_OBJECT_META: dict[str, Any] = {
    "type": "object",
    "required": ["name"],
    "additionalProperties": False,
    "properties": {
        "name": {
            "type": "string",
            "maxLength": 253,
            "pattern": f"^{_DNS1123_SUBDOMAIN}$",
            "x-rule": "must be a DNS-1123 subdomain: at most 253 lowercase letters, digits, '-' and '.', "
            "starting and ending with a letter or digit",
        },
        "generateName": {"type": "string"},
        "namespace": {
            "type": "string",
            "maxLength": 63,
            "pattern": f"^{_DNS1123_LABEL}$",
            "x-rule": "must be a DNS-1123 label: at most 63 lowercase letters, digits and '-', "
            "starting and ending with a letter or digit",
        },
        "labels": {
            "type": "object",
            "propertyNames": _LABEL_KEY_RULE,
            "additionalProperties": {
                "type": "string",
                "pattern": rf"^({_QUALIFIED_NAME})?$",
                "x-rule": "must be empty or at most 63 letters, digits, '-', '_' or '.', "
                "starting and ending with a letter or digit",
            },
        },
        "annotations": {
            "type": "object",
            "propertyNames": _LABEL_KEY_RULE,
            "additionalProperties": {"type": "string"},
        },
        "finalizers": {"type": "array", "items": {"type": "string"}},
        "ownerReferences": {"type": "array", "items": {"type": "object"}},
    },
}


class CrdError(ServingError):
    """A CRD directory or file cannot be read."""


class UnknownKind(CrdError):
    """The CRD index holds no served version for an object's apiVersion and kind."""

    def __init__(self, api_version: str, kind: str, crd_dir: Path) -> None:
        super().__init__(f"no CRD for {api_version} {kind} in {crd_dir}: not validated")
        self.api_version = api_version
        self.kind = kind
        self.crd_dir = crd_dir


def crd_dir_from_env(flag: str | None) -> Path | None:
    """The CRD directory to validate against: flag, else $SERVING_CRD_DIR, else ../shared/crds beside the
    repository if it exists, else None (validation against CRDs is then skipped)."""
    chosen = flag or os.environ.get(CRD_DIR_ENV)
    if chosen:
        return Path(chosen)
    beside_repo = _REPO_ROOT.parent / "shared" / "crds"
    return beside_repo if beside_repo.is_dir() else None


class CrdIndex:
    """The CRDs found in the *.yaml files under a directory (multi-document files included), by group and
    kind. Only served versions count; when two files define the same CRD, the first in path order wins
    (each ACK controller ships its own copy of the shared services.k8s.aws CRDs)."""

    def __init__(self, crd_dir: Path) -> None:
        if not crd_dir.is_dir():
            raise CrdError(f"{crd_dir}: not a directory of CRDs")
        self.crd_dir = crd_dir
        self._sources: dict[tuple[str, str], tuple[Path, int]] = {}
        for path in sorted(crd_dir.rglob("*.yaml")):
            for number, document in enumerate(_documents(path)):
                identity = _crd_identity(document, path)
                if identity is not None:
                    self._sources.setdefault(identity, (path, number))
        self._schemas: dict[tuple[str, str], dict[str, Mapping[str, Any]]] = {}
        self._validators: dict[tuple[str, str], Validator] = {}

    def has(self, api_version: str, kind: str) -> bool:
        """Whether a served version of a CRD in the index covers api_version ("group/version") and kind."""
        group, _, version = api_version.rpartition("/")
        return version in self._served_schemas(group, kind)

    def validator(self, api_version: str, kind: str) -> Validator:
        """The compiled, closed schema for api_version and kind; raises UnknownKind if there is none."""
        key = (api_version, kind)
        if key not in self._validators:
            group, _, version = api_version.rpartition("/")
            schema = self._served_schemas(group, kind).get(version)
            if schema is None:
                raise UnknownKind(api_version, kind, self.crd_dir)
            self._validators[key] = _Validator(_manifest_schema(schema), format_checker=_FORMATS)
        return self._validators[key]

    def _served_schemas(self, group: str, kind: str) -> dict[str, Mapping[str, Any]]:
        key = (group, kind)
        if key not in self._schemas:
            source = self._sources.get(key)
            self._schemas[key] = {} if source is None else _load_served_schemas(*source)
        return self._schemas[key]


def validate(obj: Mapping[str, Any], index: CrdIndex) -> list[str]:
    """Every way obj breaks its CRD's schema, as sorted "<Kind>/<name>: <path>: <message>" lines; [] when
    it conforms. Raises UnknownKind if index has no CRD for obj (ask index.has() first to report such an
    object as not validated)."""
    kind = str(obj.get("kind", ""))
    validator = index.validator(str(obj.get("apiVersion", "")), kind)
    metadata = obj.get("metadata")
    name = metadata.get("name", "?") if isinstance(metadata, Mapping) else "?"
    return sorted(
        {
            f"{kind}/{name}: {path}: {message}"
            for error in validator.iter_errors(obj)
            for path, message in _describe(error)
        }
    )


def to_json_schema(node: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON Schema (Draft 2020-12) of one node of a Kubernetes structural schema, with every object
    that lists its properties closed to others unless it preserves unknown fields. `nullable` admits null,
    `x-kubernetes-int-or-string` admits an integer or a string, list types `set` and `map` reject
    duplicates as the API server does; descriptions, defaults and CEL rules are left out."""
    out: dict[str, Any] = {keyword: node[keyword] for keyword in _COPIED if keyword in node}
    int_or_string = node.get("x-kubernetes-int-or-string") is True
    types = ["integer", "string"] if int_or_string else [node["type"]] if "type" in node else []
    if types and node.get("nullable") is True:
        types.append("null")
        if "enum" in out:
            out["enum"] = [*out["enum"], None]
    if types:
        out["type"] = types if len(types) > 1 else types[0]
    # OpenAPI 3.0 marks an exclusive bound with a boolean beside it; JSON Schema moves the bound itself.
    for bound, exclusive in (("maximum", "exclusiveMaximum"), ("minimum", "exclusiveMinimum")):
        if node.get(exclusive) is True and bound in out:
            out[exclusive] = out.pop(bound)
    if "properties" in node:
        out["properties"] = {name: to_json_schema(sub) for name, sub in node["properties"].items()}
    extra = node.get("additionalProperties")
    if isinstance(extra, Mapping):
        out["additionalProperties"] = to_json_schema(extra)
    elif isinstance(extra, bool):
        out["additionalProperties"] = extra
    elif (
        node.get("type") == "object"
        and "properties" in node
        and node.get("x-kubernetes-preserve-unknown-fields") is not True
    ):
        out["additionalProperties"] = False
    if "items" in node:
        out["items"] = to_json_schema(node["items"])
    if "not" in node:
        out["not"] = to_json_schema(node["not"])
    for junctor in ("allOf", "anyOf", "oneOf"):
        # The anyOf of an int-or-string node only restates its two types, already in `type`.
        if junctor in node and not (int_or_string and junctor == "anyOf"):
            out[junctor] = [to_json_schema(sub) for sub in node[junctor]]
    list_type = node.get("x-kubernetes-list-type")
    if list_type == "set":
        out["uniqueItems"] = True
    elif list_type == "map":
        out[_LIST_MAP_KEYS] = list(node.get(_LIST_MAP_KEYS, []))
    return out


def _manifest_schema(openapi: Mapping[str, Any]) -> dict[str, Any]:
    schema = to_json_schema(openapi)
    schema.setdefault("properties", {})["metadata"] = _OBJECT_META
    schema["required"] = sorted({*schema.get("required", []), "apiVersion", "kind", "metadata"})
    return schema


def _unique_map_keys(
    validator: Validator, keys: list[str], instance: Any, schema: Mapping[str, Any]
) -> Iterator[ValidationError]:
    """x-kubernetes-list-type: map: the API server rejects two items with the same key fields."""
    if not isinstance(instance, list):
        return
    first: dict[str, int] = {}
    for position, item in enumerate(instance):
        if not isinstance(item, Mapping):
            continue
        key = json.dumps([item.get(field) for field in keys], sort_keys=True, default=str)
        if key in first:
            yield ValidationError(f"duplicate entry: same {', '.join(keys)} as item [{first[key]}]", path=[position])
        else:
            first[key] = position


_Validator = extend(Draft202012Validator, {_LIST_MAP_KEYS: _unique_map_keys})
# Only the formats CRDs use for numbers are checked (the Go operators fail to decode an overflowing int32);
# FormatChecker lets every other format (date-time, ...) pass.
_FORMATS = FormatChecker(formats=())


@_FORMATS.checks("int32")
def _is_int32(value: object) -> bool:
    return not isinstance(value, int) or -(2**31) <= value < 2**31


@_FORMATS.checks("int64")
def _is_int64(value: object) -> bool:
    return not isinstance(value, int) or -(2**63) <= value < 2**63


def _describe(error: ValidationError) -> Iterator[tuple[str, str]]:
    """(path, message) pairs for one jsonschema error: one per unknown or missing field."""
    path = list(error.absolute_path)
    schema = error.schema if isinstance(error.schema, Mapping) else {}
    value = error.instance
    if error.validator == "additionalProperties" and error.validator_value is False:
        known = sorted(schema.get("properties", {}))
        for field in sorted(set(value) - set(known)):
            yield _dotted([*path, field]), f"unknown field. Hint: {_field_hint(field, known)}"
    elif error.validator == "required":
        for field in error.validator_value:
            if field not in value:
                yield _dotted([*path, field]), "required field is missing"
    elif list(error.absolute_schema_path)[-2:-1] == ["propertyNames"]:
        yield _dotted([*path, value]), f"invalid key; {schema.get('x-rule', error.message)}"
    elif error.validator == "type":
        expected = error.validator_value
        yield _dotted(path), f"got {_short(value)}; expected {' or '.join(_listed(expected))}"
    elif "x-rule" in schema:
        yield _dotted(path), f"got {_short(value)}; {schema['x-rule']}"
    elif error.validator == "enum":
        yield _dotted(path), f"got {_short(value)}; expected one of {', '.join(map(_short, error.validator_value))}"
    elif error.validator == "format":
        yield _dotted(path), f"got {_short(value)}; not a valid {error.validator_value}"
    else:
        message = error.message
        if message.startswith(repr(value)):
            message = f"got {_short(value)};{message[len(repr(value)) :]}"
        yield _dotted(path), message


def _field_hint(field: str, known: list[str]) -> str:
    by_lower = {name.lower(): name for name in known}
    close = [by_lower[field.lower()]] if field.lower() in by_lower else difflib.get_close_matches(field, known, n=1)
    if close:
        return f"did you mean {close[0]!r}?"
    return f"allowed fields are {', '.join(known)}" if known else "this object allows no fields"


def _listed(value: str | Iterable[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:77]}..."


def _dotted(parts: Iterable[object]) -> str:
    """A path as a reader writes it: spec.containers[0].name, metadata.labels["app.kubernetes.io/name"]."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _PLAIN_KEY.fullmatch(str(part)):
            out += f".{part}" if out else str(part)
        else:
            out += f"[{json.dumps(part)}]"
    return out or "(root)"


def _documents(path: Path) -> list[str]:
    """The YAML documents of a file, split at `---` markers so that one can be parsed on its own."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CrdError(f"{path}: {exc}") from exc
    return [document for document in _DOCUMENT_START.split(text) if document.strip()]


def _crd_identity(document: str, path: Path) -> tuple[str, str] | None:
    """(spec.group, spec.names.kind) of a CustomResourceDefinition document; None for any other kind.

    Walks parser events only until both are found: CRD generators write group and names before the
    versions and their schemas, so this reads a few dozen events of a megabyte-long document.
    """
    wanted = {("kind",), ("spec", "group"), ("spec", "names", "kind")}
    found: dict[tuple[str, ...], str] = {}
    # Per open collection: a mapping's current key (None while a key is awaited), or "[]" for a sequence.
    stack: list[str | None] = []
    try:
        for event in yaml.parse(document, Loader=_YAML_LOADER):
            if isinstance(event, MappingStartEvent):
                stack.append(None)
            elif isinstance(event, SequenceStartEvent):
                stack.append("[]")
            elif isinstance(event, (MappingEndEvent, SequenceEndEvent)):
                stack.pop()
                if stack and stack[-1] != "[]":
                    stack[-1] = None
            elif isinstance(event, (ScalarEvent, AliasEvent)) and stack:
                if stack[-1] is None:
                    stack[-1] = event.value if isinstance(event, ScalarEvent) else "*"
                    continue
                where = tuple(str(key) for key in stack)
                if where in wanted and isinstance(event, ScalarEvent):
                    found[where] = event.value
                if stack[-1] != "[]":
                    stack[-1] = None
                if found.get(("kind",), "CustomResourceDefinition") != "CustomResourceDefinition":
                    return None
                if len(found) == len(wanted):
                    break
            elif isinstance(event, DocumentEndEvent):
                break
    except yaml.YAMLError as exc:
        raise CrdError(f"{path}: {exc}") from exc
    if found.get(("kind",)) != "CustomResourceDefinition":
        return None
    if len(found) < len(wanted):
        raise CrdError(f"{path}: a CustomResourceDefinition without spec.group or spec.names.kind")
    return found[("spec", "group")], found[("spec", "names", "kind")]


def _load_served_schemas(path: Path, number: int) -> dict[str, Mapping[str, Any]]:
    """version name → openAPIV3Schema for each served version of the CRD in document `number` of path."""
    try:
        crd = yaml.load(_documents(path)[number], Loader=_YAML_LOADER)  # noqa: S506 (a SafeLoader, C or Python)
        return {
            version["name"]: version["schema"]["openAPIV3Schema"]
            for version in crd["spec"]["versions"]
            if version.get("served") is True
        }
    except (yaml.YAMLError, KeyError, TypeError) as exc:
        raise CrdError(f"{path}: not an apiextensions.k8s.io/v1 CRD with a schema per version ({exc!r})") from exc
