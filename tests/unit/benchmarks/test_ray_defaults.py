"""Ray's defaults: the served app's code, model, replicas and their resources, nothing the toolkit tunes."""

from __future__ import annotations

from pathlib import Path

from benchmarks import ray_defaults
from localrun.serve import env_serve_config

REPO_ROOT = Path(__file__).resolve().parents[3]


def test_out_of_the_box_keeps_the_app_and_its_resources_and_drops_every_tuning() -> None:
    tuned = next(a for a in env_serve_config(REPO_ROOT, "bench")["applications"] if a["name"] == ray_defaults.APP)
    config = ray_defaults.config(REPO_ROOT, "bench")

    (app,) = config["applications"]
    (deployment,) = app["deployments"]
    assert set(config) == {"applications"}  # Serve's own proxy location and HTTP options
    assert (app["import_path"], app["route_prefix"]) == (tuned["import_path"], tuned["route_prefix"])
    assert app["args"] == {key: value for key, value in tuned["args"].items() if key != "num_threads"}
    assert deployment == {
        "name": tuned["deployments"][0]["name"],
        "num_replicas": tuned["deployments"][0]["autoscaling_config"]["min_replicas"],
        "ray_actor_options": tuned["deployments"][0]["ray_actor_options"],
    }
    assert "logging_config" not in app  # access log on


def test_out_of_the_box_starts_as_many_replicas_as_the_app_and_never_none() -> None:
    def replicas(scaling: dict[str, object]) -> int:
        app = {
            "name": "zero-shot",
            "import_path": "serve_apps.zero_shot.app:app_builder",
            "route_prefix": "/zero-shot",
            "args": {},
            "deployments": [{"name": "ZeroShotClassifier", "ray_actor_options": {"num_cpus": 1}, **scaling}],
        }
        (deployment,) = ray_defaults.out_of_the_box(app)["deployments"]
        return deployment["num_replicas"]

    assert replicas({"num_replicas": 3}) == 3
    assert replicas({"autoscaling_config": {"min_replicas": 2, "max_replicas": 4}}) == 2
    assert replicas({"autoscaling_config": {"min_replicas": 0, "max_replicas": 4}}) == 1  # scale-to-zero app
    assert replicas({}) == 1  # Serve's default
