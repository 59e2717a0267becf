"""The serving image runs what KubeRay makes of the rendered RayService: a head and a worker container of the image,
started as the operator starts their pods, and the rendered serveConfigV2 submitted to the head's dashboard as the
operator submits it. The apps must then answer on the head's port 8000, from replicas placed on the worker.

The reference is KubeRay's source (github.com/ray-project/kuberay at feeaf72f, 2026-08-19; paths below are under
ray-operator/controllers/ray/). What the test takes from it, beside each rule in the code:
- common/pod.go BuildPod: the Ray container runs `/bin/bash -c -- "ulimit -n ...; ray start ..."`
  (utils/util.go GetContainerCommand) and gets a memory-backed /dev/shm the size of its memory limit
  (addEmptyDir, makeEmptyDirVolume).
- common/pod.go DefaultHeadPodTemplate, DefaultWorkerPodTemplate, setMissingRayStartParams, generateRayStartCommand,
  convertParamMap: the `ray start` line from the group's rayStartParams, completed with the head's address (workers),
  `--block`, the metrics and dashboard-agent ports, `--no-monitor` on the head when in-tree autoscaling is on, and
  `--num-cpus` / `--memory` derived from the container's limits.
- common/pod.go setContainerEnvVars and SetContainerTokenAuthEnvVars: the variables the operator adds to the
  rendered container env, among them RAY_AUTH_MODE=token and RAY_AUTH_TOKEN from the cluster's Secret, whose token
  is 32 random bytes in base64 (raycluster_controller.go createAuthSecret).
- utils/util.go GenerateRayClusterName, GenerateHeadServiceName, GenerateFQDNServiceName, PodName: the names; the
  head container answers to its Service's name and FQDN on the test's bridge network.
- rayservice_controller.go reconcileServe, getAndCheckServeStatus, updateServeDeployment, and
  utils/dashboardclient/dashboard_httpclient.go: every 2 s, GET /api/serve/applications/?api_type=declarative on
  the dashboard (8265); while nothing was submitted (or no app is found), PUT the serveConfigV2 turned into JSON
  there; ready when every app is RUNNING. Both requests carry `x-ray-authorization: Bearer <token>`.
- common/pod.go initLivenessAndReadinessProbe: the head's readiness probe (Ray >= 2.53: GET :52365/api/healthz) gates
  the worker's start, which KubeRay's wait-gcs-ready init container does; the RayService worker's readiness probe
  (raylet and Serve proxy, `bash -c "wget ... | grep success"` in the container) must pass before traffic.

Deviations, each for a reason: Docker refuses a CPU limit above the machine's cores (the fixture's worker asks 3,
CI machines may have 2), so a CPU limit is capped at the core count and `--num-cpus` follows the capped limit as
KubeRay derives it; memory limits stay as rendered (Docker caps memory, it does not reserve it). The autoscaler
sidecar is not run (it drives the Kubernetes API; the cluster stays at the worker group's one replica), nor the
init container (the worker is started once the head is ready), nor the operator's Services and periodic probes:
the test waits on each readiness once, and reaches the head through ports published on 127.0.0.1.

It needs a Docker engine and skips, saying so, when none answers. The image is $SERVING_IMAGE when set, else it is
built here. Every container and network it creates is removed.
"""

from __future__ import annotations

import base64
import contextlib
import json
import math
import os
import secrets
import shlex
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import yaml

from tests.golden_tree import FIXTURE_REPO
from tests.integration.serving_image import APP, docker, logs, model_volume, needs_engine, render_app, serving_image
from tests.integration.single_app import free_port

ENV = "dev"  # the fixture repo's KubeRay env
RAYSERVICE = f"{ENV}/ray.io.RayService-serving.yaml"
READY_TIMEOUT_S = 300.0
REQUEUE_S = 2.0  # rayservice_controller.go ServiceDefaultRequeueDuration: one reconcile every 2 s
HTTP_TIMEOUT_S = 2.0  # utils/constant.go RayHTTPClientDirectTimeoutSeconds: the operator's dashboard client
# utils/constant.go: DefaultGcsServerPort, DefaultDashboardPort, DefaultServingPort, DefaultMetricsPort,
# DefaultDashboardAgentListenPort, DefaultDomainName, KUBERAY_VERSION (of that commit), LOCAL_HOST.
GCS_PORT = 6379
DASHBOARD_PORT = 8265
SERVE_PORT = 8000
METRICS_PORT = 8080
AGENT_PORT = 52365
CLUSTER_DOMAIN = "cluster.local"
KUBERAY_VERSION = "nightly"
LOCAL_HOST = "127.0.0.1"
# convertParamMap: flags that take "true"/"false" as a value; any other "true" is a bare switch, "false" is dropped.
BOOLEAN_VALUED_FLAGS = {"log-color", "include-dashboard", "include-log-monitor"}
DECLARATIVE = {"api_type": "declarative"}  # dashboard_httpclient.go GetServeDetails: APITypeParam
CORES = os.cpu_count() or 1  # Docker refuses a CPU limit above the machine's cores

pytestmark = needs_engine


@pytest.fixture(scope="module")
def image() -> Iterator[str]:
    """The serving image (serving_image.py)."""
    with serving_image() as tag:
        yield tag


def cpu_limit(quantity: str) -> int:
    """A Kubernetes CPU quantity as KubeRay turns it into `--num-cpus`: resource.Quantity.Value(), rounded up."""
    if quantity.endswith("m"):
        return math.ceil(int(quantity[:-1]) / 1000)
    return math.ceil(float(quantity))


def memory_limit(quantity: str) -> int:
    """A Kubernetes memory quantity in bytes (the render writes Mi or Gi)."""
    return int(quantity[:-2]) * {"Mi": 2**20, "Gi": 2**30}[quantity[-2:]]


def flags(params: dict[str, str]) -> str:
    """rayStartParams as command-line flags, sorted, spaced as convertParamMap writes them."""
    out = ""
    for key in sorted(params):
        value = params[key]
        if value.lower() in ("true", "false") and key not in BOOLEAN_VALUED_FLAGS:
            out += f" --{key} " if value.lower() == "true" else ""
        else:
            out += f" --{key}={value} "
    return out


@dataclass(frozen=True)
class Names:
    """The names KubeRay gives a RayService's cluster (utils/util.go)."""

    cluster: str  # GenerateRayClusterName: <RayService>-<5 random characters>
    namespace: str

    @property
    def head_service(self) -> str:
        return f"{self.cluster}-head-svc"  # GenerateHeadServiceName

    @property
    def head_fqdn(self) -> str:
        return f"{self.head_service}.{self.namespace}.svc.{CLUSTER_DOMAIN}"  # GenerateFQDNServiceName


@dataclass(frozen=True)
class Pod:
    """A Ray pod as KubeRay builds it: name (also the hostname), `ray start` line, environment and limits."""

    name: str
    ray_start: str
    env: dict[str, str]
    cpus: int  # the container's CPU limit, capped at the machine's cores
    rendered_cpus: int  # the rendered CPU limit
    memory_bytes: int

    @property
    def args(self) -> list[str]:
        # BuildPod: Command is GetContainerCommand(), Args the ulimit and the generated `ray start`.
        return ["-c", "--", f"ulimit -n ${{RAY_START_ULIMIT_OPEN_FILES:-65536}}; {self.ray_start}"]


def ray_pod(group: dict[str, Any], head: bool, names: Names, token: str, autoscaling: bool) -> Pod:
    """The pod KubeRay makes of a head or worker group spec, its CPU limit capped at the machine's cores."""
    template = group["template"]["spec"]
    (container,) = template["containers"]
    assert "command" not in container and "args" not in container, container  # else BuildPod prepends them
    limits = container["resources"]["limits"]
    assert set(limits) == {"cpu", "memory"}, limits  # no accelerator to turn into --num-gpus / --resources
    rendered_cpus = cpu_limit(limits["cpu"])
    cpus = min(rendered_cpus, CORES)
    memory = memory_limit(limits["memory"])
    group_label = "headgroup" if head else group["groupName"]  # the ray.io/group label
    # PodName: generateName <cluster>-head- or <cluster>-<group>-worker-, to which Kubernetes adds 5 characters.
    prefix = f"{names.cluster}-head-" if head else f"{names.cluster}-{group_label}-worker-"
    pod_name = prefix + uuid.uuid4().hex[:5]

    params = dict(group["rayStartParams"])
    if head:  # setMissingRayStartParams
        params.setdefault("dashboard-host", "0.0.0.0")
        if autoscaling:  # DefaultHeadPodTemplate: the autoscaler sidecar replaces Ray's monitor
            params["no-monitor"] = "true"
    else:
        params.setdefault("address", f"{names.head_fqdn}:{GCS_PORT}")
    params.setdefault("metrics-export-port", str(METRICS_PORT))
    params["block"] = "true"
    params.setdefault("dashboard-agent-listen-port", str(AGENT_PORT))
    params.setdefault("num-cpus", str(cpus))  # generateRayStartCommand: from the CPU limit
    params.setdefault("memory", str(memory))  # generateRayStartCommand: from the memory limit
    ray_start = ("ray start --head " if head else "ray start ") + flags(params)

    env: dict[str, str] = {}
    for entry in container.get("env", []):
        assert set(entry) == {"name", "value"}, f"a secret the test does not resolve: {entry}"
        env[entry["name"]] = entry["value"]
    # SetContainerTokenAuthEnvVars (authOptions.mode token, no K8s token auth): the mode and the Secret's token.
    env.setdefault("RAY_AUTH_MODE", "token")
    env.setdefault("RAY_AUTH_TOKEN", token)
    # setContainerEnvVars: the head reaches GCS on LOCAL_HOST, a worker on the head Service's FQDN.
    ip = LOCAL_HOST
    if not head:
        ip = names.head_fqdn
        env["FQ_RAY_IP"] = ip
        env["RAY_IP"] = names.head_service  # ExtractRayIPFromFQDN
    env["RAY_CLUSTER_NAME"] = names.cluster  # the ray.io/cluster label
    env["RAY_CLUSTER_NAMESPACE"] = names.namespace
    env["RAY_CLOUD_INSTANCE_ID"] = pod_name
    env["RAY_NODE_TYPE_NAME"] = group_label
    env["KUBERAY_GEN_RAY_START_CMD"] = ray_start
    env.setdefault("RAY_PORT", str(GCS_PORT))
    # RayService clusters only: faster failure detection of dead actors, GCS requests and Serve's KV store.
    env.setdefault("RAY_timeout_ms_task_wait_for_death_info", "0")
    env.setdefault("RAY_gcs_server_request_timeout_seconds", "5")
    env.setdefault("RAY_SERVE_KV_TIMEOUT_S", "5")
    env.setdefault("RAY_ADDRESS", f"{ip}:{GCS_PORT}")
    env.setdefault("RAY_USAGE_STATS_KUBERAY_IN_USE", "1")
    if head:
        env["RAY_USAGE_STATS_EXTRA_TAGS"] = f"kuberay_version={KUBERAY_VERSION};kuberay_crd=RayService"
    env.setdefault("RAY_DASHBOARD_ENABLE_K8S_DISK_USAGE", "1")
    return Pod(pod_name, ray_start, env, cpus, rendered_cpus, memory)


@dataclass
class Cluster:
    """The running head and worker containers and how to reach the head from here."""

    head: Pod
    worker: Pod
    network: str
    token: str
    serve_config_v2: str
    ports: dict[int, int]  # head container port -> port published on 127.0.0.1

    def url(self, container_port: int) -> str:
        return f"http://127.0.0.1:{self.ports[container_port]}"

    @property
    def auth(self) -> dict[str, str]:
        return {"x-ray-authorization": f"Bearer {self.token}"}  # dashboard_httpclient.go setAuthHeader

    def ip(self, pod: Pod) -> str:
        fmt = f'{{{{(index .NetworkSettings.Networks "{self.network}").IPAddress}}}}'
        return docker("inspect", "--format", fmt, pod.name).stdout.strip()


def wait_for(what: str, ready: Callable[[], bool], containers: list[str], period_s: float = 1.0) -> float:
    """Call `ready` every `period_s` until it is true; the seconds it took. Fails when a container stops first."""
    started = time.monotonic()
    while time.monotonic() - started < READY_TIMEOUT_S:
        for name in containers:
            if docker("inspect", "--format", "{{.State.Running}}", name).stdout.strip() != "true":
                pytest.fail(f"{name} stopped before {what}:\n{logs(name)}")
        if ready():
            return time.monotonic() - started
        time.sleep(period_s)
    pytest.fail(f"not {what} after {READY_TIMEOUT_S:g} s:\n" + "\n".join(f"{c}:\n{logs(c)}" for c in containers))


def start(pod: Pod, image: str, network: str, options: list[str]) -> None:
    """`docker run` the pod's Ray container, printing the command line (values of --env stay out of it)."""
    args = [
        *("run", "--detach", "--name", pod.name, "--hostname", pod.name, "--network", network),
        *("--cpus", str(pod.cpus), "--memory", str(pod.memory_bytes), "--shm-size", str(pod.memory_bytes)),
        *options,
        *(arg for variable in sorted(pod.env) for arg in ("--env", variable)),
        *("--entrypoint", "/bin/bash"),
        image,
        *pod.args,
    ]
    print(f"\n{shlex.join(['docker', *args])}")
    # `--env NAME` takes the value from the CLI's environment, so the token is in no command line.
    result = docker(*args, check=False, env={**os.environ, **pod.env})
    if result.returncode != 0:
        pytest.fail(f"docker run {pod.name} failed: {result.stderr}")


def head_ready(cluster: Cluster) -> bool:
    """The head's readiness probe (Ray >= 2.53): an HTTP GET of the dashboard agent's /api/healthz, 2xx or 3xx."""
    try:
        return 200 <= httpx.get(f"{cluster.url(AGENT_PORT)}/api/healthz", timeout=HTTP_TIMEOUT_S).status_code < 400
    except httpx.HTTPError:
        return False


def worker_ready(cluster: Cluster) -> bool:
    """The RayService worker's readiness probe, run in its container as the kubelet runs an exec probe."""
    raylet = f"wget --tries 1 -T 2 -q -O- http://localhost:{AGENT_PORT}/api/local_raylet_healthz | grep success"
    proxy = f"wget --tries 1 -T 10 -q -O- http://localhost:{SERVE_PORT}/-/healthz | grep success"
    return docker("exec", cluster.worker.name, "bash", "-c", f"{raylet} && {proxy}", check=False).returncode == 0


@pytest.fixture(scope="module")
def cluster(image: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """The rendered RayService's head and worker, each a container on a bridge network of the test's; the worker
    started once the head is ready."""
    service = yaml.safe_load(render_app(tmp_path_factory, FIXTURE_REPO, ENV, 32)[RAYSERVICE])
    config = service["spec"]["rayClusterConfig"]
    assert config["authOptions"] == {"mode": "token"}, config["authOptions"]
    (group,) = config["workerGroupSpecs"]
    assert group["replicas"] == 1, group  # one worker pod, as KubeRay starts the group
    names = Names(f"{service['metadata']['name']}-{uuid.uuid4().hex[:5]}", service["metadata"]["namespace"])
    token = base64.b64encode(secrets.token_bytes(32)).decode()
    autoscaling = bool(config.get("enableInTreeAutoscaling"))
    head = ray_pod(config["headGroupSpec"], True, names, token, autoscaling)
    worker = ray_pod(group, False, names, token, autoscaling)
    for pod in (head, worker):
        if pod.cpus < pod.rendered_cpus:
            print(f"\n{pod.name}: CPU limit {pod.rendered_cpus} capped at this machine's {CORES} cores")
    cluster = Cluster(
        head, worker, f"it-{names.cluster}", token, service["spec"]["serveConfigV2"],
        {port: free_port() for port in (SERVE_PORT, DASHBOARD_PORT, AGENT_PORT)},
    )  # fmt: skip
    docker("network", "create", cluster.network)
    try:
        publish = [f"--publish=127.0.0.1:{host}:{port}/tcp" for port, host in cluster.ports.items()]
        aliases = [f"--network-alias={alias}" for alias in (names.head_service, names.head_fqdn)]
        start(head, image, cluster.network, [*aliases, *publish])
        head_s = wait_for("the head ready", lambda: head_ready(cluster), [head.name])
        print(f"head ready after {head_s:.0f} s")
        start(worker, image, cluster.network, list(model_volume()))  # the replicas load the model there
        yield cluster
    finally:
        docker("rm", "--force", worker.name, head.name, check=False)
        docker("network", "rm", cluster.network, check=False)


def serve_details(cluster: Cluster) -> dict[str, Any] | None:
    """GET /api/serve/applications/ as the operator asks it; None while the dashboard cannot answer."""
    try:
        response = httpx.get(
            f"{cluster.url(DASHBOARD_PORT)}/api/serve/applications/",
            params=DECLARATIVE,
            headers=cluster.auth,
            timeout=HTTP_TIMEOUT_S,
        )
    except httpx.HTTPError:
        return None
    return response.json() if response.is_success else None


def test_the_dashboard_wants_the_operators_token(cluster: Cluster) -> None:
    wait_for("the dashboard answering", lambda: serve_details(cluster) is not None, [cluster.head.name])
    url = f"{cluster.url(DASHBOARD_PORT)}/api/serve/applications/"
    assert httpx.get(url, params=DECLARATIVE, timeout=10).status_code == 401
    wrong = {"x-ray-authorization": "Bearer " + base64.b64encode(secrets.token_bytes(32)).decode()}
    assert httpx.get(url, params=DECLARATIVE, headers=wrong, timeout=10).status_code == 403


def test_the_rayservice_serves_from_its_worker(cluster: Cluster) -> None:
    # updateServeDeployment: serveConfigV2 read as YAML into a map, marshalled to JSON, PUT as application/json.
    body = json.dumps(yaml.safe_load(cluster.serve_config_v2))
    submitted = False

    def reconcile() -> bool:
        """One reconcileServe: read the apps' status, submit the config when needed; ready when all RUNNING."""
        nonlocal submitted
        details = serve_details(cluster)
        if details is None:
            return False
        apps = details.get("applications") or {}
        failed = {name: app["message"] for name, app in apps.items() if app["status"] == "DEPLOY_FAILED"}
        assert not failed, f"{failed}\n{logs(cluster.worker.name)}"
        if not submitted or not apps:  # checkIfNeedSubmitServeApplications
            # A failed or timed-out PUT is an error of this reconcile; the next one submits again (idempotent).
            with contextlib.suppress(httpx.HTTPError):
                response = httpx.put(
                    f"{cluster.url(DASHBOARD_PORT)}/api/serve/applications/",
                    content=body,
                    headers={"Content-Type": "application/json", **cluster.auth},
                    timeout=HTTP_TIMEOUT_S,
                )
                submitted = submitted or response.is_success
        return bool(apps) and all(app["status"] == "RUNNING" for app in apps.values())

    containers = [cluster.head.name, cluster.worker.name]
    serve_s = wait_for("every Serve application RUNNING", reconcile, containers, period_s=REQUEUE_S)
    ready_s = wait_for("the worker ready", lambda: worker_ready(cluster), containers)
    print(f"Serve applications RUNNING after {serve_s:.0f} s, the worker's Serve proxy ready {ready_s:.0f} s later")

    app_url = f"{cluster.url(SERVE_PORT)}/{APP}"
    health = httpx.get(f"{app_url}/healthz", timeout=10)
    answer = httpx.post(f"{app_url}/predict", json={"values": [1.0, 2.5, -4.0]}, timeout=10)
    print(f"head :{SERVE_PORT}/{APP}/healthz -> {health.status_code} {health.text[:200]}")
    print(f"head :{SERVE_PORT}/{APP}/predict -> {answer.status_code} {answer.text[:200]}")
    assert health.status_code == 200, health.text
    assert answer.status_code == 200, answer.text
    assert answer.json()["values"] == [2.0, 5.0, -8.0]

    details = serve_details(cluster)
    assert details is not None
    (deployment,) = details["applications"][APP]["deployments"].values()
    replicas = [(r["node_ip"], r["state"]) for r in deployment["replicas"]]
    worker_ip, head_ip = cluster.ip(cluster.worker), cluster.ip(cluster.head)
    print(f"replicas (node IP, state): {replicas}; worker {worker_ip}, head {head_ip}")
    assert replicas, deployment
    assert all(ip == worker_ip for ip, _ in replicas), f"a replica not on the worker {worker_ip}: {replicas}"
