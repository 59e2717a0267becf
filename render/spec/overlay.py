"""Merging YAML layers: an overlay overrides only the keys it states, lists of named items merge by name.

Every key path remembers the layer that last set it, so an error can name the file to fix.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


def _name(item: Any) -> str | None:
    name = item.get("name") if isinstance(item, dict) else None
    return name if isinstance(name, str) else None


def _segment(item: Any, index: int) -> str:
    """An item's key-path segment: `[name]` for a mapping with a name, else `[index]` (as load._named_path)."""
    name = _name(item)
    return f"[{name}]" if name is not None else f"[{index}]"


def _merges_by_name(base: Any, overlay: Any) -> bool:
    """Whether `overlay` merges into `base` item by item: both are lists of mappings and some item has a name.

    A mapping without a name is kept as an item of its own, for the spec's rules to refuse where it was written:
    replacing the whole list instead would have dropped every inherited item.
    """
    lists = (base, overlay)
    return all(
        isinstance(value, list) and value and all(isinstance(item, dict) for item in value) for value in lists
    ) and any(_name(item) is not None for value in lists for item in value)


class Provenance:
    """Key path (`apps[zero-shot].deployments[Classifier].num_replicas`) → index of the layer that set it."""

    def __init__(self, shared_layers: int = 0) -> None:
        self._layer_of: dict[str, int] = {}
        self._shared_layers = shared_layers  # layers 0 .. shared_layers - 1 are base's files, which every env shares
        # Items one layer names twice in a list merged by name, as (key path, name, layer): the second merges into
        # the first, which is a mistake to report, not to resolve unseen.
        self.repeated: list[tuple[str, str, int]] = []

    def record(self, value: Any, path: str, layer: int) -> None:
        """Attribute `value` and everything below it to `layer`."""
        self._layer_of[path] = layer
        if isinstance(value, dict):
            for key, child in value.items():
                self.record(child, join(path, str(key)), layer)
        elif isinstance(value, list):
            for index, item in enumerate(value):
                self.record(item, path + _segment(item, index), layer)

    def forget_below(self, path: str) -> None:
        """Drop what was recorded below `path`: an overlay replaced the value there, and what it held is gone."""
        for recorded in self._below(path):
            del self._layer_of[recorded]

    def _below(self, path: str) -> list[str]:
        """The key paths recorded below `path` (its keys and items, and theirs)."""
        return [recorded for recorded in self._layer_of if recorded.startswith((f"{path}.", f"{path}["))]

    def recorded(self) -> dict[str, int]:
        """Every key path recorded, with the layer that set it last."""
        return dict(self._layer_of)

    def layer_of(self, path: str) -> int | None:
        """The layer that set `path`, or failing that its nearest recorded parent."""
        while True:
            if path in self._layer_of:
                return self._layer_of[path]
            if not path:
                return None
            path = parent(path)

    def layer_missing(self, path: str) -> int | None:
        """The layer a required key missing at `path` belongs in.

        A named or numbered list item (`apps[iris]`) is declared in one file, which the item's keys belong to. A
        mapping (`env`, `env.target`) is written by every layer that states it, and a key missing there belongs to
        the first environment that states it, which the environments extending it inherit from: `env.tier` missing
        in dev (and in bench, which extends dev) is dev's to add, not base's; base's only when no environment writes
        into that mapping.
        """
        owner = parent(path)
        if not owner or owner.endswith("]"):
            return self.layer_of(path)
        writers = {self._layer_of[recorded] for recorded in [owner, *self._below(owner)] if recorded in self._layer_of}
        environments = [layer for layer in writers if layer >= self._shared_layers]
        if environments:
            return min(environments)
        return max(writers) if writers else self.layer_of(path)


@dataclass(frozen=True)
class Sources:
    """Which file set each key path of a merged environment (`apps[iris].slo.p95_ms` → its file), and which of those
    files are the environment's own (deployments/<env>/), as opposed to inherited from base or a parent."""

    file_of: Mapping[str, str] = field(default_factory=dict)
    own: frozenset[str] = frozenset()

    def files_setting(self, path: str) -> list[str]:
        """The files that set `path` or a key below it, sorted."""
        return sorted(self._files_below.get(path, ()))

    @functools.cached_property
    def _files_below(self) -> dict[str, set[str]]:
        """Each key path → the files that set it or a key below it. Built once: the parity report asks for every
        stated field of every app, and scanning file_of for each made rendering quadratic in the number of apps."""
        below: dict[str, set[str]] = {}
        for path, file in self.file_of.items():
            while path:
                below.setdefault(path, set()).add(file)
                path = parent(path)
        return below


def join(path: str, key: str) -> str:
    """Append a mapping key to a dotted path."""
    return f"{path}.{key}" if path else key


def parent(path: str) -> str:
    """Drop the last segment of a dotted path (`a.b[c]` → `a.b`, `a.b` → `a`)."""
    cut = max(path.rfind("."), path.rfind("["))
    return path[:cut] if cut > 0 else ""


def merge(base: Any, overlay: Any, path: str, provenance: Provenance, layer: int) -> Any:
    """Return `overlay` laid over `base`; neither input is modified."""
    if isinstance(base, dict) and isinstance(overlay, dict):
        merged = dict(base)
        for key, value in overlay.items():
            child = join(path, str(key))
            if key in base:
                merged[key] = merge(base[key], value, child, provenance, layer)
            else:
                merged[key] = value
                provenance.record(value, child, layer)
        return merged
    if _merges_by_name(base, overlay):
        merged_list = list(base)
        position = {name: index for index, item in enumerate(base) if (name := _name(item)) is not None}
        stated: set[str] = set()
        for item in overlay:
            name = _name(item)
            if name is not None and name in stated:
                provenance.repeated.append((f"{path}[{name}]", name, layer))
            if name is not None and name in position:
                index = position[name]
                merged_list[index] = merge(merged_list[index], item, f"{path}[{name}]", provenance, layer)
            else:
                if name is not None:
                    position[name] = len(merged_list)
                provenance.record(item, path + _segment(item, len(merged_list)), layer)
                merged_list.append(item)
            if name is not None:
                stated.add(name)
        return merged_list
    if isinstance(base, dict | list):
        provenance.forget_below(path)
    provenance.record(overlay, path, layer)
    return overlay
