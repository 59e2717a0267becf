"""One app of an environment's Serve config, deployed alone with its replicas' env vars (fault and fuzz tests)."""

from __future__ import annotations

import socket
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from localrun.serve import env_serve_config

REPO_ROOT = Path(__file__).parents[2]


def apps_config(env: str, apps: Iterable[str], env_vars: dict[str, str]) -> dict[str, Any]:
    """The env's Serve config holding only `apps`, whose replicas also get `env_vars` (the pod env in a cluster)."""
    config = env_serve_config(REPO_ROOT, env)
    wanted = set(apps)
    applications = []
    for application in config["applications"]:
        if application["name"] in wanted:
            runtime_env = application.get("runtime_env", {})
            merged = {**runtime_env, "env_vars": {**runtime_env.get("env_vars", {}), **env_vars}}
            applications.append({**application, "runtime_env": merged})
    assert {a["name"] for a in applications} == wanted, f"{env} lacks {wanted - {a['name'] for a in applications}}"
    return {**config, "applications": applications}


def single_app_config(env: str, app: str, env_vars: dict[str, str]) -> dict[str, Any]:
    """The env's Serve config holding only `app`, whose replicas also get `env_vars`."""
    return apps_config(env, [app], env_vars)


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
