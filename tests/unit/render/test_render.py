"""Rendering: golden tree, determinism, --check, atomic writes, validation of what is emitted."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from render.cli import main
from render.errors import RenderError
from render.pipeline import render_repo
from render.plan import (
    PRELOAD_MODULES_ENV,
    REPLICA_IMPORTS,
    SERVE_REPLICA_MODULE,
    WARM_WORKERS_APP,
    haproxy_threads,
)
from render.spec.base import K8S_NAME_PATTERN
from render.spec.models import RESERVED_ENV_PREFIXES, RESERVED_ENV_VARS
from render.validate.serve import serve_config_problems
from render.write import read_tree, write_tree
from tests.golden_tree import FIXTURE_REPO, GOLDEN_DIR, GOLDEN_TREES, differences, render_fixture
from tests.unit.render.conftest import deployment, edit, not_validated_notes

CRDS = Path(__file__).parents[3].parent / "shared" / "crds"


def test_golden_tree() -> None:
    report = differences(render_fixture(), read_tree(GOLDEN_DIR))
    assert not report, (
        "rendered tree differs from tests/golden (run `nox -s update_golden` if intended):\n" + "\n".join(report)
    )


def test_rendering_is_deterministic(repo: Path) -> None:
    first = render_repo(repo, None).files
    second = render_repo(repo, None).files
    assert first == second
    assert list(first) == sorted(first)


def test_render_twice_changes_nothing_on_disk(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--root", str(repo), "render"]) == 0
    stamps = {p: p.stat().st_mtime_ns for p in (repo / "rendered").rglob("*")}
    assert main(["--root", str(repo), "render"]) == 0
    assert "0 changed" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in (repo / "rendered").rglob("*")} == stamps


def test_check_lists_stale_files_and_writes_nothing(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--root", str(repo), "render"]) == 0
    assert main(["--root", str(repo), "render", "--check"]) == 0
    edit(repo, "deployments/dev/env.yaml", lambda d: deployment(d, "echo").update(max_ongoing_requests=20))
    (repo / "rendered/dev/stray.yaml").write_text("kind: Leftover\n")
    before = read_tree(repo / "rendered")
    capsys.readouterr()
    assert main(["--root", str(repo), "render", "--check"]) == 1
    err = capsys.readouterr().err
    assert "rendered/dev/ray.io.RayService-serving.yaml" in err
    assert "rendered/dev/stray.yaml" in err
    assert "rendered/prod/" not in err
    assert read_tree(repo / "rendered") == before


def test_render_removes_files_of_objects_that_are_gone(repo: Path) -> None:
    assert main(["--root", str(repo), "render"]) == 0
    assert (repo / "rendered/prod/external-secrets.io.ExternalSecret-prediction-db-url.yaml").exists()
    edit(repo, "deployments/prod/env.yaml", lambda d: d["env"].pop("secrets"))
    assert main(["--root", str(repo), "render"]) == 0
    assert not (repo / "rendered/prod/external-secrets.io.ExternalSecret-prediction-db-url.yaml").exists()


def test_failed_write_leaves_the_old_tree(tmp_path: Path) -> None:
    target = tmp_path / "rendered"
    write_tree({"dev/a.yaml": "a: 1\n"}, target)
    with pytest.raises(OSError):
        # "dev/a.yaml" cannot be both a file and a directory: the write fails half-way.
        write_tree({"dev/a.yaml": "a: 2\n", "dev/a.yaml/b.yaml": "b: 1\n"}, target)
    assert read_tree(target) == {"dev/a.yaml": "a: 1\n"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rendered"]


@pytest.mark.parametrize("out", [".", "deployments", "hand-written"])
def test_render_refuses_to_replace_a_directory_that_is_no_earlier_render(
    repo: Path, out: str, capsys: pytest.CaptureFixture[str]
) -> None:
    (repo / "hand-written").mkdir()
    (repo / "hand-written/service.yaml").write_text("kind: Service\n")
    before = read_tree(repo / out)
    for command in (["render", "--out", out], ["render", "--out", out, "--check"]):
        capsys.readouterr()
        assert main(["--root", str(repo), *command]) == 1
        err = capsys.readouterr().err
        assert "none that a render writes" in err and "Traceback" not in err
    assert read_tree(repo / out) == before


def test_render_writes_into_a_new_or_empty_directory_and_over_a_stray_binary_file(repo: Path, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    for out in (tmp_path / "new", tmp_path / "empty"):
        assert main(["--root", str(repo), "render", "--out", str(out)]) == 0
        assert (out / "argocd").is_dir()
    (tmp_path / "new/dev/stray.bin").write_bytes(b"\xff\xfe")
    assert main(["--root", str(repo), "render", "--out", str(tmp_path / "new")]) == 0
    assert not (tmp_path / "new/dev/stray.bin").exists()


def test_serve_config_v2_round_trips_through_ray_schema() -> None:
    files = render_fixture()
    service = yaml.safe_load(files["prod/ray.io.RayService-models.yaml"])
    config = yaml.safe_load(service["spec"]["serveConfigV2"])
    assert serve_config_problems(service["spec"]["serveConfigV2"]) == []
    echo = next(a for a in config["applications"] if a["name"] == "echo")
    assert echo["deployments"][0]["user_config"] == {
        "batching": {"max_batch_size": 8, "batch_wait_timeout_s": 0.01, "max_concurrent_batches": 1}
    }
    assert echo["deployments"][0]["ray_actor_options"] == {"num_cpus": 1.0, "num_gpus": 0.25}
    assert echo["args"]["model"]["uri"] == "s3://models/echo.bin"
    assert config["http_options"]["request_timeout_s"] == 10


def test_serve_config_keys_ray_would_ignore_are_refused() -> None:
    text = "applications:\n- name: a\n  import_path: m:f\n  deployments:\n  - name: D\n    num_replica: 2\n"
    assert serve_config_problems(text) == [
        "applications.0.deployments.0.num_replica: Ray does not know this key and would ignore it"
    ]


def test_rayservice_shape() -> None:
    service = yaml.safe_load(render_fixture()["prod/ray.io.RayService-models.yaml"])
    cluster = service["spec"]["rayClusterConfig"]
    assert cluster["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"
    assert cluster["headGroupSpec"]["serviceType"] == "ClusterIP"
    assert cluster["enableInTreeAutoscaling"] is True
    assert cluster["authOptions"] == {"mode": "token"}
    assert all(isinstance(v, str) for g in cluster["workerGroupSpecs"] for v in g["rayStartParams"].values())
    gpu = next(g for g in cluster["workerGroupSpecs"] if g["groupName"] == "gpu")
    container = gpu["template"]["spec"]["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    # eks-prod's nodes come from Karpenter, which labels a node with its GPU model's name.
    assert gpu["template"]["spec"]["nodeSelector"]["karpenter.k8s.aws/instance-gpu-name"] == "l4"
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in gpu["template"]["spec"][
        "tolerations"
    ]
    assert container["env"] == [
        {"name": "MAX_REQUEST_BODY_BYTES", "value": str(1024**2)},
        {"name": PRELOAD_MODULES_ENV, "value": PROD_PRELOAD},
        {"name": "PREDICTION_DB_URL", "valueFrom": {"secretKeyRef": {"name": "prediction-db-url", "key": "value"}}},
    ]


def test_argocd_application_wiring() -> None:
    files = render_fixture()
    prod = yaml.safe_load(files["argocd/argoproj.io.Application-serving-prod.yaml"])
    assert prod["spec"]["source"]["path"] == "rendered/prod"
    assert prod["spec"]["destination"] == {"name": "eks-prod", "namespace": "serving"}
    assert prod["spec"]["syncPolicy"]["automated"] == {"prune": True, "selfHeal": True}
    assert set(prod["spec"]["syncPolicy"]["syncOptions"]) == {
        "CreateNamespace=true",
        "ServerSideApply=true",
        "RespectIgnoreDifferences=true",
    }
    # The Ray autoscaler patches the RayCluster, never the RayService: Argo CD ignores nothing of it.
    assert "ignoreDifferences" not in prod["spec"]
    manifests = [
        yaml.safe_load(text) for path, text in files.items() if path.startswith("prod/") and path.endswith(".yaml")
    ]
    waves = {m["kind"]: int(m["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"]) for m in manifests}
    assert waves["ServiceAccount"] < waves["RayService"]
    assert waves["ExternalSecret"] < waves["RayService"]


def test_an_ignored_path_through_a_list_is_refused(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from render import targets

    original = targets.BUILDERS["kuberay"]

    def with_list_ignore(plan: object) -> object:
        output = original(plan)  # type: ignore[arg-type]
        output.ignore_differences.append(
            {
                "group": "ray.io",
                "kind": "RayService",
                "jqPathExpressions": [".spec.rayClusterConfig.workerGroupSpecs[].replicas"],
            }
        )
        return output

    monkeypatch.setitem(targets.BUILDERS, "kuberay", with_list_ignore)
    with pytest.raises(RenderError, match=r"workerGroupSpecs\[\]\.replicas goes through a list"):
        render_repo(repo, None)


def test_app_project_fences_destinations_and_kinds() -> None:
    project = yaml.safe_load(render_fixture()["argocd/argoproj.io.AppProject-serving.yaml"])
    assert project["spec"]["destinations"] == [
        {"name": "eks-prod", "namespace": "serving"},
        {"name": "eks-test", "namespace": "serving-dev"},
    ]
    kinds = {(k["group"], k["kind"]) for k in project["spec"]["namespaceResourceWhitelist"]}
    assert ("ray.io", "RayService") in kinds
    assert ("", "Service") not in kinds


@pytest.mark.skipif(not CRDS.is_dir(), reason="../shared/crds not found: CRD validation not exercised")
def test_rendered_custom_resources_pass_their_crds() -> None:
    rendered = render_repo(FIXTURE_REPO, CRDS)
    # Every kind the directory has a CRD for was validated (render raises otherwise); the rest are named.
    assert rendered.notes == not_validated_notes(rendered.files, CRDS)
    assert all(note.startswith("no CRD for v1 ") for note in rendered.notes), rendered.notes


@pytest.mark.skipif(not CRDS.is_dir(), reason="../shared/crds not found: CRD validation not exercised")
def test_invalid_custom_resource_fails_render(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from render.targets import kuberay

    original = kuberay.rayservice

    def misspelt(plan: object) -> dict:
        service = original(plan)  # type: ignore[arg-type]
        service["spec"]["rayClusterConfig"]["headGroupSpec"]["rayStartParam"] = {}
        return service

    monkeypatch.setattr(kuberay, "rayservice", misspelt)
    with pytest.raises(RenderError, match="rayStartParam"):
        render_repo(repo, CRDS)


def test_render_says_when_crd_validation_is_skipped(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rendered = render_repo(repo, None)
    assert rendered.notes == ["CRD validation skipped: no CRD directory (pass --crd-dir or set SERVING_CRD_DIR)"]


@pytest.mark.skipif(not CRDS.is_dir(), reason="../shared/crds not found: CRD validation not exercised")
def test_bootstrap_application_is_valid_and_points_at_rendered_argocd() -> None:
    from render.validate.crd import CrdIndex, validate

    root = Path(__file__).parents[3]
    bootstrap = yaml.safe_load((root / "clusters/argocd/bootstrap.yaml").read_text())
    assert validate(bootstrap, CrdIndex(CRDS)) == []
    assert bootstrap["spec"]["source"]["path"] == "rendered/argocd"
    base_env = yaml.safe_load((root / "deployments/base/env.yaml").read_text())
    assert bootstrap["spec"]["source"]["repoURL"] == base_env["env"]["gitops"]["repo_url"]


THROUGHPUT_ENV = {"RAY_SERVE_ENABLE_HA_PROXY": "1", "RAY_SERVE_THROUGHPUT_OPTIMIZED": "1"}


# Ray Serve's replica module, then the module of the fixture's apps (both are echo apps).
PROD_PRELOAD = f"{SERVE_REPLICA_MODULE},{','.join(REPLICA_IMPORTS)},tests.fixtures.echo_app"


def _ray_containers(service: dict[str, Any]) -> list[dict[str, Any]]:
    cluster = service["spec"]["rayClusterConfig"]
    groups = [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]
    return [group["template"]["spec"]["containers"][0] for group in groups]


def test_throughput_mode_is_off_unless_stated() -> None:
    service = yaml.safe_load(render_fixture()["dev/ray.io.RayService-serving.yaml"])
    containers = _ray_containers(service)
    assert all(not any(e["name"].startswith("RAY_SERVE_") for e in c.get("env", [])) for c in containers)


def test_throughput_mode_sets_ray_serve_variables_on_head_and_workers(repo: Path) -> None:
    edit(repo, "deployments/prod/env.yaml", lambda d: d["env"]["serve"].update(throughput_optimized=True))
    service = yaml.safe_load(render_repo(repo, crd_dir=None).files["prod/ray.io.RayService-models.yaml"])
    head, *workers = _ray_containers(service)
    threads = []
    for container in [head, *workers]:
        # Plain variables first (the body limit, then Ray's), then the secrets.
        plain = {e["name"]: e["value"] for e in container["env"] if "value" in e}
        assert THROUGHPUT_ENV.items() <= plain.items()
        assert [e["name"] for e in container["env"]][len(plain)] == "PREDICTION_DB_URL"
        # HAProxy's threads follow each pod's CPUs: one per two, up to Ray's 4.
        cpus = float(container["resources"]["limits"]["cpu"])
        threads.append((cpus, plain["RAY_SERVE_HAPROXY_NBTHREAD"]))
    assert threads == [(2.0, "1"), (3.0, "1"), (6.0, "3")]  # the fixture prod's head and its two worker groups
    # Ray itself takes the variable: the HAProxy config its Serve writes in a container with this environment.
    plain = {e["name"]: e["value"] for e in workers[-1]["env"] if "value" in e}
    probe = "from ray.serve._private.haproxy import HAProxyConfig; print(HAProxyConfig().nbthread)"
    ray_reads = subprocess.run(
        [sys.executable, "-c", probe], env={**os.environ, **plain}, capture_output=True, text=True, check=True
    )
    assert ray_reads.stdout.strip() == "3"
    # HAProxy takes over port 8000 of every pod: the serve Service KubeRay makes from the head's port is unchanged.
    assert {"containerPort": 8000, "name": "serve"} in head["ports"]
    assert serve_config_problems(service["spec"]["serveConfigV2"]) == []


def test_max_request_body_bytes_reaches_every_ray_container(repo: Path) -> None:
    edit(repo, "deployments/prod/env.yaml", lambda d: d["env"]["serve"].update(max_request_body_bytes=4096))
    service = yaml.safe_load(render_repo(repo, None).files["prod/ray.io.RayService-models.yaml"])
    containers = _ray_containers(service)
    assert len(containers) > 1
    for container in containers:
        assert {"name": "MAX_REQUEST_BODY_BYTES", "value": "4096"} in container["env"]
    # Not per application: a runtime_env would give each application worker processes of its own (slower starts).
    config = yaml.safe_load(service["spec"]["serveConfigV2"])
    assert all("runtime_env" not in a for a in config["applications"])


def test_workers_preload_serve_and_the_apps_unless_switched_off(repo: Path) -> None:
    def preloads() -> list[str | None]:
        service = yaml.safe_load(render_repo(repo, None).files["prod/ray.io.RayService-models.yaml"])
        containers = _ray_containers(service)
        assert len(containers) > 1
        return [next((e["value"] for e in c["env"] if e["name"] == PRELOAD_MODULES_ENV), None) for c in containers]

    assert set(preloads()) == {PROD_PRELOAD}
    edit(repo, "deployments/prod/env.yaml", lambda d: d["env"]["serve"].update(preload_modules=False))
    assert set(preloads()) == {None}


def test_access_log_is_on_unless_switched_off(repo: Path) -> None:
    def logging_configs() -> list[dict[str, object]]:
        service = yaml.safe_load(render_repo(repo, None).files["prod/ray.io.RayService-models.yaml"])
        config = yaml.safe_load(service["spec"]["serveConfigV2"])
        assert serve_config_problems(service["spec"]["serveConfigV2"]) == []
        return [a["logging_config"] for a in config["applications"]]

    default = logging_configs()
    assert len(default) > 1
    assert default == [{"enable_access_log": True}] * len(default)
    edit(repo, "deployments/prod/env.yaml", lambda d: d["env"]["serve"].update(access_log=False))
    assert logging_configs() == [{"enable_access_log": False}] * len(default)


def test_warm_workers_add_the_toolkit_app_to_the_cluster_only_when_asked(repo: Path) -> None:
    from serve_apps.warm_workers import WarmWorkersArgs

    def applications() -> list[dict[str, Any]]:
        service = yaml.safe_load(render_repo(repo, None).files["prod/ray.io.RayService-models.yaml"])
        assert serve_config_problems(service["spec"]["serveConfigV2"]) == []
        return yaml.safe_load(service["spec"]["serveConfigV2"])["applications"]

    spec_apps = applications()
    assert WARM_WORKERS_APP not in [a["name"] for a in spec_apps]
    edit(repo, "deployments/prod/env.yaml", lambda d: d["env"].setdefault("serve", {}).update(warm_workers=3))
    *same, warm = applications()
    assert same == spec_apps
    assert warm["name"] == WARM_WORKERS_APP
    assert warm["import_path"] == "serve_apps.warm_workers:app_builder"
    assert warm["route_prefix"] is None  # takes no requests
    assert WarmWorkersArgs.model_validate(warm["args"]).per_node == 3
    assert [d["ray_actor_options"]["num_cpus"] for d in warm["deployments"]] == [0.0]
    # No spec app can take its name: app names are Kubernetes names.
    assert re.fullmatch(K8S_NAME_PATTERN, WARM_WORKERS_APP) is None


def test_the_app_of_apps_can_never_delete_argocd_config_or_environments() -> None:
    root = Path(__file__).parents[3]
    bootstrap = yaml.safe_load((root / "clusters/argocd/bootstrap.yaml").read_text())
    # Deleting the root must not cascade into every Application, their workloads and their IAM roles.
    assert "finalizers" not in bootstrap["metadata"]
    files = render_fixture()
    for path in [p for p in files if p.startswith("argocd/")]:
        annotations = yaml.safe_load(files[path])["metadata"].get("annotations", {})
        options = set(annotations.get("argocd.argoproj.io/sync-options", "").split(","))
        assert {"Prune=false", "Delete=false"} <= options, path


def test_argocd_cm_is_a_partial_patch_of_health_keys_only() -> None:
    config_map = yaml.safe_load(render_fixture()["argocd/v1.ConfigMap-argocd-cm.yaml"])
    assert "ServerSideApply=true" in config_map["metadata"]["annotations"]["argocd.argoproj.io/sync-options"]
    assert "labels" not in config_map["metadata"]  # Argo CD's own labels stay Argo CD's
    assert all(key.startswith("resource.customizations.health.") for key in config_map["data"])


def test_a_clean_render_of_the_shipped_repo_prints_no_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = Path(__file__).parents[3]
    assert main(["--root", str(root), "render", "--out", str(tmp_path / "rendered")]) == 0
    out = capsys.readouterr().out
    assert [line for line in out.splitlines() if line.startswith("parity of ")], out
    assert not [line for line in out.splitlines() if "warning" in line or "error" in line], out
    assert (tmp_path / "rendered/staging-ecs/PARITY.md").is_file()


@pytest.mark.parametrize(("cpus", "threads"), [(0.5, 1), (1, 1), (2, 1), (3, 1), (4, 2), (7.5, 3), (8, 4), (64, 4)])
def test_haproxy_gets_one_thread_per_two_cpus_up_to_rays_four(cpus: float, threads: int) -> None:
    assert haproxy_threads(cpus) == threads


def _plain_env_names(node: Any) -> set[str]:
    """Names of the variables with a literal value (not a secret) in every container env list under `node`."""
    names: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("env", "environment") and isinstance(value, list):
                names |= {e["name"] for e in value if isinstance(e, dict) and "name" in e and "value" in e}
            names |= _plain_env_names(value)
    elif isinstance(node, list):
        for item in node:
            names |= _plain_env_names(item)
    return names


def test_every_variable_render_sets_is_one_no_secret_may_take() -> None:
    # secret_names_are_free keeps secrets off the variables render sets itself; a new one must join its list.
    trees = [Path(__file__).parents[3] / "rendered", *GOLDEN_TREES.values()]
    found: set[str] = set()
    for tree in trees:
        for path in tree.rglob("*"):
            if path.suffix == ".json":
                found |= _plain_env_names(json.loads(path.read_text()))
            elif path.suffix == ".yaml":
                found |= {name for doc in yaml.safe_load_all(path.read_text()) for name in _plain_env_names(doc)}
    assert "MAX_REQUEST_BODY_BYTES" in found
    assert (
        sorted(
            name
            for name in found
            if name not in RESERVED_ENV_VARS and not name.startswith(tuple(RESERVED_ENV_PREFIXES))
        )
        == []
    )
