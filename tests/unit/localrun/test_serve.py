"""localrun.serve: a local Ray gets the Ray variables the environment's containers get, and what they name exists."""

from __future__ import annotations

import importlib.util
import os
import socket
from pathlib import Path

import pytest

from localrun.serve import (
    LOCAL_HOST,
    LOCAL_PREDICTION_LOG,
    apply_ray_env,
    dashboard_access,
    env_plan,
    main,
    prediction_log_url,
)
from render.plan import (
    PRELOAD_MODULES_ENV,
    REPLICA_IMPORTS,
    SERVE_REPLICA_MODULE,
    THROUGHPUT_OPTIMIZED_ENV,
    preload_modules,
)
from render.spec.load import known_envs
from render.targets.single_node import container_env
from serve_apps.common.prediction_log import DB_URL_ENV

REPO_ROOT = Path(__file__).parents[3]


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
        env = {e["name"]: e["value"] for e in container_env(plan, app_plan, cpus=2)}
        module = app_plan.app.import_path.split(":")[0]
        assert env[PRELOAD_MODULES_ENV] == ",".join((SERVE_REPLICA_MODULE, *REPLICA_IMPORTS, module))


def test_the_prediction_log_is_the_checkouts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DB_URL_ENV, raising=False)
    assert prediction_log_url(tmp_path) == f"sqlite:///{tmp_path / LOCAL_PREDICTION_LOG}"
    assert (tmp_path / LOCAL_PREDICTION_LOG).parent.is_dir()


def test_a_configured_prediction_log_is_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(DB_URL_ENV, "mysql+pymysql://u:p@db:3306/serving")
    assert prediction_log_url(tmp_path) == "mysql+pymysql://u:p@db:3306/serving"


URL = "http://127.0.0.1:8265"


@pytest.mark.parametrize(
    ("variables", "where", "header"),
    [
        ({}, "/home/u/.ray/auth_token", "$(cat /home/u/.ray/auth_token)"),
        ({"RAY_AUTH_TOKEN_PATH": "/run/ray token"}, "/run/ray token", "$(cat '/run/ray token')"),
        ({"RAY_AUTH_TOKEN_PATH": "/run/t", "RAY_AUTH_TOKEN": "abc"}, "$RAY_AUTH_TOKEN", "$RAY_AUTH_TOKEN"),
    ],
    ids=["default file", "token path", "token variable first"],
)
def test_the_dashboard_hint_names_the_token_ray_uses(
    monkeypatch: pytest.MonkeyPatch, variables: dict[str, str], where: str, header: str
) -> None:
    for name in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", "/home/u")
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    assert dashboard_access(URL) == [
        f"dashboard: {URL} (Ray's token auth: paste the token from {where} when it asks)",
        f'  its API: curl -H "Authorization: Bearer {header}" {URL}/api/serve/applications/',
    ]


def test_the_dashboard_hint_without_token_auth(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    assert dashboard_access(URL) == [f"dashboard: {URL} (RAY_AUTH_MODE=disabled: no token)"]


@pytest.mark.parametrize("port", ["0", "65536", "http"])
def test_a_port_out_of_range_exits_2_naming_the_option(port: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["dev", "--root", str(REPO_ROOT), "--port", port])
    assert exited.value.code == 2
    assert f"argument --port: invalid port (1-65535) value: '{port}'" in capsys.readouterr().err


@pytest.mark.parametrize("option", ["--port", "--dashboard-port"])
def test_a_port_in_use_is_refused_before_ray_starts(option: str, capsys: pytest.CaptureFixture[str]) -> None:
    import ray

    with socket.socket() as taken:
        taken.bind((LOCAL_HOST, 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["dev", "--root", str(REPO_ROOT), option, str(port)]) == 1
    out = capsys.readouterr()
    assert f"{LOCAL_HOST}:{port} cannot be listened on" in out.err and f"pass {option}" in out.err
    assert "starting Ray" not in out.out
    assert not ray.is_initialized()
