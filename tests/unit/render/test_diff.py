"""`render diff`: one impact label per change, each from a pair of commits in a temporary git repo; the
structural serveConfigV2 diff; where the old side comes from; the Markdown report."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from render.cli import main
from render.pipeline import render_repo
from render.review.cost import load_price_book
from render.review.diff import EnvDiff, ObjectChange, compare
from render.review.impact import IGNORED_EFFECT, IN_PLACE_EFFECT, REDEPLOY_EFFECT, RESTART_EFFECT, serve_changes
from render.review.snapshot import GitError, snapshot
from render.write import write_tree
from tests.golden_tree import FIXTURE_REPO
from tests.unit.render.conftest import deployment, edit

PROJECT = Path(__file__).parents[3]
DEV_RAYSERVICE = "dev/ray.io.RayService-serving.yaml"


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout


def commit(repo: Path, message: str, render: bool = True) -> None:
    """Commit everything, rendered/ re-rendered first unless `render` is False (as `nox -s render` would)."""
    if render:
        write_tree(render_repo(repo, None).files, repo / "rendered")
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "-m", message)


@pytest.fixture
def history(tmp_path: Path) -> Path:
    """A git repo of the fixture specs with rendered/ committed: one commit."""
    repo = tmp_path / "repo"
    shutil.copytree(FIXTURE_REPO, repo)
    git(repo, "init", "-q")
    commit(repo, "base")
    return repo


def changes_since(repo: Path, ref: str = "HEAD~1") -> dict[str, ObjectChange]:
    """Every changed rendered file between `ref` and the working tree, by path."""
    report = compare(snapshot(repo, ref).files, render_repo(repo, None).files, None)
    return {c.path: c for env in report for c in env.changes}


def only(changes: dict[str, ObjectChange], *paths: str) -> list[ObjectChange]:
    """The changes of `paths`, after checking nothing else changed except reports Argo CD does not apply."""
    assert {p for p, c in changes.items() if c.impact.label.name != "not deployed"} == set(paths)
    return [changes[p] for p in paths]


def test_serve_config_change_is_an_in_place_serve_update(history: Path) -> None:
    edit(
        history,
        "deployments/dev/env.yaml",
        lambda d: deployment(d, "echo").update(autoscaling_config={"max_replicas": 4}),
    )
    commit(history, "more echo replicas")
    [change] = only(changes_since(history), DEV_RAYSERVICE)
    assert change.impact.label.name == "in-place Serve update"
    assert change.impact.details == ("`echo / Echo / autoscaling_config.max_replicas`: 2 → 4 (in place)",)


def test_cluster_change_starts_a_new_raycluster_and_states_its_capacity(history: Path) -> None:
    edit(history, "deployments/dev/env.yaml", lambda d: d["env"].update(image="registry.example.com/serving:dev2"))
    commit(history, "new image")
    [change] = only(changes_since(history), DEV_RAYSERVICE)
    assert change.impact.label.name == "new RayCluster"
    assert change.impact.details == (
        "extra capacity while both RayClusters run (at least: the new cluster adds workers until every Serve replica"
        " is placed):\n"
        "  - head pod: 2 CPU, 8 GiB\n"
        "  - worker group `cpu`: 1 × m6i.xlarge (3 CPU, 12 GiB each)\n"
        "  - total: head pod + 1 worker node(s), 5 CPU, 20 GiB, GPUs: none",
    )


def test_worker_counts_alone_are_deferred(history: Path) -> None:
    edit(history, "deployments/dev/env.yaml", lambda d: d.update(worker_groups=[{"name": "cpu", "max_replicas": 5}]))
    commit(history, "bigger cpu group")
    [change] = only(changes_since(history), DEV_RAYSERVICE)
    assert change.impact.label.name == "deferred until the next new RayCluster"
    assert change.impact.details[0] == "worker group `cpu`: maxReplicas 3 → 5 (not applied to the running RayCluster)"


def test_serve_http_options_alone_are_deferred(history: Path) -> None:
    edit(history, "deployments/dev/env.yaml", lambda d: d["env"].update(serve={"request_timeout_s": 60}))
    commit(history, "longer timeout")
    [change] = only(changes_since(history), DEV_RAYSERVICE)
    assert change.impact.label.name == "deferred until the next new RayCluster"
    assert change.impact.details == (f"`http_options.request_timeout_s`: (unset) → 60.0 ({IGNORED_EFFECT})",)


def test_appended_worker_group_updates_the_raycluster_in_place(history: Path) -> None:
    group = {
        "name": "big",
        "node_type": "m6i.2xlarge",
        "min_replicas": 0,
        "max_replicas": 2,
        "num_cpus": 7,
        "memory_gib": 28,
    }
    edit(history, "deployments/dev/env.yaml", lambda d: d.update(worker_groups=[group]))
    commit(history, "a second group")
    [change] = only(changes_since(history), DEV_RAYSERVICE)
    assert change.impact.label.name == "RayCluster updated in place"


def test_argocd_objects_are_wiring(history: Path) -> None:
    edit(history, "deployments/base/env.yaml", lambda d: d["env"]["gitops"].update(revision="release"))
    commit(history, "track the release branch")
    changes = only(
        changes_since(history),
        "argocd/argoproj.io.Application-serving-dev.yaml",
        "argocd/argoproj.io.Application-serving-prod.yaml",
    )
    assert {c.impact.label.name for c in changes} == {"Argo CD wiring"}


def test_labels_nothing_reads_have_no_effect(history: Path) -> None:
    # The committed tree carries a label the spec does not render: the diff removes it, and nothing reads it.
    account = history / "rendered/dev/v1.ServiceAccount-serving.yaml"
    data = yaml.safe_load(account.read_text())
    data["metadata"]["labels"]["team"] = "ml"
    account.write_text(yaml.safe_dump(data))
    commit(history, "hand-edited label", render=False)
    [change] = only(changes_since(history, "HEAD"), "dev/v1.ServiceAccount-serving.yaml")
    assert change.impact.label.name == "no effect"
    assert change.impact.details == ("metadata.labels.team",)


def test_irsa_annotation_is_read_at_run_time(history: Path) -> None:
    role = "arn:aws:iam::111111111111:role/serving-dev-2"
    edit(history, "deployments/dev/env.yaml", lambda d: d["env"]["target"]["service_account"].update(iam_role_arn=role))
    commit(history, "new role")
    old_role, new_role, old_policy, new_policy, account = only(
        changes_since(history),
        "dev/iam.services.k8s.aws.Role-serving-dev.yaml",
        "dev/iam.services.k8s.aws.Role-serving-dev-2.yaml",
        "dev/iam.services.k8s.aws.Policy-serving-dev-models-read.yaml",
        "dev/iam.services.k8s.aws.Policy-serving-dev-2-models-read.yaml",
        "dev/v1.ServiceAccount-serving.yaml",
    )
    assert account.impact.label.name == "in-place update"
    assert [c.impact.label.name for c in (old_role, new_role, old_policy, new_policy)] == [
        "deleted",
        "created",
        "deleted",
        "created",
    ]


def ack(kind: str, name: str, spec: dict[str, Any]) -> str:
    group = "applicationautoscaling" if kind == "ScalableTarget" else "ecs"
    return yaml.safe_dump(
        {"apiVersion": f"{group}.services.k8s.aws/v1alpha1", "kind": kind, "metadata": {"name": name}, "spec": spec}
    )


def run_service(template: dict[str, Any], traffic: int = 100) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "run.cnrm.cloud.google.com/v1beta1",
            "kind": "RunService",
            "metadata": {"name": "env-iris"},
            "spec": {
                "template": template,
                "traffic": [{"percent": traffic, "type": "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST"}],
            },
        }
    )


def labels(report: list[EnvDiff]) -> dict[str, str]:
    return {c.path: c.impact.label.name for e in report for c in e.changes}


def test_ecs_task_definition_change_is_a_new_revision() -> None:
    # The ecs target names a task definition after a hash of its content: a change is a new object and a new ref.
    old = {
        "ecs/ecs.services.k8s.aws.TaskDefinition-iris-aaa.yaml": ack("TaskDefinition", "iris-aaa", {"cpu": "1024"}),
        "ecs/ecs.services.k8s.aws.Service-iris.yaml": ack(
            "Service", "iris", {"taskDefinitionRef": {"from": {"name": "iris-aaa"}}, "desiredCount": 1}
        ),
    }
    new = {
        "ecs/ecs.services.k8s.aws.TaskDefinition-iris-bbb.yaml": ack("TaskDefinition", "iris-bbb", {"cpu": "2048"}),
        "ecs/ecs.services.k8s.aws.Service-iris.yaml": ack(
            "Service", "iris", {"taskDefinitionRef": {"from": {"name": "iris-bbb"}}, "desiredCount": 1}
        ),
    }
    assert labels(compare(old, new, None)) == {
        "ecs/ecs.services.k8s.aws.Service-iris.yaml": "new ECS task definition revision (rolling)",
        "ecs/ecs.services.k8s.aws.TaskDefinition-iris-aaa.yaml": "deleted",
        "ecs/ecs.services.k8s.aws.TaskDefinition-iris-bbb.yaml": "new ECS task definition revision (rolling)",
    }


def test_ecs_desired_count_and_scaling_bounds_change_in_place() -> None:
    service = "ecs/ecs.services.k8s.aws.Service-iris.yaml"
    target = "ecs/applicationautoscaling.services.k8s.aws.ScalableTarget-iris.yaml"
    old = {
        service: ack("Service", "iris", {"desiredCount": 1}),
        target: ack("ScalableTarget", "iris", {"maxCapacity": 2}),
    }
    new = {
        service: ack("Service", "iris", {"desiredCount": 2}),
        target: ack("ScalableTarget", "iris", {"maxCapacity": 4}),
    }
    assert set(labels(compare(old, new, None)).values()) == {"in-place update"}


def test_cloud_run_template_change_is_a_new_revision_and_traffic_is_not() -> None:
    path = "run/run.cnrm.cloud.google.com.RunService-env-iris.yaml"
    template = {"containers": [{"image": "a@sha256:1"}]}
    assert labels(
        compare({path: run_service(template)}, {path: run_service({"containers": [{"image": "a@sha256:2"}]})}, None)
    ) == {path: "new Cloud Run revision"}
    assert labels(compare({path: run_service(template)}, {path: run_service(template, traffic=50)}, None)) == {
        path: "in-place update"
    }


def test_files_argo_cd_does_not_apply_are_not_deployed() -> None:
    old = {"ecs/PARITY.md": "a\n", "ecs/native/iris/ecs.CreateService.json": "{}"}
    new = {"ecs/PARITY.md": "b\n", "ecs/native/iris/ecs.CreateService.json": '{"a": 1}'}
    assert set(labels(compare(old, new, None)).values()) == {"not deployed"}


def serve(apps: list[dict[str, Any]], timeout: float = 30) -> dict[str, Any]:
    return {"proxy_location": "EveryNode", "http_options": {"request_timeout_s": timeout}, "applications": apps}


def app(name: str = "zero-shot", sha: str = "a" * 64, **deployment: Any) -> dict[str, Any]:
    return {
        "name": name,
        "import_path": "serve_apps.zero_shot.app:app_builder",
        "route_prefix": f"/{name}",
        "args": {"model": {"uri": "s3://m/x.onnx", "sha256": sha}},
        "deployments": [{"name": "ZeroShotClassifier", "max_ongoing_requests": 8, **deployment}],
    }


def test_serve_diff_is_per_app_per_deployment_per_field() -> None:
    old = serve([app(autoscaling_config={"min_replicas": 1, "max_replicas": 4}), app("iris")])
    new = serve(
        [
            app(autoscaling_config={"min_replicas": 1, "max_replicas": 8}, ray_actor_options={"num_cpus": 2}),
            app("tabular"),
        ],
        timeout=60,
    )
    assert [str(c) for c in serve_changes(old, new)] == [
        f"`http_options.request_timeout_s`: 30 → 60 ({IGNORED_EFFECT})",
        "`iris`: app → (removed) (Serve deletes the app)",
        "`tabular`: (none) → app (Serve deploys the app)",
        f"`zero-shot / ZeroShotClassifier / autoscaling_config.max_replicas`: 4 → 8 ({IN_PLACE_EFFECT})",
        f"`zero-shot / ZeroShotClassifier / ray_actor_options.num_cpus`: (unset) → 2 ({RESTART_EFFECT})",
    ]


def test_serve_diff_of_a_model_hash_redeploys_the_app() -> None:
    [change] = serve_changes(serve([app(sha="a" * 64)]), serve([app(sha="b" * 64)]))
    assert str(change) == f"`zero-shot / args.model.sha256`: {'a' * 64} → {'b' * 64} ({REDEPLOY_EFFECT})"


def test_user_config_is_applied_in_place() -> None:
    [change] = serve_changes(serve([app(user_config={"threshold": 0.5})]), serve([app(user_config={"threshold": 0.7})]))
    assert change.effect == IN_PLACE_EFFECT


def test_report_is_markdown_for_a_pull_request(history: Path, capsys: pytest.CaptureFixture[str]) -> None:
    edit(
        history,
        "deployments/dev/env.yaml",
        lambda d: deployment(d, "echo").update(autoscaling_config={"max_replicas": 4}),
    )
    commit(history, "more echo replicas")
    capsys.readouterr()
    assert main(["--root", str(history), "diff", "HEAD~1"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("## Rendered changes: `HEAD~1` (")
    assert "| `rendered/dev/ray.io.RayService-serving.yaml` | changed | **in-place Serve update** |" in out
    assert "--- a/rendered/dev/ray.io.RayService-serving.yaml\n+++ b/rendered/dev/ray.io.RayService-serving.yaml" in out
    assert "Cost per month: not estimated (no clusters/prices.yaml: cost not estimated)." in out
    assert "Unchanged: `prod`, `argocd`." in out


def test_unknown_ref_is_a_clear_error(history: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--root", str(history), "diff", "no-such-branch"]) == 1
    assert "error: 'no-such-branch' names no commit in" in capsys.readouterr().err


def copy_renderer(repo: Path) -> None:
    """Put the renderer and the fixture app beside the specs, as a repository that does not commit rendered/."""
    ignore = shutil.ignore_patterns("__pycache__")
    for package in ("render", "serve_apps"):
        shutil.copytree(PROJECT / package, repo / package, ignore=ignore)
    (repo / "tests/fixtures").mkdir(parents=True)
    for name in ("tests/__init__.py", "tests/fixtures/__init__.py", "tests/fixtures/echo_app.py"):
        shutil.copy(PROJECT / name, repo / name)


def test_ref_without_rendered_tree_is_rendered_by_its_own_renderer(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(FIXTURE_REPO, repo)
    copy_renderer(repo)
    git(repo, "init", "-q")
    commit(repo, "specs and renderer, no rendered/", render=False)
    old = snapshot(repo, "HEAD")
    assert old.source.startswith("rendered by the renderer of ")
    assert old.files == render_repo(repo, None).files
    assert len(git(repo, "worktree", "list").splitlines()) == 1


def test_worktree_is_removed_when_the_old_renderer_fails(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(FIXTURE_REPO, repo)
    copy_renderer(repo)
    edit(repo, "deployments/dev/env.yaml", lambda d: d["env"].update(tier="qa"))
    git(repo, "init", "-q")
    commit(repo, "a broken spec", render=False)
    with pytest.raises(GitError, match=r"the renderer of that commit failed \(exit 1\):\n.*env.tier: got 'qa'"):
        snapshot(repo, "HEAD")
    assert len(git(repo, "worktree", "list").splitlines()) == 1


def test_ref_with_neither_rendered_tree_nor_renderer_is_refused(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(FIXTURE_REPO, repo)
    git(repo, "init", "-q")
    commit(repo, "specs only", render=False)
    with pytest.raises(GitError, match=r"has neither rendered/ nor a renderer"):
        snapshot(repo, "HEAD")


def test_cost_delta_and_extra_capacity_are_priced_in_the_environments_region(history: Path) -> None:
    # dev runs on eks-test, in eu-west-1: head and one cpu node, 2 x m6i.xlarge at eu-west-1's $0.2/h (not $0.1/h).
    (history / "clusters/prices.yaml").write_text(
        "regions:\n"
        "  eu-west-1: {ec2: {m6i.xlarge: {usd_per_hour: 0.2, source: test, as_of: 2026-01-01}}}\n"
        "  us-east-1: {ec2: {m6i.xlarge: {usd_per_hour: 0.1, source: test, as_of: 2026-01-01}}}\n"
    )
    commit(history, "prices", render=False)
    edit(history, "deployments/dev/env.yaml", lambda d: d["env"].update(image="registry.example.com/serving:dev2"))
    commit(history, "new image")
    report = compare(snapshot(history, "HEAD~1").files, render_repo(history, None).files, load_price_book(history))
    [dev] = [e for e in report if e.env == "dev"]
    assert dev.cost is not None
    assert dev.changes[0].impact.details[0].endswith("GPUs: none; about $0.40/h at eu-west-1 list prices")
    # 2 x 0.2 x 730 = 292 at min; the cpu group's 3 nodes at max: (1 + 3) x 146 = 584; nothing moved.
    assert (dev.cost.old_min, dev.cost.new_min, dev.cost.new_max) == pytest.approx((292, 292, 584))


def test_cost_delta_without_prices_for_the_region_is_not_estimated(history: Path) -> None:
    (history / "clusters/prices.yaml").write_text(
        "regions: {us-east-1: {ec2: {m6i.xlarge: {usd_per_hour: 0.1, source: test, as_of: 2026-01-01}}}}\n"
    )
    edit(history, "deployments/dev/env.yaml", lambda d: d["env"].update(image="registry.example.com/serving:dev2"))
    report = compare(snapshot(history, "HEAD").files, render_repo(history, None).files, load_price_book(history))
    [dev] = [e for e in report if e.env == "dev"]
    assert dev.cost is not None
    assert dev.cost.error.startswith("clusters/prices.yaml: regions: got no entry for 'eu-west-1'; environment dev")
    assert dev.changes[0].impact.details[0].endswith("GPUs: none")
