"""Manifests as files: stable names and byte-stable YAML."""

from __future__ import annotations

from typing import Any

import yaml


class _Dumper(yaml.CSafeDumper):
    """Block style for multi-line strings, so serveConfigV2 and Lua scripts diff line by line; no anchors and
    aliases, so an object that two places share is written out in both."""

    def ignore_aliases(self, data: object) -> bool:
        return True


def _represent_str(dumper: yaml.CSafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value and not value.startswith(" ") else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_str)


def file_name(manifest: dict[str, Any]) -> str:
    """`<group>.<Kind>-<name>.yaml`; the core group is spelt v1 (`v1.ServiceAccount-serving.yaml`)."""
    api_version = manifest["apiVersion"]
    group = api_version.split("/")[0] if "/" in api_version else api_version
    return f"{group}.{manifest['kind']}-{manifest['metadata']['name']}.yaml"


def dump(manifest: dict[str, Any]) -> str:
    """YAML text of one manifest with sorted keys: the same input gives the same bytes."""
    return yaml.dump(manifest, Dumper=_Dumper, sort_keys=True, default_flow_style=False, allow_unicode=True, width=120)


def group_kind(manifest: dict[str, Any]) -> tuple[str, str]:
    """(API group, kind) as Argo CD's resource whitelists spell them; the core group is ''."""
    api_version = manifest["apiVersion"]
    return (api_version.split("/")[0] if "/" in api_version else "", manifest["kind"])
