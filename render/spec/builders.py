"""The app builders an app's `import_path` names, as the spec sees them: the pydantic Args model each takes, and
what that model declares about the app.

Importing a builder imports its app module; the apps keep their top-level imports light for this (their models'
runtimes load when a replica starts).
"""

from __future__ import annotations

import importlib
import typing
from typing import Any

from pydantic import BaseModel

# A ClassVar an Args model sets to True when its app streams tokens (serve_apps/plain_language/api.py): such an app
# may declare slo.ttft_p95_ms, and the dashboard shows its generation metrics. Other apps' models lack it.
STREAMS_TOKENS = "streams_tokens"


def app_args_type(import_path: str) -> type[BaseModel]:
    """The pydantic Args model that the app builder at `import_path` takes (Ray's typed app builder)."""
    hints = typing.get_type_hints(_builder(import_path))
    hints.pop("return", None)
    args_type = next(iter(hints.values()), None)
    if not (isinstance(args_type, type) and issubclass(args_type, BaseModel)):
        raise TypeError(f"{import_path} does not take a pydantic Args model as its first parameter")
    return args_type


def _builder(import_path: str) -> Any:
    """The app builder `module:function` names (imported)."""
    module_name, attribute = import_path.split(":")
    return getattr(importlib.import_module(module_name), attribute)


def deployment_names(import_path: str, args: BaseModel) -> tuple[str, ...] | None:
    """The names of the deployments the builder at `import_path` makes from `args`, as Ray's controller builds the
    app before applying the config's per-deployment options (ray-project/ray python/ray/serve/_private/
    application_state.py: the builder is called, `build_app` names the deployments, and an option for a name not
    among them fails the deploy with "Deployment '<name>' does not exist"). None when the builder raises here: it
    may need what only the cluster has, and the check is then left to Ray.

    Building costs several milliseconds an app (Ray pickles each deployment's class), which made a spec of 500 apps
    render in 7.7 s instead of 3.4: the names are kept per builder and arguments, the model artifact left out (it
    is what the app serves, not what it is made of), so that copies of an app across apps and environments build once.
    """
    key = (import_path, args.model_dump_json(exclude={"model"}))
    if key not in _BUILT:
        _BUILT[key] = _build(import_path, args)
    return _BUILT[key]


_BUILT: dict[tuple[str, str], tuple[str, ...] | None] = {}


def _build(import_path: str, args: BaseModel) -> tuple[str, ...] | None:
    from ray.serve._private.build_app import build_app  # the controller's own naming, suffixes for reused classes

    try:
        built = build_app(_builder(import_path)(args), name="render-check")
    except Exception:  # any failure of user code means: not checkable at render time
        return None
    return tuple(deployment.name for deployment in built.deployments)


def streams_tokens(args_type: type[BaseModel]) -> bool:
    """Whether the app whose Args model is `args_type` streams generated tokens."""
    return getattr(args_type, STREAMS_TOKENS, False) is True
