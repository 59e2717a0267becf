"""env.serve.preload_modules reaches Ray: a worker of the session's Ray, started with the dev environment's Ray
variables (conftest.ray_cluster, as a dev container starts), has imported Serve's replica module and every dev app's
module before it runs anything of its own."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import ray

from localrun.serve import env_plan
from render.plan import PRELOAD_MODULES_ENV, preload_modules

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_a_new_worker_has_imported_the_preloaded_modules(ray_cluster: Any) -> None:
    modules = list(preload_modules(env_plan(REPO_ROOT, "dev").apps))
    assert os.environ[PRELOAD_MODULES_ENV] == ",".join(modules)

    # A runtime_env of its own gives the task a worker process started for it: no earlier task imported anything
    # there. The task imports nothing itself.
    @ray.remote(num_cpus=0, runtime_env={"env_vars": {"PRELOAD_PROBE": "1"}})
    def imported(names: list[str]) -> tuple[int, list[str]]:
        import os
        import sys

        return os.getpid(), [name for name in names if name in sys.modules]

    pid, found = ray.get(imported.remote(modules), timeout=120)
    assert pid != os.getpid()
    assert found == modules
