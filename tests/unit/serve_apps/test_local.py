"""serve_apps.local: a local Ray gets the Ray variables the environment's containers get."""

from __future__ import annotations

import os

import pytest

from render.plan import THROUGHPUT_OPTIMIZED_ENV
from serve_apps.local import apply_ray_env


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
