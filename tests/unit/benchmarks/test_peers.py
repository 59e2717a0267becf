"""Starting and stopping the bench's peers: servers stop with their whole process group, BentoML's venv holds the
project's model runtime, the MySQL database is the bench's own and goes away."""

from __future__ import annotations

import io
import json
import os
import sys
import urllib.request
from pathlib import Path

import psutil
import pytest
import sqlalchemy as sa

from benchmarks import peers
from benchmarks.peer_config import ModelSettings
from tests.integration.services import local_mysql_admin_url

REPO_ROOT = Path(__file__).resolve().parents[3]


def test_a_server_runs_until_the_block_ends_and_its_children_stop_with_it(tmp_path: Path) -> None:
    port = peers.free_port()
    # A shell that starts an HTTP server and a second, idle child: both are in the group the server was given.
    script = f"{sys.executable} -m http.server {port} --bind 127.0.0.1 & sleep 300 & wait"
    with peers.server_process(
        "http", ["sh", "-c", script], [0], dict(os.environ), f"http://127.0.0.1:{port}/", tmp_path / "http.log"
    ) as pid:
        group = [pid, *(child.pid for child in psutil.Process(pid).children(recursive=True))]
        assert len(group) >= 3
        assert psutil.Process(pid).cpu_affinity() == [0]
    assert not [p for p in group if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]


def test_a_server_that_exits_early_fails_at_once_with_its_log(tmp_path: Path) -> None:
    command = ["sh", "-c", "echo no model here; exit 3"]
    with (
        pytest.raises(RuntimeError, match=r"(?s)broken did not start: .* exited before it answered.*no model here"),
        peers.server_process("broken", command, [0], dict(os.environ), "http://127.0.0.1:9/", tmp_path / "b.log"),
    ):
        pass


def test_a_uvicorn_server_runs_its_workers_and_answers_until_the_block_ends(tmp_path: Path) -> None:
    with peers.uvicorn_server("floor", ["benchmarks.http_floor:api"], [0], dict(os.environ), tmp_path, workers="2") as (
        base,
        pid,
    ):
        workers = psutil.Process(pid).children(recursive=True)
        body = json.dumps({"text": "a goal", "labels": ["sports", "cooking"]}).encode()
        request = urllib.request.Request(f"{base}/predict", data=body, headers={"content-type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as answer:
            assert json.loads(answer.read())["scores"] == [0.5, 0.5]
        assert "--workers" in psutil.Process(pid).cmdline()
        assert len([w for w in workers if "multiprocessing" in " ".join(w.cmdline())]) >= 2
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert (tmp_path / "floor.log").exists()


def test_bentomls_venv_holds_the_projects_model_runtime() -> None:
    pins = peers.bentoml_pins(REPO_ROOT)
    assert pins[0] == f"bentoml=={peers.BENTOML_VERSION}"
    assert peers.BENTOML_VERSION.startswith("1.4.")
    assert {pin.split("==")[0] for pin in pins[1:]} == set(peers.SHARED_RUNTIME)
    assert "onnxruntime==1.32.0" in pins  # as pyproject's image group pins it


def test_model_settings_travel_in_one_variable() -> None:
    settings = ModelSettings(
        model_path="/m.onnx", hypothesis_template="About {}.", temperature=0.5, multi_label_threshold=0.2
    )
    assert ModelSettings.from_env(settings.env()) == settings


def test_the_mysql_database_is_the_benchs_own_and_is_dropped() -> None:
    admin = local_mysql_admin_url().render_as_string(hide_password=False)
    with peers.mysql_database(admin) as url:
        name = sa.make_url(url).database
        assert name is not None and name.startswith("bench_")
        engine = sa.create_engine(url)
        with engine.begin() as connection:
            connection.execute(sa.text("CREATE TABLE t (x INT)"))
        engine.dispose()
    engine = sa.create_engine(admin)
    with engine.connect() as connection:
        found = connection.execute(sa.text("SHOW DATABASES LIKE :name"), {"name": name}).all()
    engine.dispose()
    assert found == []


def test_bentomls_mean_batch_comes_from_its_histogram(monkeypatch: pytest.MonkeyPatch) -> None:
    metrics = (
        "# HELP bentoml_service_adaptive_batch_size Service adaptive batch size\n"
        'bentoml_service_adaptive_batch_size_sum{method_name="classify",worker_index="1"} 30.0\n'
        'bentoml_service_adaptive_batch_size_count{method_name="classify",worker_index="1"} 10.0\n'
        'bentoml_service_adaptive_batch_size_sum{method_name="classify",worker_index="2"} 50.0\n'
        'bentoml_service_adaptive_batch_size_count{method_name="classify",worker_index="2"} 10.0\n'
        'bentoml_service_adaptive_batch_size_bucket{le="1.0",worker_index="1"} 2.0\n'
    )

    class Response(io.BytesIO):
        def __enter__(self) -> Response:
            return self

    opened: list[str] = []
    monkeypatch.setattr(
        peers.urllib.request, "urlopen", lambda url, timeout: opened.append(url) or Response(metrics.encode())
    )
    assert peers.bentoml_mean_batch("http://127.0.0.1:1234/predict") == 4.0
    assert opened == ["http://127.0.0.1:1234/metrics"]
