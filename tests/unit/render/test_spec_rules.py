"""Every spec rule, each broken by one changed key, with its message pinned (file, key path, rule)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from render.errors import SpecError
from render.spec.load import load_specs
from tests.unit.render.conftest import app, deployment, edit, problems

DEV = "deployments/dev/env.yaml"
PROD = "deployments/prod/env.yaml"
BASE_APPS = "deployments/base/apps.yaml"
BASE_ENV = "deployments/base/env.yaml"


def only_problem(repo: Path, envs: list[str] | None = None) -> str:
    found = problems(repo, envs)
    assert len(found) == 1, found
    return found[0]


def test_fixture_repo_is_valid(repo: Path) -> None:
    assert sorted(load_specs(repo)) == ["dev", "prod"]


def test_min_replicas_le_max_replicas_autoscaling(repo: Path) -> None:
    edit(repo, DEV, lambda d: deployment(d, "echo").update(autoscaling_config={"min_replicas": 3}))
    assert only_problem(repo, ["dev"]) == (
        "deployments/dev/env.yaml: apps[echo].deployments[Echo].autoscaling_config.min_replicas: got 3; "
        "min_replicas must be <= max_replicas (2). Hint: raise max_replicas or lower min_replicas"
    )


def test_min_replicas_le_max_replicas_worker_group(repo: Path) -> None:
    edit(repo, DEV, lambda d: d.update(worker_groups=[{"name": "cpu", "max_replicas": 0}]))
    message = only_problem(repo, ["dev"])
    assert message.startswith("deployments/dev/env.yaml: worker_groups[cpu].max_replicas: got 0;")


def test_worker_group_min_gt_max_blames_the_overlay(repo: Path) -> None:
    edit(repo, DEV, lambda d: d.update(worker_groups=[{"name": "cpu", "max_replicas": 1, "min_replicas": 2}]))
    assert only_problem(repo, ["dev"]).startswith(
        "deployments/dev/env.yaml: worker_groups[cpu].min_replicas: got 2; min_replicas must be <= max_replicas (1)."
    )


def test_overlay_that_breaks_a_base_value_is_blamed(repo: Path) -> None:
    # base says min_replicas 1; the overlay lowers max below it: the overlay is the file to fix.
    edit(repo, DEV, lambda d: d.update(worker_groups=[{"name": "cpu", "max_replicas": 1}]))
    edit(repo, BASE_ENV, lambda d: d["worker_groups"][0].update(min_replicas=2))
    assert only_problem(repo, ["dev"]).startswith("deployments/dev/env.yaml: worker_groups[cpu].min_replicas: got 2;")


def test_max_ongoing_requests_ge_batch_size(repo: Path) -> None:
    edit(repo, DEV, lambda d: deployment(d, "echo").update(max_ongoing_requests=4))
    assert only_problem(repo, ["dev"]) == (
        "deployments/dev/env.yaml: apps[echo].deployments[Echo].max_ongoing_requests: got 4; "
        "max_ongoing_requests must be >= batching.max_batch_size (8). Hint: otherwise a replica never holds "
        "enough requests to fill a batch; raise max_ongoing_requests"
    )


def test_num_replicas_xor_autoscaling(repo: Path) -> None:
    edit(repo, DEV, lambda d: deployment(d, "echo").update(num_replicas=2))
    assert only_problem(repo, ["dev"]) == (
        "deployments/dev/env.yaml: apps[echo].deployments[Echo].num_replicas: got 2; set exactly one of "
        "num_replicas and autoscaling_config. Hint: an overlay that switches mode sets the other key to null"
    )


def test_neither_num_replicas_nor_autoscaling(repo: Path) -> None:
    edit(repo, DEV, lambda d: deployment(d, "echo").update(autoscaling_config=None))
    assert "apps[echo].deployments[Echo]: got None; set exactly one of num_replicas and autoscaling_config" in (
        only_problem(repo, ["dev"])
    )


def test_gpu_needs_gpu_worker_group(repo: Path) -> None:
    edit(repo, DEV, lambda d: deployment(d, "echo").update(ray_actor_options={"num_gpus": 0.5}))
    assert only_problem(repo, ["dev"]) == (
        "deployments/dev/env.yaml: apps[echo].deployments[Echo].ray_actor_options.num_gpus: got 0.5; a GPU replica "
        "needs a worker group with num_gpus > 0. Hint: add a GPU worker group (num_gpus, accelerator) or set "
        "num_gpus: 0"
    )


def test_a_replica_larger_than_every_worker_node_is_refused(repo: Path) -> None:
    # dev's one worker group: 3 CPUs / 12 GiB a node.
    edit(repo, DEV, lambda d: deployment(d, "echo").update(ray_actor_options={"num_cpus": 4}))
    assert only_problem(repo, ["dev"]) == (
        "deployments/dev/env.yaml: apps[echo].deployments[Echo].ray_actor_options.num_cpus: got 4.0; one replica of "
        "Echo needs 4 CPU and no worker node offers that (cpu: 3 CPU / 12 GiB), so Ray would never place it. Hint: "
        "lower ray_actor_options.num_cpus, or raise a worker group's num_cpus (its node_type must hold it)"
    )
    edit(repo, DEV, lambda d: deployment(d, "echo").update(ray_actor_options={"num_cpus": 3, "memory_gib": 16}))
    assert "ray_actor_options.memory_gib: got 16.0; one replica of Echo needs 3 CPU / 16 GiB" in only_problem(
        repo, ["dev"]
    )
    # As large as a node is still placeable.
    edit(repo, DEV, lambda d: deployment(d, "echo").update(ray_actor_options={"num_cpus": 3, "memory_gib": 12}))
    load_specs(repo, ["dev"])


def test_minimum_replicas_beyond_the_workers_at_max_size_are_refused(repo: Path) -> None:
    # dev's workers: at most 3 nodes of 3 CPUs / 12 GiB.
    edit(repo, DEV, lambda d: deployment(d, "echo").update(autoscaling_config={"min_replicas": 10, "max_replicas": 10}))
    message = only_problem(repo, ["dev"])
    assert message.startswith(
        "deployments/dev/env.yaml: worker_groups: got '9 CPU at max_replicas (cpu 3 x 3)'; the deployments' minimum "
        "replicas need 1"
    )
    assert "so some never start and the RayService never becomes ready" in message
    # Enough nodes at max size: the autoscaler can start them.
    edit(repo, DEV, lambda d: d.setdefault("worker_groups", []).append({"name": "cpu", "max_replicas": 4}))
    load_specs(repo, ["dev"])
    edit(repo, DEV, lambda d: deployment(d, "echo").update(ray_actor_options={"num_cpus": 0.5, "memory_gib": 5}))
    assert "got '48 GiB at max_replicas (cpu 4 x 12)'; the deployments' minimum replicas need 50 GiB" in (
        only_problem(repo, ["dev"])
    )


def test_a_gpu_replica_must_fit_a_gpu_node(repo: Path) -> None:
    # prod: a CPU group with room for 25 GiB beside the 24 GiB GPU group; a GPU replica goes to the latter only.
    def shapes(d: dict[str, Any]) -> None:
        d["worker_groups"].append(
            {
                "name": "big-cpu",
                "node_type": "m6i.2xlarge",
                "min_replicas": 0,
                "max_replicas": 1,
                "num_cpus": 6,
                "memory_gib": 26,
            }
        )
        deployment(d, "echo").update(ray_actor_options={"num_gpus": 0.25, "memory_gib": 25})

    edit(repo, PROD, shapes)
    message = only_problem(repo, ["prod"])
    assert "ray_actor_options.memory_gib: got 25.0; one replica of Echo needs 1 CPU / 25 GiB and no worker node " in (
        message
    )
    assert "with a GPU offers that (gpu: 6 CPU / 24 GiB)" in message


def test_gpu_packing_fits(repo: Path) -> None:
    # prod: one L4 node at most; 4 replicas x 0.25 fill it; a fifth does not fit.
    edit(repo, PROD, lambda d: deployment(d, "echo").update(autoscaling_config={"max_replicas": 5}))
    message = only_problem(repo, ["prod"])
    assert message.startswith(
        "deployments/prod/env.yaml: apps[echo].deployments[Echo].ray_actor_options.num_gpus: got 0.25; "
        "1 of 5 GPU replicas at max autoscale do not fit the GPU worker groups at max size (1 nodes, 1 GPUs;"
    )


def test_gpu_packing_counts_cpus_per_node(repo: Path) -> None:
    # 4 replicas x 0.25 GPU fit the GPU, but 4 x 2 CPUs do not fit a 6-CPU node.
    edit(repo, PROD, lambda d: deployment(d, "echo").update(ray_actor_options={"num_gpus": 0.25, "num_cpus": 2}))
    assert "1 of 4 GPU replicas at max autoscale do not fit" in only_problem(repo, ["prod"])


def test_gpu_packing_whole_gpus_stay_on_one_node(repo: Path) -> None:
    edit(repo, PROD, lambda d: d["worker_groups"][0].update(max_replicas=2))
    edit(
        repo,
        PROD,
        lambda d: deployment(d, "echo").update(
            autoscaling_config={"max_replicas": 1}, ray_actor_options={"num_gpus": 2}
        ),
    )
    assert "1 of 1 GPU replicas at max autoscale do not fit" in only_problem(repo, ["prod"])


def test_gpu_fraction_or_whole(repo: Path) -> None:
    edit(repo, PROD, lambda d: deployment(d, "echo").update(ray_actor_options={"num_gpus": 1.5}))
    assert only_problem(repo, ["prod"]).startswith(
        "deployments/prod/env.yaml: apps[echo].deployments[Echo].ray_actor_options.num_gpus: got 1.5; num_gpus above 1 "
        "must be a whole number."
    )


def test_accelerator_iff_gpus(repo: Path) -> None:
    edit(repo, PROD, lambda d: d["worker_groups"][0].update(accelerator=None))
    assert only_problem(repo, ["prod"]).startswith(
        "deployments/prod/env.yaml: worker_groups[gpu].accelerator: got None; "
        "a group with num_gpus=1 must name an accelerator."
    )


def test_unique_app_names(repo: Path) -> None:
    edit(repo, BASE_APPS, lambda d: d["apps"].append({**d["apps"][1], "route_prefix": "/other"}))
    assert (
        "apps[echo-two].name: got 'echo-two'; app name 'echo-two' appears more than once." in problems(repo, ["dev"])[0]
    )


def test_unique_route_prefixes(repo: Path) -> None:
    edit(repo, DEV, lambda d: app(d, "echo-two").update(route_prefix="/echo"))
    assert only_problem(repo, ["dev"]).startswith(
        "deployments/dev/env.yaml: apps[echo-two].route_prefix: got '/echo'; "
        "route_prefix '/echo' appears more than once."
    )


def test_unique_worker_group_names(repo: Path) -> None:
    edit(repo, BASE_ENV, lambda d: d["worker_groups"].append(dict(d["worker_groups"][0])))
    assert "worker group name 'cpu' appears more than once" in only_problem(repo, ["dev"])


def test_unique_deployment_names(repo: Path) -> None:
    edit(repo, BASE_APPS, lambda d: d["apps"][1]["deployments"].append(dict(d["apps"][1]["deployments"][0])))
    assert "deployment name 'Echo' appears more than once" in only_problem(repo, ["dev"])


def test_names_valid_as_kubernetes_names(repo: Path) -> None:
    edit(repo, DEV, lambda d: d["env"]["target"].update(namespace="Serving_Dev"))
    assert only_problem(repo, ["dev"]).startswith(
        "deployments/dev/env.yaml: env.target.namespace: got 'Serving_Dev'; string should match pattern"
    )


def test_rayservice_name_at_most_47_characters(repo: Path) -> None:
    edit(repo, DEV, lambda d: d["env"]["target"].update(rayservice_name="r" * 48))
    assert only_problem(repo, ["dev"]).startswith(
        f"deployments/dev/env.yaml: env.target.rayservice_name: got '{'r' * 48}'; "
        "string should have at most 47 characters."
    )


def test_sha256_is_64_hex(repo: Path) -> None:
    edit(repo, BASE_APPS, lambda d: d["apps"][0]["model"].update(sha256="abc"))
    assert only_problem(repo, ["dev"]) == (
        "deployments/base/apps.yaml: apps[echo].model.sha256: got 'abc'; value error, sha256 must be 64 lowercase hex "
        "digits (the output of `sha256sum`). Hint: see deployments/schema.json for this key"
    )


def test_image_pinned_by_digest_outside_dev(repo: Path) -> None:
    edit(repo, PROD, lambda d: d["env"].update(image="registry.example.com/serving:1.2"))
    assert only_problem(repo, ["prod"]) == (
        "deployments/prod/env.yaml: env.image: got 'registry.example.com/serving:1.2'; a prod image must be pinned by "
        "digest. Hint: use `<repository>@sha256:<64 hex digits>` (docker buildx imagetools inspect prints it)"
    )


def test_dev_image_may_use_a_tag(repo: Path) -> None:
    assert load_specs(repo, ["dev"])["dev"].env.image.endswith(":dev")


def test_cluster_is_known(repo: Path) -> None:
    edit(repo, DEV, lambda d: d["env"]["target"].update(cluster="eks-nowhere"))
    assert only_problem(repo, ["dev"]) == (
        "deployments/dev/env.yaml: env.target.cluster: got 'eks-nowhere'; the cluster is not listed in "
        "clusters/clusters.yaml. Hint: use one of: eks-prod, eks-test"
    )


def test_exactly_one_secret_source(repo: Path) -> None:
    edit(repo, PROD, lambda d: d["env"]["secrets"]["PREDICTION_DB_URL"].update(gcp_secret_manager="db-url"))
    assert "env.secrets.PREDICTION_DB_URL: got 2; a secret reference names exactly one store." in only_problem(
        repo, ["prod"]
    )


def test_secret_written_as_a_value_is_refused(repo: Path) -> None:
    edit(repo, PROD, lambda d: d["env"]["secrets"].update(PREDICTION_DB_URL="mysql://user:hunter2@db/serving"))
    message = only_problem(repo, ["prod"])
    assert message.startswith("deployments/prod/env.yaml: env.secrets.PREDICTION_DB_URL: got 'mysql://user:hunter2@db")
    assert "Hint: write a mapping of key: value" in message


def test_secret_reference_that_looks_like_a_url_is_refused(repo: Path) -> None:
    edit(repo, PROD, lambda d: d["env"]["secrets"]["PREDICTION_DB_URL"].update(aws_secrets_manager="mysql://u:p@db/x"))
    assert "env.secrets.PREDICTION_DB_URL.aws_secrets_manager: got 'mysql://u:p@db/x'; string should match pattern" in (
        only_problem(repo, ["prod"])
    )


def test_secrets_match_target_store(repo: Path) -> None:
    edit(repo, PROD, lambda d: d["env"]["secrets"].update(PREDICTION_DB_URL={"gcp_secret_manager": "db-url"}))
    assert only_problem(repo, ["prod"]).startswith(
        "deployments/prod/env.yaml: env.secrets.PREDICTION_DB_URL: got {'gcp_secret_manager': 'db-url'}; a kuberay "
        "target reads secrets from aws_secrets_manager."
    )


def test_a_secret_cannot_take_a_variable_ray_kuberay_the_process_or_the_toolkit_own(repo: Path) -> None:
    def reserved(d: dict[str, Any]) -> None:
        d["env"]["secrets"].update(PATH={"aws_secrets_manager": "p"}, RAY_ADDRESS={"aws_secrets_manager": "r"})
        app(d, "echo").update(secrets={"MAX_REQUEST_BODY_BYTES": {"aws_secrets_manager": "m"}})

    edit(repo, PROD, reserved)
    assert [p.split("; got")[0].split(": got")[0] + " | " + p.split("; ")[1] for p in problems(repo, ["prod"])] == [
        "deployments/prod/env.yaml: apps[echo].secrets.MAX_REQUEST_BODY_BYTES | a secret cannot be injected as "
        "MAX_REQUEST_BODY_BYTES: the toolkit sets it in the containers it renders. Hint: give the secret another "
        "variable name, and read that one in the app",
        "deployments/prod/env.yaml: env.secrets.PATH | a secret cannot be injected as PATH: the container's processes "
        "need their own. Hint: give the secret another variable name, and read that one in the app",
        "deployments/prod/env.yaml: env.secrets.RAY_ADDRESS | a secret cannot be injected as RAY_ADDRESS: Ray reads "
        "RAY_* variables as its own settings. Hint: give the secret another variable name, and read that one in the "
        "app",
    ]


def test_secrets_agree_across_apps(repo: Path) -> None:
    edit(repo, PROD, lambda d: app(d, "echo").update(secrets={"PREDICTION_DB_URL": {"aws_secrets_manager": "other"}}))
    assert (
        "apps[echo].secrets.PREDICTION_DB_URL: got {'aws_secrets_manager': 'other'}; PREDICTION_DB_URL is already bound"
        in (only_problem(repo, ["prod"]))
    )


def test_batching_not_in_user_config(repo: Path) -> None:
    edit(repo, DEV, lambda d: deployment(d, "echo").update(user_config={"batching": {"max_batch_size": 4}}))
    assert (
        "apps[echo].deployments[Echo].user_config.batching: got {'max_batch_size': 4}; user_config.batching is reserved"
        in (only_problem(repo, ["dev"]))
    )


def test_model_not_in_args(repo: Path) -> None:
    edit(repo, DEV, lambda d: app(d, "echo").update(args={"model": "x"}))
    assert "apps[echo].args.model: got 'x'; args.model is reserved" in only_problem(repo, ["dev"])


def test_args_are_validated_against_the_app_builder(repo: Path) -> None:
    edit(repo, DEV, lambda d: app(d, "echo").update(args={"repeat": 0}))
    assert only_problem(repo, ["dev"]) == (
        "deployments/dev/env.yaml: apps[echo].args.repeat: got 0; input should be greater than or equal to 1. "
        "Hint: raise the value"
    )


def test_unknown_args_key_suggests_the_right_one(repo: Path) -> None:
    edit(repo, DEV, lambda d: app(d, "echo").update(args={"greting": "x"}))
    assert only_problem(repo, ["dev"]).startswith("deployments/dev/env.yaml: apps[echo].args.greting: got unknown key")


def test_unknown_key_suggests_a_close_match(repo: Path) -> None:
    edit(repo, DEV, lambda d: deployment(d, "echo").update(autoscaling_config={"max_replica": 3}))
    assert only_problem(repo, ["dev"]) == (
        "deployments/dev/env.yaml: apps[echo].deployments[Echo].autoscaling_config.max_replica: got unknown key "
        "'max_replica'; extra inputs are not permitted. Hint: did you mean 'max_replicas'?"
    )


def test_import_path_must_load(repo: Path) -> None:
    edit(repo, DEV, lambda d: app(d, "echo").update(import_path="tests.fixtures.nowhere:app_builder"))
    assert "apps[echo].import_path: got 'tests.fixtures.nowhere:app_builder'; cannot load the app builder" in (
        only_problem(repo, ["dev"])
    )


def test_env_name_must_match_directory(repo: Path) -> None:
    edit(repo, DEV, lambda d: d["env"].update(name="develop"))
    assert only_problem(repo, ["dev"]).startswith(
        "deployments/dev/env.yaml: env.name: got 'develop'; env.name must equal its directory name ('dev')."
    )


def test_unknown_env_lists_the_known_ones(repo: Path) -> None:
    assert only_problem(repo, ["qa"]) == (
        "deployments: got 'qa'; no such environment. Hint: known environments: dev, prod"
    )


def test_missing_required_key(repo: Path) -> None:
    edit(repo, BASE_APPS, lambda d: d["apps"][0].pop("slo"))
    assert only_problem(repo, ["dev"]) == (
        "deployments/base/apps.yaml: apps[echo].slo: got nothing; field required. Hint: add this key"
    )


def test_key_missing_from_an_environments_env_section_is_blamed_on_that_environment(repo: Path) -> None:
    # base states env: too (ray_version, gitops), but an environment's tier is not base's to add.
    edit(repo, PROD, lambda d: d["env"].pop("tier"))
    assert only_problem(repo, ["prod"]) == (
        "deployments/prod/env.yaml: env.tier: got nothing; field required. Hint: add this key"
    )


def test_key_missing_in_an_environment_is_blamed_once_on_it_not_on_those_extending_it(repo: Path) -> None:
    edit(repo, PROD, lambda d: d["env"].pop("tier"))
    edit(repo, "deployments/prod-us/env.yaml", lambda d: d.update(extends="prod", env={"serve": {"access_log": False}}))
    assert set(problems(repo, ["prod", "prod-us"])) == {
        "deployments/prod/env.yaml: env.tier: got nothing; field required. Hint: add this key"
    }


def test_key_missing_from_a_section_only_base_states_is_blamed_on_base(repo: Path) -> None:
    edit(repo, BASE_ENV, lambda d: d["env"]["gitops"].pop("repo_url"))
    assert set(problems(repo, ["dev", "prod"])) == {
        "deployments/base/env.yaml: env.gitops.repo_url: got nothing; field required. Hint: add this key"
    }


def test_every_problem_is_reported_at_once(repo: Path) -> None:
    def break_two(d: dict[str, Any]) -> None:
        deployment(d, "echo").update(max_ongoing_requests=4)
        d["env"]["target"]["namespace"] = "Bad"

    edit(repo, DEV, break_two)
    edit(repo, PROD, lambda d: d["env"].update(image="x:latest"))
    found = problems(repo)
    assert len(found) == 3
    assert [f.split(":")[0] for f in found] == ["deployments/dev/env.yaml"] * 2 + ["deployments/prod/env.yaml"]


def not_run(repo: Path, envs: list[str] | None = None) -> tuple[str, ...]:
    """The checks the spec loader says did not run."""
    with pytest.raises(SpecError) as caught:
        load_specs(repo, envs)
    return caught.value.not_run


RULES = (
    "secrets_match_target_store, secret_names_are_free, secrets_agree_across_apps, no_static_aws_keys_outside_dev,"
    " ttft_slo_needs_streaming_app, gpu_needs_gpu_worker_group, gpu_packing_fits, target_accepts_spec"
)


def test_a_typo_in_one_app_does_not_hide_a_cross_field_problem_in_another(repo: Path) -> None:
    def break_two(d: dict[str, Any]) -> None:
        deployment(d, "echo").update(autoscaling_config={"max_replicas": 5})  # a fifth quarter-GPU does not fit
        deployment(d, "echo-two").update(num_replica=2)

    edit(repo, PROD, break_two)
    found = problems(repo, ["prod"])
    assert len(found) == 2, found
    assert found[0].startswith(
        "deployments/prod/env.yaml: apps[echo-two].deployments[Echo].num_replica: got unknown key 'num_replica';"
    )
    assert found[1].startswith(
        "deployments/prod/env.yaml: apps[echo].deployments[Echo].ray_actor_options.num_gpus: got 0.25; 1 of 5 GPU"
        " replicas at max autoscale do not fit"
    )
    assert not_run(repo, ["prod"]) == (
        f"prod: the cross-field rules ({RULES}) ran without apps[echo-two], and its args were not checked: it does"
        " not parse",
    )


def test_a_key_outside_the_apps_that_does_not_parse_stops_the_cross_field_rules_and_says_so(repo: Path) -> None:
    def break_two(d: dict[str, Any]) -> None:
        deployment(d, "echo").update(autoscaling_config={"max_replicas": 5})
        d["env"]["target"]["namespaces"] = "x"

    edit(repo, PROD, break_two)
    assert only_problem(repo, ["prod"]).startswith(
        "deployments/prod/env.yaml: env.target.namespaces: got unknown key 'namespaces';"
    )
    assert not_run(repo, ["prod"]) == (f"prod: the cross-field rules ({RULES}) did not run: fix the keys above first",)


def test_every_broken_cross_field_rule_is_reported_and_each_of_its_places(repo: Path) -> None:
    def break_three(d: dict[str, Any]) -> None:
        deployment(d, "echo").update(autoscaling_config={"max_replicas": 5})
        d["env"]["secrets"].update(A_URL={"gcp_secret_manager": "a"}, B_URL={"gcp_secret_manager": "b"})

    edit(repo, PROD, break_three)
    found = problems(repo, ["prod"])
    assert [p.split(": got")[0] for p in found] == [
        "deployments/prod/env.yaml: apps[echo].deployments[Echo].ray_actor_options.num_gpus",
        "deployments/prod/env.yaml: env.secrets.A_URL",
        "deployments/prod/env.yaml: env.secrets.B_URL",
    ]
    assert not_run(repo, ["prod"]) == ()


def test_a_target_rule_is_reported_beside_a_broken_spec_rule(repo: Path) -> None:
    def break_two(d: dict[str, Any]) -> None:
        deployment(d, "echo").update(autoscaling_config={"max_replicas": 5})  # gpu_packing_fits
        d["env"]["target"].pop("gcs_fault_tolerance")  # kuberay's gcs_fault_tolerance_in_prod

    edit(repo, PROD, break_two)
    found = problems(repo, ["prod"])
    assert [p.split(": got")[0] for p in found] == [
        "deployments/prod/env.yaml: apps[echo].deployments[Echo].ray_actor_options.num_gpus",
        "deployments/prod/env.yaml: env.target.gcs_fault_tolerance",
    ]


def test_args_are_checked_while_a_cross_field_rule_fails(repo: Path) -> None:
    def break_two(d: dict[str, Any]) -> None:
        deployment(d, "echo").update(autoscaling_config={"max_replicas": 5})
        app(d, "echo").update(args={"repeat": 0})

    edit(repo, PROD, break_two)
    found = problems(repo, ["prod"])
    assert [p.split(": got")[0] for p in found] == [
        "deployments/prod/env.yaml: apps[echo].args.repeat",
        "deployments/prod/env.yaml: apps[echo].deployments[Echo].ray_actor_options.num_gpus",
    ]


def test_a_wrong_env_name_does_not_hide_the_other_problems(repo: Path) -> None:
    edit(repo, DEV, lambda d: (d["env"].update(name="develop"), deployment(d, "echo").update(max_ongoing_requests=4)))
    assert [p.split(": got")[0] for p in problems(repo, ["dev"])] == [
        "deployments/dev/env.yaml: apps[echo].deployments[Echo].max_ongoing_requests",
        "deployments/dev/env.yaml: env.name",
    ]


@pytest.mark.parametrize("count", [2, 3])
def test_duplicate_yaml_key_is_refused(repo: Path, count: int) -> None:
    text = (repo / DEV).read_text() + "worker_groups: []\n" * (count - 1) + "worker_groups: []\n"
    (repo / DEV).write_text(text)
    assert "invalid YAML; line" in only_problem(repo, ["dev"])
    assert "duplicate key 'worker_groups'" in only_problem(repo, ["dev"])


def test_keep_alive_outlasts_the_load_balancer_by_default(repo: Path) -> None:
    specs = load_specs(repo)
    assert all(spec.env.serve.keep_alive_timeout_s > 60 for spec in specs.values())


def test_keep_alive_below_an_alb_idle_timeout_is_refused(repo: Path) -> None:
    edit(repo, DEV, lambda d: d["env"].update(serve={"keep_alive_timeout_s": 5}))
    assert only_problem(repo, ["dev"]).startswith(
        "deployments/dev/env.yaml: env.serve.keep_alive_timeout_s: got 5; the proxy would close idle connections"
        " before a load balancer does (an ALB after 60 s by default)"
    )


def test_no_static_aws_keys_outside_dev_among_app_secrets(repo: Path) -> None:
    edit(repo, PROD, lambda d: app(d, "echo").update(secrets={"AWS_SESSION_TOKEN": {"aws_secrets_manager": "tok"}}))
    assert only_problem(repo, ["prod"]) == (
        "deployments/prod/env.yaml: apps[echo].secrets.AWS_SESSION_TOKEN: got {'aws_secrets_manager': 'tok'}; a prod"
        " environment gets AWS credentials by assuming a role, not from a stored key that never rotates. Hint: remove"
        " the keys: the workloads assume the IAM role the target renders (env.target.service_account.iam_role_arn on"
        " kuberay, env.target.task_role_arn on ecs)"
    )


def test_static_aws_keys_are_allowed_in_dev(repo: Path) -> None:
    edit(repo, DEV, lambda d: d["env"].setdefault("secrets", {}).update(AWS_ACCESS_KEY_ID={"aws_secrets_manager": "k"}))
    assert "AWS_ACCESS_KEY_ID" in load_specs(repo, ["dev"])["dev"].env.secrets


def test_ttft_slo_needs_streaming_app(repo: Path) -> None:
    edit(repo, DEV, lambda d: app(d, "echo").update(slo={"ttft_p95_ms": 50}))
    assert only_problem(repo, ["dev"]) == (
        "deployments/dev/env.yaml: apps[echo].slo.ttft_p95_ms: got 50.0; tests.fixtures.echo_app:app_builder does not"
        " stream tokens (EchoArgs does not declare streams_tokens), so it has no first token to time. Hint: remove"
        " ttft_p95_ms; slo.p95_ms bounds the app's whole answers"
    )


def test_an_app_that_streams_tokens_may_declare_a_ttft_slo(repo: Path) -> None:
    def stream(data: dict[str, Any]) -> None:
        two = app(data, "echo-two")
        two.update(import_path="tests.fixtures.stream_app:app_builder", args={"words": 2})
        two["slo"]["ttft_p95_ms"] = 40
        two["deployments"][0]["name"] = "Stream"

    edit(repo, BASE_APPS, stream)
    edit(repo, PROD, lambda d: deployment(d, "echo-two").update(name="Stream"))
    assert [a.slo.ttft_p95_ms for a in load_specs(repo)["prod"].apps] == [None, 40]


def test_every_app_with_a_ttft_slo_that_does_not_stream_is_named(repo: Path) -> None:
    edit(repo, BASE_APPS, lambda d: [a["slo"].update(ttft_p95_ms=20) for a in d["apps"]])
    assert [p.split(": got")[0] for p in problems(repo, ["prod"])] == [
        "deployments/base/apps.yaml: apps[echo-two].slo.ttft_p95_ms",
        "deployments/base/apps.yaml: apps[echo].slo.ttft_p95_ms",
    ]


def test_ttft_p95_ms_le_p95_ms(repo: Path) -> None:
    edit(repo, DEV, lambda d: app(d, "echo").update(slo={"ttft_p95_ms": 150}))
    assert only_problem(repo, ["dev"]) == (
        "deployments/dev/env.yaml: apps[echo].slo.ttft_p95_ms: got 150.0; ttft_p95_ms must be <= p95_ms (100): a first"
        " token cannot come after the whole answer. Hint: lower ttft_p95_ms, or raise p95_ms (the latency of the"
        " whole answer, a stream included)"
    )


def test_no_environment_may_take_the_argocd_directory(repo: Path) -> None:
    (repo / "deployments/argocd").mkdir()
    (repo / "deployments/argocd/env.yaml").write_text((repo / DEV).read_text())
    assert only_problem(repo, ["argocd"]) == (
        "deployments/argocd/env.yaml: env.name: got 'argocd'; rendered/argocd/ holds the Argo CD wiring, so no "
        "environment may be called argocd. Hint: rename the environment's directory under deployments/"
    )


def test_a_deployment_the_builder_does_not_build_is_named_with_those_it_does(repo: Path) -> None:
    # Ray's controller fails such a deploy ("Deployment 'Ecko' does not exist"); render says so first.
    edit(repo, DEV, lambda d: deployment(d, "echo", "Ecko").update(num_replicas=2))
    assert problems(repo, ["dev"]) == [
        "deployments/dev/env.yaml: apps[echo].deployments[Ecko].name: got 'Ecko'; tests.fixtures.echo_app:app_builder "
        "builds no deployment of that name, and Ray refuses options for one it does not build. Hint: use one of: Echo"
    ]
