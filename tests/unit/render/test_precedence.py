"""Overlays override only what they state; named lists merge by name; null is not unset."""

from __future__ import annotations

from pathlib import Path

from render.spec.load import load_specs
from tests.unit.render.conftest import deployment, edit, problems

DEV = "deployments/dev/env.yaml"


def test_precedence_env_over_base(repo: Path) -> None:
    spec = load_specs(repo, ["prod"])["prod"]
    echo = next(a for a in spec.apps if a.name == "echo").deployments[0]
    assert echo.autoscaling_config is not None
    assert echo.autoscaling_config.max_replicas == 4  # stated by prod
    assert echo.autoscaling_config.target_ongoing_requests == 4  # kept from base
    assert echo.ray_actor_options.num_gpus == 0.25  # stated by prod
    assert echo.ray_actor_options.num_cpus == 1  # kept from base


def test_named_lists_merge_by_name_and_append_new_items(repo: Path) -> None:
    spec = load_specs(repo, ["prod"])["prod"]
    assert [g.name for g in spec.worker_groups] == ["cpu", "gpu"]
    assert [a.name for a in spec.apps] == ["echo", "echo-two"]


def test_unset_keeps_base_value_but_null_clears_it(repo: Path) -> None:
    prod = load_specs(repo, ["prod"])["prod"]
    two = next(a for a in prod.apps if a.name == "echo-two").deployments[0]
    assert two.num_replicas is None  # prod states `num_replicas: null`
    assert two.autoscaling_config is not None
    dev = load_specs(repo, ["dev"])["dev"]
    assert next(a for a in dev.apps if a.name == "echo-two").deployments[0].num_replicas == 1


def test_overlay_args_merge_key_by_key(repo: Path) -> None:
    dev = load_specs(repo, ["dev"])["dev"]
    assert next(a for a in dev.apps if a.name == "echo").args == {"greeting": "hi", "repeat": 2}


def test_lists_without_names_are_replaced_whole(repo: Path) -> None:
    edit(repo, "deployments/prod/env.yaml", lambda d: d["worker_groups"][0].update(tolerations=[{"key": "other"}]))
    spec = load_specs(repo, ["prod"])["prod"]
    gpu = next(g for g in spec.worker_groups if g.name == "gpu")
    assert [t.key for t in gpu.tolerations] == ["other"]


def test_extends_chains_overlays(repo: Path) -> None:
    (repo / "deployments/prod-us").mkdir()
    edit(
        repo,
        "deployments/prod-us/env.yaml",
        lambda d: d.update(extends="prod", apps=[{"name": "echo", "args": {"greeting": "howdy"}}]),
    )
    spec = load_specs(repo, ["prod-us"])["prod-us"]
    assert spec.env.tier == "prod"  # from prod
    assert spec.env.name == "prod-us"
    assert next(a for a in spec.apps if a.name == "echo").args["greeting"] == "howdy"


def test_deployment_overlay_reaches_one_deployment_only(repo: Path) -> None:
    edit(repo, "deployments/dev/env.yaml", lambda d: deployment(d, "echo-two").update(max_ongoing_requests=9))
    dev = load_specs(repo, ["dev"])["dev"]
    assert next(a for a in dev.apps if a.name == "echo-two").deployments[0].max_ongoing_requests == 9
    assert next(a for a in dev.apps if a.name == "echo").deployments[0].max_ongoing_requests == 16


def test_an_item_without_a_name_is_refused_where_it_was_written_and_the_inherited_items_stay(repo: Path) -> None:
    # Replacing the whole list would have dropped base's apps and blamed base for every key they then lacked.
    edit(repo, DEV, lambda d: d["apps"].append({"route_prefix": "/nameless"}))
    found = problems(repo, ["dev"])
    assert "deployments/dev/env.yaml: apps[2].name: got nothing; field required. Hint: add this key" in found
    assert all(p.startswith("deployments/dev/env.yaml: apps[2].") for p in found), found


def test_an_item_named_twice_in_one_file_is_an_error_not_a_silent_merge(repo: Path) -> None:
    edit(repo, DEV, lambda d: d["apps"].append({"name": "echo", "args": {"repeat": 3}}))
    assert problems(repo, ["dev"]) == [
        "deployments/dev/env.yaml: apps[echo]: got 'echo' twice; an item of a list that merges by name is stated once"
        " per file; the second merged into the first. Hint: make the two items one, or rename one"
    ]


def test_a_new_item_named_twice_in_one_file_is_an_error_not_a_traceback(repo: Path) -> None:
    new = {"name": "new", "import_path": "tests.fixtures.echo_app:app_builder", "route_prefix": "/new"}
    edit(repo, DEV, lambda d: d["apps"].extend([new, {**new, "route_prefix": "/again"}]))
    assert "deployments/dev/env.yaml: apps[new]: got 'new' twice;" in problems(repo, ["dev"])[0]


def test_keys_of_a_replaced_value_are_the_replacing_files_not_the_replaced_ones(repo: Path) -> None:
    # dev clears apps; an environment extending dev states an app again, partly: what it lacks is its own to add,
    # though base once set those keys.
    edit(repo, DEV, lambda d: d.update(apps=None))
    edit(repo, "deployments/dev-us/env.yaml", lambda d: d.update(extends="dev", apps=[{"name": "echo"}]))
    found = problems(repo, ["dev-us"])
    missing = "deployments/dev-us/env.yaml: apps[echo].import_path: got nothing; field required. Hint: add this key"
    assert missing in found
    assert not [p for p in found if p.startswith("deployments/base/")], found
