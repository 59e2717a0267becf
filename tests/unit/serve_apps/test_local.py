"""serve_apps.local: a local Ray gets the Ray variables the environment's containers get, and what they name exists."""

from __future__ import annotations

import importlib.util
import os

import pytest

from render.plan import PRELOAD_MODULES_ENV, SERVE_REPLICA_MODULE, THROUGHPUT_OPTIMIZED_ENV, preload_modules
from render.spec.load import known_envs
from render.targets.single_node import container_env
from serve_apps.local import apply_ray_env, env_plan
from tests.unit.serve_apps.conftest import REPO_ROOT


def test_apply_ray_env_puts_the_variables_into_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import ray

    # A Ray another test of the session started must not make this one refuse (that refusal is its own test).
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    for name in THROUGHPUT_OPTIMIZED_ENV:
        monkeypatch.delenv(name, raising=False)
    apply_ray_env(THROUGHPUT_OPTIMIZED_ENV)
    # Registered with monkeypatch so that they are removed again after the test.
    for name in THROUGHPUT_OPTIMIZED_ENV:
        monkeypatch.setenv(name, os.environ[name])
    assert {name: os.environ[name] for name in THROUGHPUT_OPTIMIZED_ENV} == THROUGHPUT_OPTIMIZED_ENV


@pytest.mark.parametrize("env", known_envs(REPO_ROOT))
def test_every_module_an_environment_preloads_exists(env: str) -> None:
    # A worker only logs a preloaded module that fails to import: a Ray release that moved Serve's replica module,
    # or an app renamed, would silently give the cold starts their import time back.
    modules = preload_modules(env_plan(REPO_ROOT, env).apps)
    assert modules[0] == SERVE_REPLICA_MODULE
    assert [m for m in modules if importlib.util.find_spec(m) is None] == []


def test_a_one_app_container_preloads_only_its_own_app() -> None:
    plan = env_plan(REPO_ROOT, "staging-ecs")
    assert len({a.app.import_path for a in plan.apps}) > 1
    for app_plan in plan.apps:
        env = {e["name"]: e["value"] for e in container_env(plan, app_plan)}
        module = app_plan.app.import_path.split(":")[0]
        assert env[PRELOAD_MODULES_ENV] == f"{SERVE_REPLICA_MODULE},{module}"
