"""Argo CD health checks, in Lua, for the custom resources the targets render.

Argo CD takes one self-contained script per kind in argocd-cm, so each is assembled here: `common.lua` (the helpers
every script uses), then for the RayService `ray.io_RayService.lua`, and for every AWS Controllers for Kubernetes
(ACK) kind `ack.lua` (the rules all ACK resources share) followed by its own `<group>_<Kind>.lua` where it has
one, else by the lines that return the shared verdict.
"""

from importlib.resources import files

_KEY_PREFIX = "resource.customizations.health."
_RAYSERVICE = "ray.io_RayService"
# Every ACK kind a target renders (a unit test checks the rendered repo against this list).
ACK_KINDS = (
    "applicationautoscaling.services.k8s.aws_ScalableTarget",
    "applicationautoscaling.services.k8s.aws_ScalingPolicy",
    "ecs.services.k8s.aws_Service",
    "ecs.services.k8s.aws_TaskDefinition",
    "iam.services.k8s.aws_Policy",
    "iam.services.k8s.aws_Role",
)
_SHARED_VERDICT = "hs.status, hs.message = ack_health(obj)\nreturn hs\n"


def health_scripts() -> dict[str, str]:
    """argocd-cm key (`resource.customizations.health.<group>_<Kind>`) → Lua script text, sorted by key."""
    folder = files(__name__)
    common = (folder / "common.lua").read_text(encoding="utf-8") + "\n"
    scripts = {_RAYSERVICE: common + (folder / f"{_RAYSERVICE}.lua").read_text(encoding="utf-8")}
    shared = common + (folder / "ack.lua").read_text(encoding="utf-8")
    for kind in ACK_KINDS:
        own = folder / f"{kind}.lua"
        scripts[kind] = shared + "\n" + (own.read_text(encoding="utf-8") if own.is_file() else _SHARED_VERDICT)
    return {_KEY_PREFIX + kind: script for kind, script in sorted(scripts.items())}
