"""Deployment targets as plug-ins: each module holds a `<Kind>TargetConfig` and a `build(plan) -> TargetOutput`.

Adding a target means one module here, one member in `TargetConfig` and one entry in `BUILDERS`
(the contract is in render/targets/base.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated

from pydantic import Field

from render.targets import cloudrun, ecs, kuberay

if TYPE_CHECKING:
    from render.plan import EnvPlan
    from render.targets.base import TargetOutput

TargetConfig = Annotated[
    kuberay.KubeRayTargetConfig | ecs.EcsTargetConfig | cloudrun.CloudRunTargetConfig,
    Field(discriminator="kind"),
]

BUILDERS: dict[str, Callable[[EnvPlan], TargetOutput]] = {
    "kuberay": kuberay.build,
    "ecs": ecs.build,
    "cloudrun": cloudrun.build,
}
