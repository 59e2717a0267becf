"""An app that streams tokens, on each target (tests/fixtures/repo_streaming: `writer` streams, `echo` does not):
the golden tree, the validation of what is rendered, and the Streaming section of each parity report, which says
what carries the streams and what bounds them."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from render.pipeline import render_repo
from render.plan import plan_env
from render.spec.load import load_clusters, load_specs
from render.targets import streaming
from render.write import read_tree
from tests.golden_tree import STREAMING_GOLDEN_DIR, STREAMING_REPO, differences, render_fixture
from tests.unit.render.conftest import edit, not_validated_notes

CRDS = Path(__file__).parents[3].parent / "shared" / "crds"
ENVS = ("kuberay", "ecs", "run")


@pytest.fixture(scope="module")
def files() -> dict[str, str]:
    """The streaming fixture repo, rendered once."""
    return render_fixture(STREAMING_REPO)


@pytest.fixture
def streaming_repo(tmp_path: Path) -> Path:
    """A private copy of tests/fixtures/repo_streaming."""
    shutil.copytree(STREAMING_REPO, tmp_path / "repo")
    return tmp_path / "repo"


def section(report: str) -> list[str]:
    """The lines of the Streaming section of a PARITY.md; empty when it has none."""
    if "\n## Streaming\n" not in report:
        return []
    body = report.split("\n## Streaming\n", 1)[1].split("\n## ", 1)[0]
    return [line.removeprefix("- ") for line in body.strip().splitlines()]


def test_golden_tree(files: dict[str, str]) -> None:
    report = differences(files, read_tree(STREAMING_GOLDEN_DIR))
    assert not report, "rendered tree differs from tests/golden_streaming (run `nox -s update_golden`):\n" + "\n".join(
        report
    )


@pytest.mark.skipif(not CRDS.is_dir(), reason="../shared/crds not found: CRD validation not exercised")
def test_rendered_custom_resources_pass_their_crds() -> None:
    rendered = render_repo(STREAMING_REPO, CRDS)
    assert rendered.notes == not_validated_notes(rendered.files, CRDS)


def test_the_plan_knows_which_app_streams() -> None:
    spec = load_specs(STREAMING_REPO, ["kuberay"])["kuberay"]
    plan = plan_env(spec, load_clusters(STREAMING_REPO))
    assert {a.app.name: a.streams_tokens for a in plan.apps} == {"writer": True, "echo": False}
    assert [a.app.name for a in streaming.streaming_apps(plan)] == ["writer"]


@pytest.mark.parametrize("env", ENVS)
def test_every_target_says_how_it_carries_the_streaming_app_and_only_it(env: str, files: dict[str, str]) -> None:
    lines = section(files[f"{env}/PARITY.md"])
    assert lines and all(line.startswith("writer: ") for line in lines)
    assert any("streams tokens (text/event-stream) through Ray Serve's proxy" in line for line in lines)
    assert any("graceful_shutdown_timeout_s (20 s by default" in line for line in lines)


def test_an_environment_without_a_streaming_app_has_no_streaming_section(streaming_repo: Path) -> None:
    def echo_instead(data: dict[str, Any]) -> None:
        writer = data["apps"][0]
        writer.update(import_path="tests.fixtures.echo_app:app_builder", args={})
        writer["deployments"][0]["name"] = "Echo"
        del writer["slo"]["ttft_p95_ms"]

    edit(streaming_repo, "deployments/base/apps.yaml", echo_instead)
    rendered = render_repo(streaming_repo, None)
    assert [env for env in ENVS if section(rendered.files[f"{env}/PARITY.md"])] == []


def test_the_serve_request_timeout_is_said_to_bound_the_whole_stream(files: dict[str, str]) -> None:
    (kuberay,) = [line for line in section(files["kuberay/PARITY.md"]) if "Ray Serve's proxy" in line]
    assert "http_options.request_timeout_s (120 s) bounds the whole request, the stream included" in kuberay
    (ecs,) = [line for line in section(files["ecs/PARITY.md"]) if "Ray Serve's proxy" in line]
    assert "env.serve.request_timeout_s is unset, so the proxy does not bound a stream's length" in ecs


def test_ecs_names_the_alb_idle_timeout_and_what_alb_request_scaling_misses(files: dict[str, str]) -> None:
    lines = section(files["ecs/PARITY.md"])
    assert any("idle_timeout.timeout_seconds, 60 s unless changed, 1-4000 s" in line for line in lines)
    assert any(
        "ALBRequestCountPerTarget counts requests as they arrive, not how long they last" in line for line in lines
    )
    assert any("deregistration delay (300 s unless changed)" in line for line in lines)
    assert any("the shorter of 26 s (the container's stopTimeout, 30 s" in line for line in lines)


def test_ecs_without_a_load_balancer_says_the_tasks_are_reached_directly(streaming_repo: Path) -> None:
    edit(streaming_repo, "deployments/ecs/env.yaml", lambda d: d["env"]["target"].update(scaling={}, load_balancers={}))
    lines = section(render_repo(streaming_repo, None, ["ecs"]).files["ecs/PARITY.md"])
    assert any("no load balancer in env.target.load_balancers" in line for line in lines)
    assert any("target tracking on CPU (70 %) follows the decoding work" in line for line in lines)
    assert not any("deregistration delay" in line for line in lines)


def test_cloud_run_names_its_request_timeout_its_concurrency_and_its_short_grace(files: dict[str, str]) -> None:
    lines = section(files["run/PARITY.md"])
    assert any("Cloud Run's default request timeout, 300 s" in line and "up to 3600 s" in line for line in lines)
    assert any("containerConcurrency (16) for its whole length" in line for line in lines)
    assert any("the shorter of 6 s (Cloud Run's fixed 10 s between SIGTERM and SIGKILL" in line for line in lines)


def test_cloud_run_s_timeout_follows_the_spec_s(streaming_repo: Path) -> None:
    edit(streaming_repo, "deployments/run/env.yaml", lambda d: d["env"].update(serve={"request_timeout_s": 90.5}))
    lines = section(render_repo(streaming_repo, None, ["run"]).files["run/PARITY.md"])
    assert any("the service's request timeout, 91 s (env.serve.request_timeout_s rounded up)" in line for line in lines)
