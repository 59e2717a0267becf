"""Validate a `serving.knative.dev/v1` Service as Cloud Run's Admin API v1 reads it (`gcloud run services replace`).

The schema is the API's own discovery document (schemas/run.v1.json, see schemas/UPSTREAM.txt), turned into a JSON
Schema with every object closed: a misspelt field fails here instead of being dropped by the API.

    problems = knative_service_problems(body)
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

DISCOVERY = Path(__file__).parent / "schemas" / "run.v1.json"
_INT32 = {"minimum": -(2**31), "maximum": 2**31 - 1}


def knative_service_problems(body: dict[str, Any]) -> list[str]:
    """Every way `body` breaks the Cloud Run Admin API v1 Service schema, as "<path>: <message>"; [] when valid."""
    return sorted(
        f"{'.'.join(map(str, error.absolute_path)) or '(root)'}: {error.message}"
        for error in _validator().iter_errors(body)
    )


@cache
def _validator() -> Draft202012Validator:
    schemas = json.loads(DISCOVERY.read_text(encoding="utf-8"))["schemas"]
    definitions = {name: _to_json_schema(schema) for name, schema in schemas.items()}
    return Draft202012Validator({"$ref": "#/$defs/Service", "$defs": definitions})


def _to_json_schema(node: dict[str, Any]) -> dict[str, Any]:
    """One discovery schema node as JSON Schema; objects that list their properties allow no others."""
    if "$ref" in node:
        return {"$ref": f"#/$defs/{node['$ref']}"}
    kind = node.get("type")
    out: dict[str, Any] = {}
    if kind == "integer":
        out = {"type": "integer", **(_INT32 if node.get("format") == "int32" else {})}
    elif kind in ("string", "boolean", "number", "array", "object"):
        out = {"type": kind}
    if "enum" in node:
        out["enum"] = node["enum"]
    if "items" in node:
        out["items"] = _to_json_schema(node["items"])
    if "properties" in node:
        out["properties"] = {name: _to_json_schema(sub) for name, sub in node["properties"].items()}
        out["additionalProperties"] = False
    if "additionalProperties" in node:
        out["additionalProperties"] = _to_json_schema(node["additionalProperties"])
    return out
