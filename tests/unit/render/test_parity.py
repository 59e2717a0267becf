"""The parity report: every spec field, for every target, says how the target honours it."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any, get_args, get_origin

import pytest
from pydantic import BaseModel

from render import parity
from render.pipeline import render_repo
from render.spec.load import load_specs
from render.spec.models import Spec
from render.targets import BUILDERS, ecs
from render.targets.base import TargetConfigBase
from tests.golden_tree import FIXTURE_REPO, TARGETS_REPO, render_fixture
from tests.unit.render.conftest import edit

# One environment per target variant: (fixture repo, env).
ENVS = {
    "kuberay": (FIXTURE_REPO, "prod"),
    "ecs-fargate": (TARGETS_REPO, "fargate"),
    "ecs-ec2": (TARGETS_REPO, "ec2-gpu"),
    "cloudrun": (TARGETS_REPO, "run"),
    "cloudrun-native": (TARGETS_REPO, "run-gpu"),
}
ROW = re.compile(
    r"^\| `(?P<path>[^`]+)` \| (?P<support>[^|]+) \| (?P<how>.*) \| (?P<stated>here|inherited)? \|$", re.MULTILINE
)


@pytest.fixture(scope="module")
def rendered() -> dict[Path, dict[str, str]]:
    return {repo: render_fixture(repo) for repo in {FIXTURE_REPO, TARGETS_REPO}}


def expected_paths(model: type[BaseModel], prefix: str, target: type[BaseModel]) -> set[str]:
    """Leaf field paths of `model`, written independently of render/parity.py's walker: lists and mappings of
    models are walked into (`[]`, `.<key>`), of anything else they are leaves."""
    return {
        p for name, field in model.model_fields.items() for p in _leaves(field.annotation, f"{prefix}{name}", target)
    }


def _leaves(annotation: Any, path: str, target: type[BaseModel]) -> set[str]:
    args = [a for a in get_args(annotation) if a is not type(None)]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return expected_paths(annotation, f"{path}.", target)
    if any(isinstance(a, type) and issubclass(a, TargetConfigBase) for a in args):
        return expected_paths(target, f"{path}.", target)
    if get_origin(annotation) is list and _holds_model(args[0]):
        return _leaves(args[0], f"{path}[]", target)
    if get_origin(annotation) is dict and _holds_model(args[1]):
        return _leaves(args[1], f"{path}.<key>", target)
    if get_origin(annotation) not in (list, dict) and len(args) == 1:
        return _leaves(args[0], path, target)
    return {path}


def _holds_model(annotation: Any) -> bool:
    inside = [annotation, *get_args(annotation)]
    return any(isinstance(a, type) and issubclass(a, BaseModel) for a in inside)


def table(text: str) -> dict[str, dict[str, Any]]:
    return {m["path"]: m.groupdict() for m in ROW.finditer(text.split("## Fields", 1)[1])}


@pytest.mark.parametrize("variant", ENVS)
def test_every_spec_field_appears_in_the_report(variant: str, rendered: dict[Path, dict[str, str]]) -> None:
    repo, env = ENVS[variant]
    spec_target = type(_target(repo, env))
    rows = table(rendered[repo][f"{env}/PARITY.md"])
    assert set(rows) == expected_paths(Spec, "", spec_target)
    assert all(row["how"].strip() for row in rows.values())


def _target(repo: Path, env: str) -> TargetConfigBase:
    return load_specs(repo, [env])[env].env.target


def test_every_target_has_a_fixture_env() -> None:
    kinds = {_target(repo, env).target_kind() for repo, env in ENVS.values()}
    assert kinds == set(BUILDERS), f"{sorted(set(BUILDERS) - kinds)} missing in tests/fixtures (ENVS above)"


def test_ecs_reports_its_approximations(rendered: dict[Path, dict[str, str]]) -> None:
    rows = table(rendered[TARGETS_REPO]["ec2-gpu/PARITY.md"])
    gpu = rows["apps[].deployments[].ray_actor_options.num_gpus"]
    assert gpu["support"].strip() == "approximated"
    assert "fractional GPU → whole GPUs per task" in gpu["how"]
    scaling = rows["apps[].deployments[].autoscaling_config.max_replicas"]
    assert "per-deployment autoscaling → per-service task count" in scaling["how"]
    assert "Ray worker groups → task size" in rows["worker_groups[].num_cpus"]["how"]


def test_fargate_reports_gpu_as_refused(rendered: dict[Path, dict[str, str]]) -> None:
    rows = table(rendered[TARGETS_REPO]["fargate/PARITY.md"])
    gpu = rows["apps[].deployments[].ray_actor_options.num_gpus"]
    assert gpu["support"].strip() == "refused if set"
    assert gpu["how"].startswith("values above 0, by ecs_fargate_has_no_gpu:")


def test_the_report_marks_where_fields_are_set_and_lists_those_ignored(rendered: dict[Path, dict[str, str]]) -> None:
    text = rendered[TARGETS_REPO]["fargate/PARITY.md"]
    rows = table(text)
    assert rows["head_group.node_selector"]["stated"] == "here"
    assert rows["worker_groups[].node_type"]["stated"] == "inherited"
    assert rows["head_group.num_cpus"]["stated"] is None
    set_here = text.split("## Set here, ignored by ecs", 1)[1].split("##", 1)[0]
    assert "- `head_group.node_selector` (deployments/fargate/env.yaml): no Kubernetes nodes: ignored" in set_here
    inherited = text.split("## Inherited, ignored by ecs", 1)[1].split("##", 1)[0]
    assert "- `worker_groups[].node_type` (deployments/base/env.yaml): Fargate picks the host: ignored" in inherited
    assert "head_group.num_cpus" not in set_here + inherited


def test_the_summary_counts_and_warns_about_ignored_fields_set_here() -> None:
    lines = render_repo(TARGETS_REPO, None, ["fargate"]).parity
    assert lines == [
        "parity of fargate (ecs): 41 exact, 15 approximated, 12 ignored, 3 refused if set, 6 not deployed;"
        " ecs ignores 2 inherited setting(s); see rendered/fargate/PARITY.md",
        "warning: fargate: head_group.node_selector is set in deployments/fargate/env.yaml but ecs cannot honour it:"
        " no Kubernetes nodes: ignored",
    ]


def test_no_level_of_the_summary_calls_itself_an_error_or_a_warning() -> None:
    lines = render_repo(TARGETS_REPO, None).parity + render_repo(FIXTURE_REPO, None).parity
    counts = [line.split(": ", 1)[1] for line in lines if line.startswith("parity of ")]
    assert len(counts) == 6
    assert not [c for c in counts if "error" in c or "warning" in c or "not supported" in c]


def test_kuberay_is_exact_but_for_the_other_cloud_s_secrets(rendered: dict[Path, dict[str, str]]) -> None:
    rows = table(rendered[FIXTURE_REPO]["prod/PARITY.md"])
    inexact = {p for p, r in rows.items() if r["support"].strip() not in ("exact", "not deployed")}
    assert inexact == {"env.secrets.<key>.gcp_secret_manager", "apps[].secrets.<key>.gcp_secret_manager"}


def test_a_field_a_target_says_nothing_about_fails_the_render(monkeypatch: pytest.MonkeyPatch) -> None:
    original = ecs._parity

    def forgetful(target: ecs.EcsTargetConfig) -> dict[str, Any]:
        declared = original(target)
        del declared["worker_groups[].node_type"]
        return declared

    monkeypatch.setattr(ecs, "_parity", forgetful)
    with pytest.raises(parity.ParityGap, match=r"the ecs target declares nothing about spec field\(s\) worker_groups"):
        render_repo(TARGETS_REPO, None, ["fargate"])


def test_an_ignored_setting_the_env_inherits_is_counted_and_listed_not_warned_about(tmp_path: Path) -> None:
    shutil.copytree(TARGETS_REPO, tmp_path / "repo")
    edit(tmp_path / "repo", "deployments/base/env.yaml", lambda d: d.update(head_group={"memory_gib": 4}))
    rendered = render_repo(tmp_path / "repo", None, ["run"])
    assert not [line for line in rendered.parity if line.startswith("warning:")]
    assert "; cloudrun ignores 3 inherited setting(s);" in rendered.parity[0]
    row = table(rendered.files["run/PARITY.md"])["head_group.memory_gib"]
    assert (row["support"].strip(), row["stated"]) == ("ignored", "inherited")
    assert "- `head_group.memory_gib` (deployments/base/env.yaml): no separate head" in rendered.files["run/PARITY.md"]


def test_the_same_setting_in_the_env_s_own_file_is_warned_about_with_that_file(tmp_path: Path) -> None:
    shutil.copytree(TARGETS_REPO, tmp_path / "repo")
    edit(tmp_path / "repo", "deployments/run/env.yaml", lambda d: d.update(head_group={"memory_gib": 4}))
    lines = render_repo(tmp_path / "repo", None, ["run"]).parity
    assert [line for line in lines if line.startswith("warning:")] == [
        "warning: run: head_group.memory_gib is set in deployments/run/env.yaml but cloudrun cannot honour it: no"
        " separate head: the instance is one Ray node sized from the app's deployments (see Sizing), plus a fixed Ray"
        " overhead"
    ]


def test_an_overlay_adding_one_key_to_an_inherited_mapping_sets_that_field_here(tmp_path: Path) -> None:
    shutil.copytree(TARGETS_REPO, tmp_path / "repo")
    edit(tmp_path / "repo", "deployments/base/env.yaml", lambda d: d.update(head_group={"node_selector": {"a": "1"}}))
    rendered = render_repo(tmp_path / "repo", None, ["fargate"])
    row = table(rendered.files["fargate/PARITY.md"])["head_group.node_selector"]
    assert row["stated"] == "here"
    assert (
        "warning: fargate: head_group.node_selector is set in deployments/fargate/env.yaml but ecs cannot honour it:"
        " no Kubernetes nodes: ignored" in rendered.parity
    )
