"""Argo CD health checks, in Lua, for the custom resources the targets render.

Each `<group>_<Kind>.lua` beside this module is one self-contained script, as Argo CD takes it in argocd-cm.
"""

from importlib.resources import files

_KEY_PREFIX = "resource.customizations.health."


def health_scripts() -> dict[str, str]:
    """argocd-cm key (`resource.customizations.health.<group>_<Kind>`) → Lua script text, sorted by key."""
    scripts = {
        _KEY_PREFIX + entry.name.removesuffix(".lua"): entry.read_text(encoding="utf-8")
        for entry in files(__name__).iterdir()
        if entry.name.endswith(".lua")
    }
    return dict(sorted(scripts.items()))
