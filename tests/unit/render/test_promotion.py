"""Promotion: the guard (allowed and refused differences, with messages), history, and the promote round trip."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from render.cli import main
from render.errors import SpecError
from render.review.promotion import History, Policy, load_policy, matches, promote, promoted_uri, promotion_problems
from render.spec.load import load_specs
from tests.unit.render.conftest import app, edit

BASE_SHA = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
POLICY = """\
order: [dev, prod]
may_differ:
  - env.name
  - env.tier
  - env.target
  - env.secrets
  - env.serve
  - head_group
  - worker_groups
  - apps[*].deployments[*].num_replicas
  - apps[*].deployments[*].autoscaling_config
  - apps[*].deployments[*].ray_actor_options
may_differ_into:
  prod: [env.image, "apps[*].model.uri"]
promote:
  - apps[*].model
  - apps[*].args
  - env.image.digest
"""


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout


def commit(repo: Path, message: str) -> None:
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "-m", message)


@pytest.fixture
def policed(repo: Path) -> Path:
    """The fixture repo with a dev → prod policy, prod already running dev's args: it passes the guard."""
    (repo / "deployments/promotion.yaml").write_text(POLICY)
    edit(repo, "deployments/prod/env.yaml", lambda d: app(d, "echo").update(args={"repeat": 2}))
    return repo


def guard(repo: Path) -> list[str]:
    policy = load_policy(repo)
    assert policy is not None
    return [str(p) for p in promotion_problems(repo, load_specs(repo), policy, History(repo))]


def test_only_allowed_keys_differ(policed: Path) -> None:
    assert guard(policed) == []


def test_a_model_hash_the_earlier_env_never_had_is_refused(policed: Path) -> None:
    edit(policed, "deployments/prod/env.yaml", lambda d: app(d, "echo").update(model={"sha256": "a" * 64}))
    assert guard(policed) == [
        f"deployments/prod/env.yaml: apps[echo].model.sha256: got '{'a' * 64}' in prod, '{BASE_SHA}' in dev; prod may"
        " only run what dev ran, and dev never had this value (its spec now and in 0 commit(s) of deployments/"
        " history). Hint: promote with `nox -s promote -- dev prod`, make them equal, or let the key differ in"
        " deployments/promotion.yaml (may_differ)"
    ]


def test_a_missing_arg_is_a_difference_too(repo: Path) -> None:
    (repo / "deployments/promotion.yaml").write_text(POLICY)
    assert guard(repo) == [
        "deployments/prod/env.yaml: apps[echo].args.repeat: got (absent) in prod, 2 in dev; prod may only run what dev"
        " ran, and dev never had this value (its spec now and in 0 commit(s) of deployments/ history). Hint: promote"
        " with `nox -s promote -- dev prod`, make them equal, or let the key differ in deployments/promotion.yaml"
        " (may_differ)"
    ]


def test_a_later_env_may_lag_behind_to_a_value_the_earlier_held(policed: Path) -> None:
    git(policed, "init", "-q")
    commit(policed, "dev and prod run the base model")
    edit(policed, "deployments/dev/env.yaml", lambda d: app(d, "echo").update(model={"sha256": "b" * 64}))
    commit(policed, "dev tries a new model")
    assert guard(policed) == []
    edit(policed, "deployments/prod/env.yaml", lambda d: app(d, "echo").update(model={"sha256": "c" * 64}))
    [problem] = guard(policed)
    assert "got 'cccc" in problem and "in 2 commit(s) of deployments/ history" in problem


def test_a_later_env_may_leave_out_an_app(policed: Path) -> None:
    extra: dict[str, Any] = {
        "name": "extra",
        "import_path": "tests.fixtures.echo_app:app_builder",
        "route_prefix": "/extra",
        "slo": {"p95_ms": 10, "error_rate": 0.1, "min_rps": 1},
        "deployments": [{"name": "Echo", "num_replicas": 1}],
    }
    edit(policed, "deployments/dev/env.yaml", lambda d: d["apps"].append(extra))
    assert guard(policed) == []


def test_render_fails_with_both_values_and_writes_nothing(policed: Path, capsys: pytest.CaptureFixture[str]) -> None:
    edit(policed, "deployments/prod/env.yaml", lambda d: app(d, "echo").update(model={"sha256": "a" * 64}))
    assert main(["--root", str(policed), "render"]) == 1
    err = capsys.readouterr().err
    assert f"apps[echo].model.sha256: got '{'a' * 64}' in prod, '{BASE_SHA}' in dev;" in err
    assert "1 problem(s) in the spec; nothing was written." in err
    assert not (policed / "rendered").exists()


def test_every_environment_needs_a_place(policed: Path) -> None:
    policy = POLICY.replace("order: [dev, prod]", "order: [dev]").split("may_differ_into")[0] + "promote: [x]\n"
    (policed / "deployments/promotion.yaml").write_text(policy)
    assert guard(policed) == [
        "deployments/promotion.yaml: order: got no place for 'prod'; every environment has a place in the promotion"
        " order. Hint: add prod to order, or to followers as `prod: <the environment it runs like>`"
    ]


def test_a_malformed_key_path_is_refused(policed: Path) -> None:
    (policed / "deployments/promotion.yaml").write_text(POLICY.replace("  - head_group\n", "  - head_group..cpus\n"))
    with pytest.raises(SpecError, match=r"promotion.yaml: may_differ.5: got 'head_group..cpus'; a key path is dotted"):
        load_policy(policed)


@pytest.mark.parametrize(
    ("pattern", "path", "expected"),
    [
        ("worker_groups", "worker_groups[cpu].max_replicas", True),
        ("apps[*].deployments[*].autoscaling_config.*", "apps[a].deployments[B].autoscaling_config.max_replicas", True),
        ("apps[*].model.uri", "apps[a].model.sha256", False),
        ("apps[*]", "apps.x", False),
        ("env.image", "env.image.digest", True),
    ],
)
def test_key_path_patterns(pattern: str, path: str, expected: bool) -> None:
    assert matches(pattern, path) is expected


@pytest.mark.parametrize(
    ("source", "target", "expected"),
    [
        ("file://models/zero_shot/v2.onnx", "s3://acme-models/zero_shot/v1.onnx", "s3://acme-models/zero_shot/v2.onnx"),
        ("s3://staging-models/iris/v2.onnx", "s3://prod-models/iris/v1.onnx", "s3://prod-models/iris/v2.onnx"),
        ("file://models/iris/v2.onnx", "file://models/iris/v1.onnx", "file://models/iris/v2.onnx"),
    ],
)
def test_a_promoted_model_keeps_the_target_bucket(source: str, target: str, expected: str) -> None:
    assert promoted_uri(source, target, "deployments/prod/env.yaml") == expected


def test_a_later_env_reading_a_local_file_is_refused() -> None:
    with pytest.raises(SpecError, match=r"a later environment reads models from a bucket, not a local file"):
        promoted_uri("s3://m/x.onnx", "file://models/x.onnx", "deployments/prod/env.yaml")


def test_promote_round_trip(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--root", str(repo), "render"]) == 0  # no policy yet
    (repo / "deployments/promotion.yaml").write_text(POLICY)
    assert main(["--root", str(repo), "render"]) == 1  # prod lacks dev's args: refused
    prod = repo / "deployments/prod/env.yaml"
    prod.write_text("# prod: keep this comment\n" + prod.read_text())
    new_model = {"uri": "file://models/echo/echo-v2.bin", "sha256": "c" * 64}
    edit(repo, "deployments/dev/env.yaml", lambda d: app(d, "echo").update(model=new_model))
    git(repo, "init", "-q")
    commit(repo, "dev runs echo v2")
    capsys.readouterr()

    assert main(["--root", str(repo), "promote", "dev", "prod"]) == 0
    out, err = capsys.readouterr()
    text = prod.read_text()
    assert text.startswith("# prod: keep this comment\nenv:\n  tier: prod\n")
    assert "      sha256: " + "c" * 64 in text
    assert "      uri: s3://models/echo/echo-v2.bin" in text
    assert "    args:\n      repeat: 2" in text
    assert "deployments/prod/env.yaml: apps[echo].args.repeat: (absent) → 2" in err
    assert "| `rendered/prod/ray.io.RayService-models.yaml` | changed | **in-place Serve update** |" in out
    assert (
        f"- `echo / args.model.sha256`: {BASE_SHA} → {'c' * 64} (app redeployed: its replicas restart (rolling))" in out
    )
    assert guard(repo) == []
    assert main(["--root", str(repo), "render", "--check"]) == 0


def test_promote_states_only_what_the_target_would_not_inherit(policed: Path) -> None:
    edit(policed, "deployments/prod/env.yaml", lambda d: app(d, "echo").update(model={"sha256": "d" * 64}))
    assert main(["--root", str(policed), "promote", "dev", "prod"]) == 0
    text = (policed / "deployments/prod/env.yaml").read_text()
    assert "model:" not in text
    assert load_specs(policed, ["prod"])["prod"].apps[0].model.sha256 == BASE_SHA  # type: ignore[union-attr]


def test_promote_goes_one_step(policed: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--root", str(policed), "promote", "prod", "dev"]) == 1
    assert capsys.readouterr().err.startswith(
        "deployments/promotion.yaml: order: got prod → dev; promotion goes one step, from an environment to the next."
        " Hint: follow the order: dev → prod"
    )


NEW_MODEL = {"uri": "file://models/echo/echo-v2.bin", "sha256": "c" * 64}


@pytest.fixture
def followed(policed: Path) -> Path:
    """`policed` plus prod-two, which follows prod: prod's apps in a namespace of its own, extending base."""
    shutil.copytree(policed / "deployments/prod", policed / "deployments/prod-two")

    def own_place(d: dict[str, Any]) -> None:
        d["env"]["target"].update(namespace="serving-two", rayservice_name="models-two")
        d["env"]["target"]["service_account"]["iam_role_arn"] = "arn:aws:iam::333333333333:role/serving-prod-two"
        d["env"]["target"]["gcs_fault_tolerance"]["external_storage_namespace"] = "models-prod-two"

    edit(policed, "deployments/prod-two/env.yaml", own_place)
    (policed / "deployments/promotion.yaml").write_text(
        POLICY.replace("order: [dev, prod]\n", "order: [dev, prod]\nfollowers:\n  prod-two: prod\n")
    )
    edit(policed, "deployments/dev/env.yaml", lambda d: app(d, "echo").update(model=NEW_MODEL))
    return policed


def test_followers_of_an_environment_include_their_own_followers() -> None:
    policy = Policy(order=["a", "b"], followers={"b2": "b", "b3": "b2", "a2": "a"}, promote=["apps[*].model"])
    assert policy.followers_of("b") == ["b2", "b3"]
    assert policy.followers_of("b3") == []


def test_promote_carries_the_change_to_the_followers_of_the_target(followed: Path) -> None:
    promotions = promote(followed, "dev", "prod")
    assert [(p.env, p.file) for p in promotions] == [
        ("prod", "deployments/prod/env.yaml"),
        ("prod-two", "deployments/prod-two/env.yaml"),
    ]
    for promotion in promotions:
        assert promotion.changes == (
            f"apps[echo].model.sha256: '{BASE_SHA}' → '{'c' * 64}'",
            "apps[echo].model.uri: 's3://models/echo.bin' → 's3://models/echo/echo-v2.bin'",
        )
    specs = load_specs(followed)
    assert {specs[env].apps[0].model.sha256 for env in ("prod", "prod-two")} == {"c" * 64}  # type: ignore[union-attr]
    assert guard(followed) == []


def test_a_follower_that_extends_its_leader_inherits_the_change(followed: Path) -> None:
    edit(followed, "deployments/prod-two/env.yaml", lambda d: d.update(extends="prod"))
    before = (followed / "deployments/prod-two/env.yaml").read_text()
    [_, follower] = promote(followed, "dev", "prod")
    assert follower.changes  # it changes, through prod's overlay: its own file states nothing new
    assert not follower.rewrites
    assert (followed / "deployments/prod-two/env.yaml").read_text() == before
    assert load_specs(followed, ["prod-two"])["prod-two"].apps[0].model.sha256 == "c" * 64  # type: ignore[union-attr]


def test_promote_says_which_environments_it_carried_the_change_to(
    followed: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--root", str(followed), "promote", "dev", "prod"]) == 0
    err = capsys.readouterr().err
    assert "promoting dev into prod and into prod-two, which follow it (deployments/promotion.yaml)" in err
    for file in ("deployments/prod/env.yaml", "deployments/prod-two/env.yaml"):
        assert f"{file}: apps[echo].model.sha256: '{BASE_SHA}' → '{'c' * 64}'" in err
    assert main(["--root", str(followed), "render", "--check"]) == 0


def test_a_follower_that_breaks_the_policy_stops_the_whole_step_and_nothing_is_written(followed: Path) -> None:
    edit(followed, "deployments/prod-two/env.yaml", lambda d: app(d, "echo").update(route_prefix="/elsewhere"))
    before = {env: (followed / f"deployments/{env}/env.yaml").read_text() for env in ("prod", "prod-two")}
    with pytest.raises(SpecError, match=r"deployments/prod-two/env.yaml: apps\[echo\].route_prefix: got '/elsewhere'"):
        promote(followed, "dev", "prod")
    assert {env: (followed / f"deployments/{env}/env.yaml").read_text() for env in before} == before


def test_promote_says_when_a_follower_takes_the_change_through_what_it_extends(
    followed: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    edit(followed, "deployments/prod-two/env.yaml", lambda d: d.update(extends="prod"))
    assert main(["--root", str(followed), "promote", "dev", "prod"]) == 0
    err = capsys.readouterr().err
    assert f"deployments/prod/env.yaml: apps[echo].model.sha256: '{BASE_SHA}' → '{'c' * 64}'" in err
    assert f"prod-two, through the environment it extends: apps[echo].model.sha256: '{BASE_SHA}' → '{'c' * 64}'" in err
