"""The Cloud Run target: knative and v2 bodies, Config Connector and ACK IAM objects from the fixture envs `run` and
`run-gpu`, their validation, and the Cloud Run spec rules (AWS identity, GPUs, secrets, names, sizes)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from render.pipeline import render_repo
from render.validate.cloudrun import run_service_problems
from render.validate.crd import CrdIndex, validate
from render.validate.knative import knative_service_problems
from render.validate.serve import serve_config_problems
from tests.golden_tree import TARGETS_REPO, render_fixture
from tests.unit.render.conftest import deployment, edit, not_validated_notes, problems

CRDS = Path(__file__).parents[3].parent / "shared" / "crds"
RUN = "deployments/run/env.yaml"
RUN_GPU = "deployments/run-gpu/env.yaml"


@pytest.fixture(scope="module")
def files() -> dict[str, str]:
    """The targets fixture repo, rendered once."""
    return render_fixture(TARGETS_REPO)


@pytest.fixture
def targets_repo(tmp_path: Path) -> Path:
    """A private copy of tests/fixtures/repo_targets."""
    shutil.copytree(TARGETS_REPO, tmp_path / "repo")
    return tmp_path / "repo"


def v2(files: dict[str, str], env: str, app: str) -> dict[str, Any]:
    return json.loads(files[f"{env}/native/{app}/run.v2.Service.json"])


def knative(files: dict[str, str], env: str, app: str) -> dict[str, Any]:
    return yaml.safe_load(files[f"{env}/native/{app}/run.v1.Service.yaml"])


def only_problem(repo: Path, envs: list[str]) -> str:
    found = problems(repo, envs)
    assert len(found) == 1, found
    return found[0]


def test_every_v2_body_parses_into_the_cloud_run_protos(files: dict[str, str]) -> None:
    paths = [p for p in files if p.endswith("/run.v2.Service.json")]
    assert len(paths) == 4
    for path in paths:
        assert run_service_problems(json.loads(files[path])) == [], path


def test_every_knative_body_passes_the_admin_api_v1_schema(files: dict[str, str]) -> None:
    paths = [p for p in files if p.endswith("/run.v1.Service.yaml")]
    assert len(paths) == 4
    for path in paths:
        assert knative_service_problems(yaml.safe_load(files[path])) == [], path


def test_an_unknown_field_in_a_knative_body_is_refused(files: dict[str, str]) -> None:
    body = knative(files, "run", "echo")
    body["spec"]["template"]["spec"]["containerConcurency"] = 16
    assert knative_service_problems(body) == [
        "spec.template.spec: Additional properties are not allowed ('containerConcurency' was unexpected)"
    ]


def test_an_unknown_field_in_a_v2_body_is_refused(files: dict[str, str]) -> None:
    body = v2(files, "run", "echo")
    body["template"]["containers"][0]["resources"]["cpuIdel"] = False
    (problem,) = run_service_problems(body)
    assert 'Message type "google.cloud.run.v2.ResourceRequirements" has no field named "cpuIdel"' in problem


def test_the_v2_validator_checks_documented_limits(files: dict[str, str]) -> None:
    body = v2(files, "run", "echo")
    body["template"]["maxInstanceRequestConcurrency"] = 1001
    body["template"]["containers"][0]["resources"]["limits"] = {"cpu": "1", "memory": "8Gi"}
    assert run_service_problems(body) == [
        "template.containers[0].resources.limits.memory: got 8Gi; with 1 CPU it must be 512Mi to 4096Mi",
        "template.maxInstanceRequestConcurrency: got 1001; must be 1 to 1000",
    ]


def test_every_instance_runs_a_valid_single_app_serve_config(files: dict[str, str]) -> None:
    for path in [p for p in files if p.endswith("/run.v2.Service.json")]:
        env = json.loads(files[path])["template"]["containers"][0]["env"]
        (text,) = [e["value"] for e in env if e["name"] == "SERVE_CONFIG"]
        assert serve_config_problems(text) == []
        assert [d["num_replicas"] for d in yaml.safe_load(text)["applications"][0]["deployments"]] == [1]


@pytest.mark.skipif(not CRDS.is_dir(), reason="../shared/crds not found: CRD validation not exercised")
def test_config_connector_objects_pass_their_closed_crds() -> None:
    rendered = render_repo(TARGETS_REPO, CRDS, ["run", "run-gpu"])
    assert rendered.notes == not_validated_notes(rendered.files, CRDS)


def test_scaling_concurrency_probe_and_cpu_allocation(files: dict[str, str]) -> None:
    template = v2(files, "run", "echo")["template"]
    assert template["scaling"] == {"minInstanceCount": 1, "maxInstanceCount": 2}
    assert template["maxInstanceRequestConcurrency"] == 16  # Echo's max_ongoing_requests
    (container,) = template["containers"]
    assert container["startupProbe"] == {
        "httpGet": {"path": "/echo/healthz", "port": 8000},
        "periodSeconds": 10,
        "failureThreshold": 24,
        "timeoutSeconds": 5,
    }
    assert container["resources"]["cpuIdle"] is False
    assert container["resources"]["limits"] == {"cpu": "2", "memory": "5632Mi"}
    assert template["timeout"] == "10s"
    assert template["serviceAccount"] == "serving-run@acme-serving-test.iam.gserviceaccount.com"


def test_secrets_come_from_secret_manager_in_every_form(files: dict[str, str]) -> None:
    env = {e["name"]: e for e in v2(files, "run", "echo-two")["template"]["containers"][0]["env"]}
    assert env["PREDICTION_DB_URL"]["valueSource"] == {
        "secretKeyRef": {"secret": "prediction-db-url", "version": "latest"}
    }
    assert env["ECHO_TOKEN"]["valueSource"] == {
        "secretKeyRef": {"secret": "projects/acme-shared/secrets/echo-token", "version": "3"}
    }
    template = knative(files, "run", "echo-two")["spec"]["template"]
    assert template["metadata"]["annotations"]["run.googleapis.com/secrets"] == (
        "echo-token:projects/acme-shared/secrets/echo-token"
    )
    v1_env = {e["name"]: e for e in template["spec"]["containers"][0]["env"]}
    assert v1_env["ECHO_TOKEN"]["valueFrom"] == {"secretKeyRef": {"name": "echo-token", "key": "3"}}


def test_each_secret_is_granted_to_the_service_account(files: dict[str, str]) -> None:
    members = [
        yaml.safe_load(text) for path, text in files.items() if path.startswith("run/") and ".IAMPolicyMember-" in path
    ]
    assert sorted(m["spec"]["resourceRef"]["external"] for m in members) == [
        "projects/acme-serving-test/secrets/prediction-db-url",
        "projects/acme-shared/secrets/echo-token",
    ]
    assert all(m["spec"]["role"] == "roles/secretmanager.secretAccessor" for m in members)
    assert all(m["spec"]["memberFrom"] == {"serviceAccountRef": {"name": "serving-run"}} for m in members)


def test_instance_execs_the_entry_point_draining_within_cloud_runs_10_s(files: dict[str, str]) -> None:
    (container,) = v2(files, "run", "echo")["template"]["containers"]
    assert container["command"] == ["/bin/sh", "-c"]
    (script,) = container["args"]
    assert " && exec python -m serve_apps.entrypoint --grace-period-s=10 " in script


def test_knative_and_v2_forms_agree(files: dict[str, str]) -> None:
    for env, app in [("run", "echo"), ("run", "echo-two"), ("run-gpu", "echo")]:
        template = v2(files, env, app)["template"]
        v1 = knative(files, env, app)["spec"]["template"]
        container, v1_container = template["containers"][0], v1["spec"]["containers"][0]
        assert v1_container["image"] == container["image"]
        assert v1_container["command"] + v1_container["args"] == container["command"] + container["args"]
        assert v1_container["resources"]["limits"] == container["resources"]["limits"]
        assert v1_container["startupProbe"] == container["startupProbe"]
        assert v1["spec"]["containerConcurrency"] == template["maxInstanceRequestConcurrency"]
        annotations = v1["metadata"]["annotations"]
        assert int(annotations["autoscaling.knative.dev/minScale"]) == template["scaling"]["minInstanceCount"]
        assert int(annotations["autoscaling.knative.dev/maxScale"]) == template["scaling"]["maxInstanceCount"]
        assert annotations["run.googleapis.com/cpu-throttling"] == "false"


def test_run_service_is_the_v2_template_in_config_connector_spelling(files: dict[str, str]) -> None:
    service = yaml.safe_load(files["run/run.cnrm.cloud.google.com.RunService-run-echo.yaml"])
    template = v2(files, "run", "echo")["template"]
    assert service["spec"]["template"]["scaling"] == template["scaling"]
    assert service["spec"]["template"]["serviceAccountRef"] == {"external": template["serviceAccount"]}
    assert service["spec"]["projectRef"] == {"external": "acme-serving-test"}
    assert service["spec"]["location"] == "europe-west4"


def test_a_gpu_service_is_native_only_with_a_whole_l4_and_cpu_always_on(files: dict[str, str]) -> None:
    assert not [p for p in files if p.startswith("run-gpu/") and ".RunService-" in p]
    template = v2(files, "run-gpu", "echo")["template"]
    assert template["nodeSelector"] == {"accelerator": "nvidia-l4"}
    resources = template["containers"][0]["resources"]
    assert resources["limits"] == {"cpu": "4", "memory": "16Gi", "nvidia.com/gpu": "1"}
    assert resources["cpuIdle"] is False
    assert template["scaling"] == {"minInstanceCount": 0, "maxInstanceCount": 2}
    spec = knative(files, "run-gpu", "echo")["spec"]["template"]["spec"]
    assert spec["nodeSelector"] == {"run.googleapis.com/accelerator": "nvidia-l4"}
    application = yaml.safe_load(files["argocd/argoproj.io.Application-serving-run-gpu.yaml"])
    assert application["spec"]["source"]["directory"] == {"recurse": False, "exclude": "native/*"}


def test_gpu_with_config_connector_is_refused_naming_the_native_form(targets_repo: Path) -> None:
    edit(targets_repo, RUN_GPU, lambda d: d["env"]["target"].pop("run_service"))
    assert only_problem(targets_repo, ["run-gpu"]) == (
        "deployments/run-gpu/env.yaml: env.target.run_service: got 'config-connector'; app echo uses a GPU, and "
        "Config Connector's RunService (v1.155) has no node selector, so it cannot express a GPU Cloud Run service. "
        "Hint: set env.target.run_service: native and deploy rendered/run-gpu/native/echo/run.v1.Service.yaml with "
        "`gcloud run services replace` (or send run.v2.Service.json to the Admin API)"
    )


def test_more_than_one_gpu_per_instance_is_refused(targets_repo: Path) -> None:
    edit(targets_repo, RUN_GPU, lambda d: deployment(d, "echo").update(ray_actor_options={"num_gpus": 2}))
    edit(targets_repo, RUN_GPU, lambda d: d["worker_groups"][0].update(num_gpus=2))
    assert only_problem(targets_repo, ["run-gpu"]).startswith(
        "deployments/run-gpu/env.yaml: apps[echo].deployments[Echo].ray_actor_options.num_gpus: got 2.0; a Cloud Run "
        "instance has at most one GPU, and one replica of each deployment of echo wants 2."
    )


def test_l4_needs_four_cpus(targets_repo: Path) -> None:
    edit(targets_repo, RUN_GPU, lambda d: d["worker_groups"][0].update(num_cpus=2))
    assert only_problem(targets_repo, ["run-gpu"]) == (
        "deployments/run-gpu/env.yaml: worker_groups[gpu].num_cpus: got 2; a Cloud Run instance with nvidia-l4 needs "
        "at least 4 CPUs, and GPU instances take the GPU worker group's shape. Hint: set num_cpus: 4 or more on "
        "worker group gpu"
    )


def test_l4_needs_sixteen_gib(targets_repo: Path) -> None:
    edit(targets_repo, RUN_GPU, lambda d: d["worker_groups"][0].update(memory_gib=8))
    assert only_problem(targets_repo, ["run-gpu"]).startswith(
        "deployments/run-gpu/env.yaml: worker_groups[gpu].memory_gib: got 8.0; a Cloud Run instance with nvidia-l4 "
        "needs at least 16 GiB"
    )


def test_a_gpu_cloud_run_does_not_offer_is_refused(targets_repo: Path) -> None:
    edit(targets_repo, RUN_GPU, lambda d: d["worker_groups"][0].update(accelerator="nvidia-a100"))
    assert only_problem(targets_repo, ["run-gpu"]).startswith(
        "deployments/run-gpu/env.yaml: worker_groups[gpu].accelerator: got 'nvidia-a100'; Cloud Run offers only "
        "nvidia-l4."
    )


def test_a_json_key_of_a_secret_is_refused(targets_repo: Path) -> None:
    edit(targets_repo, RUN, lambda d: d["env"]["secrets"]["PREDICTION_DB_URL"].update(key="url"))
    assert only_problem(targets_repo, ["run"]).startswith(
        "deployments/run/env.yaml: env.secrets.PREDICTION_DB_URL.key: got 'url'; Cloud Run injects a whole secret "
        "version and cannot pick a JSON key."
    )


def test_an_aws_secret_is_refused(targets_repo: Path) -> None:
    edit(targets_repo, RUN, lambda d: d["env"]["secrets"].update(X_TOKEN={"aws_secrets_manager": "serving/x"}))
    assert "a cloudrun target reads secrets from gcp_secret_manager" in only_problem(targets_repo, ["run"])


def test_an_instance_larger_than_cloud_run_allows_is_refused(targets_repo: Path) -> None:
    edit(targets_repo, RUN, lambda d: deployment(d, "echo").update(ray_actor_options={"num_cpus": 8}))
    message = only_problem(targets_repo, ["run"])
    assert message.startswith("deployments/run/env.yaml: apps[echo].deployments: got '8.5 CPU / 34304 MiB'")
    assert "exceeds Cloud Run's largest, 8 CPU / 32 GiB" in message


def test_a_service_name_too_long_is_refused_for_every_app(targets_repo: Path) -> None:
    env = "e" * 45  # + "-echo": 50 characters, one more than Cloud Run allows
    shutil.copytree(targets_repo / "deployments/run", targets_repo / "deployments" / env)
    assert problems(targets_repo, [env]) == [
        f"{file}: apps[{app}].name: got '{env}-{app}'; a Cloud Run service name (`<env>-<app>`) starts with a"
        " letter and has at most 49 characters. Hint: shorten the app or environment name"
        # echo-two is named in the environment's own file too (for its secrets), which the last word blames.
        for file, app in (("deployments/base/apps.yaml", "echo"), (f"deployments/{env}/env.yaml", "echo-two"))
    ]


def test_a_cloudrun_cluster_needs_a_project(targets_repo: Path) -> None:
    edit(targets_repo, "clusters/clusters.yaml", lambda d: d["clusters"][1].pop("account"))
    assert only_problem(targets_repo, ["run"]).startswith(
        "deployments/run/env.yaml: env.target.cluster: got 'run-test'; a cloudrun cluster needs its GCP project id"
    )


def test_a_gpu_replica_without_a_gpu_group_gets_the_general_rule(targets_repo: Path) -> None:
    edit(targets_repo, RUN, lambda d: deployment(d, "echo").update(ray_actor_options={"num_gpus": 0.5}))
    assert "a GPU replica needs a worker group with num_gpus > 0" in only_problem(targets_repo, ["run"])


def test_throughput_mode_sets_ray_serve_variables_in_every_form(targets_repo: Path) -> None:
    edit(targets_repo, RUN, lambda d: d["env"].setdefault("serve", {}).update(throughput_optimized=True))
    files = render_repo(targets_repo, None, ["run"]).files
    # HAProxy gets one thread per two of the instance's CPUs (render/plan.py): the echo app fits 1 or 2 CPUs.
    assert v2(files, "run", "echo")["template"]["containers"][0]["resources"]["limits"]["cpu"] in ("1", "2")
    wanted = {
        "RAY_SERVE_THROUGHPUT_OPTIMIZED": "1",
        "RAY_SERVE_ENABLE_HA_PROXY": "1",
        "RAY_SERVE_HAPROXY_NBTHREAD": "1",
    }
    v2_env = {e["name"]: e.get("value") for e in v2(files, "run", "echo")["template"]["containers"][0]["env"]}
    knative_env = {
        e["name"]: e.get("value")
        for e in knative(files, "run", "echo")["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    kcc = yaml.safe_load(files["run/run.cnrm.cloud.google.com.RunService-run-echo.yaml"])
    kcc_env = {e["name"]: e.get("value") for e in kcc["spec"]["template"]["containers"][0]["env"]}
    for env in (v2_env, knative_env, kcc_env):
        assert wanted.items() <= env.items()
        assert "SERVE_CONFIG" in env
    assert run_service_problems(v2(files, "run", "echo")) == []
    assert knative_service_problems(knative(files, "run", "echo")) == []


def test_throughput_mode_is_off_in_services_unless_stated(files: dict[str, str]) -> None:
    env = v2(files, "run", "echo")["template"]["containers"][0]["env"]
    assert not any(e["name"].startswith("RAY_SERVE_") for e in env)


ROLE_ENV = {
    "AWS_ROLE_ARN": "arn:aws:iam::111111111111:role/serving-run",
    "AWS_ROLE_SESSION_NAME": "run-echo",
    "GOOGLE_ID_TOKEN_AUDIENCE": "sts.amazonaws.com",
}
STATIC_KEYS = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"}


def todays_staging_cloudrun(data: dict[str, Any]) -> None:
    """What deployments/staging-cloudrun held before federation: a read-only IAM user's key pair, no role."""
    target = data["env"]["target"]
    del target["aws_role_arn"], target["service_account_unique_id"]
    data["env"]["secrets"].update(
        AWS_ACCESS_KEY_ID={"gcp_secret_manager": "models-reader-access-key-id"},
        AWS_SECRET_ACCESS_KEY={"gcp_secret_manager": "models-reader-secret-access-key"},
    )


def test_static_aws_keys_are_refused_outside_dev(targets_repo: Path) -> None:
    edit(targets_repo, RUN, todays_staging_cloudrun)
    found = problems(targets_repo, ["run"])
    assert [p for p in found if "a staging environment gets AWS credentials" in p] == [
        f"deployments/run/env.yaml: env.secrets.{var}: got {{'gcp_secret_manager': '{secret}'}}; a staging"
        " environment gets AWS credentials by assuming a role, not from a stored key that never rotates. Hint: set"
        " env.target.aws_role_arn and remove the keys"
        for var, secret in (
            ("AWS_ACCESS_KEY_ID", "models-reader-access-key-id"),
            ("AWS_SECRET_ACCESS_KEY", "models-reader-secret-access-key"),
        )
    ]
    # The target's own rule runs as well and says what the keys were standing in for.
    assert [p for p in found if "a staging environment gets AWS credentials" not in p] == [
        "deployments/run/env.yaml: env.target.aws_role_arn: got None; app echo loads s3://models/echo.bin, and a "
        "staging Cloud Run service reaches S3 only by assuming an AWS role with its Google identity. Hint: set "
        "env.target.aws_role_arn (and service_account_unique_id), or serve the model from the image (file://)"
    ]


def test_static_aws_keys_are_accepted_in_dev(targets_repo: Path) -> None:
    keys = {"AWS_ACCESS_KEY_ID": {"gcp_secret_manager": "k"}, "AWS_SECRET_ACCESS_KEY": {"gcp_secret_manager": "s"}}
    edit(targets_repo, RUN_GPU, lambda d: d["env"].update(secrets=keys))
    files = render_repo(targets_repo, None, ["run-gpu"]).files
    assert {e["name"] for e in v2(files, "run-gpu", "echo")["template"]["containers"][0]["env"]} >= set(keys)


def test_s3_models_outside_dev_need_an_aws_role(targets_repo: Path) -> None:
    edit(targets_repo, RUN, lambda d: d["env"]["target"].pop("aws_role_arn"))
    assert only_problem(targets_repo, ["run"]) == (
        "deployments/run/env.yaml: env.target.aws_role_arn: got None; app echo loads s3://models/echo.bin, and a "
        "staging Cloud Run service reaches S3 only by assuming an AWS role with its Google identity. Hint: set "
        "env.target.aws_role_arn (and service_account_unique_id), or serve the model from the image (file://)"
    )


def test_the_aws_role_needs_the_service_accounts_unique_id(targets_repo: Path) -> None:
    edit(targets_repo, RUN, lambda d: d["env"]["target"].pop("service_account_unique_id"))
    assert only_problem(targets_repo, ["run"]).startswith(
        "deployments/run/env.yaml: env.target.service_account_unique_id: got None; the AWS role's trust must name "
        "the one Google service account that may assume it, by unique id. Hint: set service_account_unique_id to "
        "the output of `gcloud iam service-accounts describe serving-run@<project>.iam.gserviceaccount.com"
    )


def test_a_malformed_aws_role_arn_is_refused(targets_repo: Path) -> None:
    edit(targets_repo, RUN, lambda d: d["env"]["target"].update(aws_role_arn="serving-run"))
    assert only_problem(targets_repo, ["run"]).startswith(
        "deployments/run/env.yaml: env.target.aws_role_arn: got 'serving-run';"
    )


def test_every_form_tells_the_container_the_role_and_holds_no_aws_key(files: dict[str, str]) -> None:
    for app_name in ("echo", "echo-two"):
        role_env = {**ROLE_ENV, "AWS_ROLE_SESSION_NAME": f"run-{app_name}"}
        forms = [
            v2(files, "run", app_name)["template"]["containers"][0]["env"],
            knative(files, "run", app_name)["spec"]["template"]["spec"]["containers"][0]["env"],
            yaml.safe_load(files[f"run/run.cnrm.cloud.google.com.RunService-run-{app_name}.yaml"])["spec"]["template"][
                "containers"
            ][0]["env"],
        ]
        for env in forms:
            values = {e["name"]: e.get("value") for e in env}
            assert role_env.items() <= values.items()
            assert not STATIC_KEYS & set(values)


def test_no_aws_role_env_without_a_role(files: dict[str, str]) -> None:
    env = v2(files, "run-gpu", "echo")["template"]["containers"][0]["env"]
    assert not {e["name"] for e in env} & set(ROLE_ENV)
    assert not [p for p in files if p.startswith("run-gpu/iam.services.k8s.aws.")]


def iam_objects(files: dict[str, str], env: str) -> dict[str, dict[str, Any]]:
    return {
        path.removeprefix(f"{env}/"): yaml.safe_load(text)
        for path, text in files.items()
        if path.startswith(f"{env}/iam.services.k8s.aws.")
    }


def test_the_aws_role_trusts_only_the_service_accounts_google_tokens(files: dict[str, str]) -> None:
    objects = iam_objects(files, "run")
    assert sorted(objects) == [
        "iam.services.k8s.aws.Policy-serving-run-models-read.yaml",
        "iam.services.k8s.aws.Role-serving-run.yaml",
    ]
    role = objects["iam.services.k8s.aws.Role-serving-run.yaml"]
    assert role["metadata"]["namespace"] == "serving-run"  # beside the Config Connector objects, same Application
    assert role["metadata"]["annotations"] == {
        "argocd.argoproj.io/sync-wave": "-1",
        "services.k8s.aws/deletion-policy": "retain",
    }
    assert (role["spec"]["name"], role["spec"]["path"]) == ("serving-run", "/")
    assert role["spec"]["policyRefs"] == [{"from": {"name": "serving-run-models-read"}}]
    assert json.loads(role["spec"]["assumeRolePolicyDocument"]) == {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Federated": "accounts.google.com"},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {
                    "StringEquals": {
                        "accounts.google.com:aud": "112233445566778899001",
                        "accounts.google.com:sub": "112233445566778899001",
                        "accounts.google.com:oaud": "sts.amazonaws.com",
                    }
                },
            }
        ],
    }
    policy = json.loads(objects["iam.services.k8s.aws.Policy-serving-run-models-read.yaml"]["spec"]["policyDocument"])
    assert policy["Statement"] == [
        {
            "Sid": "ReadModels",
            "Effect": "Allow",
            "Action": ["s3:GetObject"],
            "Resource": ["arn:aws:s3:::models/echo.bin"],
        }
    ]


@pytest.mark.skipif(
    not (CRDS / "ack-iam").is_dir(), reason="../shared/crds/ack-iam not found: ACK IAM CRDs not checked"
)
def test_the_aws_role_objects_pass_the_closed_ack_iam_crds(files: dict[str, str]) -> None:
    index = CrdIndex(CRDS)
    for path, manifest in iam_objects(files, "run").items():
        assert index.has(manifest["apiVersion"], manifest["kind"]), path
        assert validate(manifest, index) == [], path
    role = iam_objects(files, "run")["iam.services.k8s.aws.Role-serving-run.yaml"]
    role["spec"]["assumeRolePolicy"] = role["spec"].pop("assumeRolePolicyDocument")
    assert validate(role, index) != []  # a misspelt field fails here, not in the cluster
