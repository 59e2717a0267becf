"""The JSON Schema editors use to check spec files as they are typed."""

from __future__ import annotations

from typing import Any

from render.spec.models import Spec

SCHEMA_FILE = "deployments/schema.json"


def _without_required(node: Any) -> Any:
    # Each file is a partial layer (base or overlay): keys are checked, completeness is checked at render.
    if isinstance(node, dict):
        return {k: _without_required(v) for k, v in node.items() if k != "required"}
    if isinstance(node, list):
        return [_without_required(v) for v in node]
    return node


def spec_json_schema() -> dict[str, Any]:
    """The spec's JSON Schema for one layer file: every key typed and described, none required."""
    schema = _without_required(Spec.model_json_schema())
    schema["properties"]["extends"] = {
        "type": "string",
        "description": "Environment this overlay builds on (default: base).",
    }
    schema["title"] = "Serving toolkit environment spec layer"
    return schema
