"""Deployment targets as plug-ins: each module holds a `<Kind>TargetConfig` and a `build(plan)`.

Adding a target means one module here, one member in `TargetConfig` and one entry in `BUILDERS`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any, Union

from pydantic import Field

from render.targets import kuberay

if TYPE_CHECKING:
    from render.plan import EnvPlan

TargetConfig = Annotated[Union[kuberay.KubeRayTargetConfig], Field(discriminator="kind")]  # noqa: UP007 - more targets join

BUILDERS: dict[str, Callable[[EnvPlan], list[dict[str, Any]]]] = {"kuberay": kuberay.build}
