"""The bench's run: what counts as the benchmark and what as a smoke run, which peer is best, the MySQL copy."""

from __future__ import annotations

import argparse
from dataclasses import replace

import pytest

from benchmarks import serving
from benchmarks.loadgen import LoadResult


def full_options() -> serving.Options:
    return serving.Options(
        env="bench",
        clients=16,
        warmup_s=5,
        duration_s=20,
        repetitions=2,
        raw_s=5,
        cold_starts=2,
        max_foreign_cores=0.3,
        quiet_timeout_s=120,
        load_generator="auto",
    )


def test_the_full_measurement_is_the_benchmark() -> None:
    assert not full_options().smoke
    assert not replace(full_options(), duration_s=30, max_foreign_cores=2).smoke  # longer, or less picky: still it


@pytest.mark.parametrize(
    "change",
    [
        {**serving.QUICK},
        {"parts": ("served", "bentoml")},
        {"curve_clients": (1, 16)},
        {"clients": 8},
        {"repetitions": 1},
    ],
)
def test_less_than_the_benchmark_is_a_smoke_run(change: dict[str, object]) -> None:
    assert replace(full_options(), **change).smoke


def test_only_names_the_parts_it_knows() -> None:
    assert serving._parts("served, bentoml") == ("served", "bentoml")
    with pytest.raises(argparse.ArgumentTypeError, match="unknown torchserve"):
        serving._parts("served,torchserve")


def test_systems_keep_the_tables_order() -> None:
    options = replace(full_options(), parts=("served", "curve", "naive"))
    assert options.systems == ("naive", "served")


def _window(system: str, rps: float) -> serving.HttpWindow:
    load = LoadResult(16, 20.0, int(rps * 20), 0, rps, 10.0, 20.0, 30.0, 0.1, "wrk")
    return serving.HttpWindow(
        system=system,
        repetition=1,
        load=load,
        server_cores=1.8,
        client_cores=0.02,
        rest_cores=0.05,
        server_cores_by_process={"uvicorn worker": 1.8},
        foreign_cores=0.1,
        machine_cores=1.9,
        load_average="1.0",
    )


def test_the_best_peer_is_the_fastest_peer_and_never_the_served_app() -> None:
    windows = [_window("served", 900), _window("bentoml", 500), _window("fastapi_tuned", 400)]
    windows += [_window("fastapi_tuned", 700), _window("fastapi_tuned", 650)]
    assert serving.best_peer(windows) == "fastapi_tuned"  # median 650
    assert serving.best_peer([_window("served", 900)]) is None


def test_the_mysql_copy_logs_to_its_database_under_its_own_name() -> None:
    app = {"name": "zero-shot", "route_prefix": "/zero-shot", "args": {"num_threads": 1}, "deployments": []}
    copy = serving.mysql_copy(app, "mysql+pymysql://root@127.0.0.1:3306/bench_1234")
    assert (copy["name"], copy["route_prefix"]) == (serving.MYSQL_APP, f"/{serving.MYSQL_APP}")
    assert copy["runtime_env"] == {"env_vars": {"PREDICTION_DB_URL": "mysql+pymysql://root@127.0.0.1:3306/bench_1234"}}
    assert copy["args"] == app["args"]
