"""The spec of one environment, after its overlays are merged: the single source of truth for everything rendered."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import Field, PrivateAttr, field_validator, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError, ValidationError

from render.spec.base import EnvVarName, K8sName, StrictModel
from render.spec.builders import app_args_type, streams_tokens
from render.spec.overlay import Sources
from render.spec.packing import GpuDemand, GpuNode, unplaced_replicas
from render.spec.rules import rule_error
from render.spec.secrets import SecretRef
from render.targets import TargetConfig
from serve_apps.common.artifact import ModelArtifact

IMAGE_DIGEST_PATTERN = re.compile(r"@sha256:[0-9a-f]{64}$")
STATIC_AWS_KEY_VARS = frozenset({"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"})
# Variables a secret may not be injected as, each with what it would break. Ray reads RAY_* variables as settings
# and KubeRay sets RAY_* and KUBERAY_* ones in every Ray container (ray-project/kuberay ray-operator/controllers/
# ray/common/pod.go, setContainerEnvVars); the toolkit's own are render/plan.py's and single_node.py's; the identity
# ones come from the EKS Pod Identity webhook (IRSA) or, on Cloud Run, from render (serve_apps/common/web_identity.py).
RESERVED_ENV_PREFIXES = {
    "RAY_": "Ray reads RAY_* variables as its own settings",
    "KUBERAY_": "KubeRay sets KUBERAY_* variables in every Ray container",
}
RESERVED_ENV_VARS = {
    **dict.fromkeys(
        ("PATH", "HOME", "HOSTNAME", "PYTHONPATH", "PYTHONHOME", "LD_LIBRARY_PATH", "LD_PRELOAD"),
        "the container's processes need their own",
    ),
    **dict.fromkeys(("FQ_RAY_IP", "REDIS_PASSWORD"), "KubeRay sets it in every Ray container"),
    **dict.fromkeys(("MAX_REQUEST_BODY_BYTES", "SERVE_CONFIG"), "the toolkit sets it in the containers it renders"),
    **dict.fromkeys(
        ("AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_SESSION_NAME", "GOOGLE_ID_TOKEN_AUDIENCE"),
        "the workload's cloud identity sets it (IRSA on EKS, render on Cloud Run)",
    ),
}


Secrets = Annotated[
    dict[EnvVarName, SecretRef],
    Field(
        default_factory=dict,
        description="Environment variable name → secret reference; the value is injected at run time, never rendered.",
    ),
]


class GitOps(StrictModel):
    """Where Argo CD reads the rendered manifests from."""

    repo_url: Annotated[
        str, Field(pattern=r"^(https://|ssh://|git@).+", description="Git repository URL Argo CD clones.")
    ]
    revision: Annotated[str, Field(default="main", min_length=1, description="Branch, tag or commit to sync.")]


class ServeOptions(StrictModel):
    """HTTP options of the Serve proxy, shared by every app of the environment."""

    request_timeout_s: Annotated[
        float | None,
        Field(default=None, gt=0, le=3600, description="End-to-end timeout of one HTTP request, in seconds."),
    ]
    keep_alive_timeout_s: Annotated[
        int,
        Field(
            default=75,
            ge=1,
            le=3600,
            description=(
                "HTTP keep-alive timeout of the proxy, in seconds. It must outlast the idle timeout of the load"
                " balancer in front: if the proxy closes an idle connection the balancer still holds, the next request"
                " on it fails with a 502. An ALB keeps idle connections 60 s by default, so 75."
            ),
        ),
    ]
    max_request_body_bytes: Annotated[
        int,
        Field(
            default=1024**2,
            ge=1024,
            le=1024**3,
            description=(
                "Largest HTTP request body an app accepts, in bytes; a larger one is answered 413 before it is read."
                " It is in the environment of every Ray container, so changing it replaces the Ray cluster (on"
                " KubeRay a zero-downtime upgrade) rather than redeploying the apps."
            ),
        ),
    ]
    access_log: Annotated[
        bool,
        Field(
            default=True,
            description=(
                "Ray Serve's access log: one line per request in each replica's log (method, route, status,"
                " latency). Off saves its CPU on every request (5-10 % of throughput on a busy 2-core replica,"
                " `nox -s bench`); the prediction log and the metrics still record every answered request."
            ),
        ),
    ]
    throughput_optimized: Annotated[
        bool,
        Field(
            default=False,
            description=(
                "Ray Serve's throughput-optimized mode (RAY_SERVE_THROUGHPUT_OPTIMIZED with HAProxy): HAProxy replaces"
                " the Python proxy on every node and forwards each request straight to an ingress replica's own HTTP"
                " port, user code runs on the replica's event loop, deployments call each other over gRPC and request"
                " logs are buffered. Trades: one blocking call in an async handler stalls its whole replica; an"
                " ingress replica drains for at least 30 s when stopped; access logs reach their files late."
            ),
        ),
    ]
    preload_modules: Annotated[
        bool,
        Field(
            default=True,
            description=(
                "Every Ray worker imports Ray Serve's replica code, what every model replica imports (boto3 for"
                " S3, SQLAlchemy for the prediction log) and the modules of the apps its cluster serves when it"
                " starts, before it takes work (Ray's preload_python_modules). Ray starts a new app's replica"
                " worker beside the task that builds the app, so the replica finds them imported instead of importing"
                " them after the build: a new app answered 0.28 s sooner on average (2.66 s vs 2.94 s, README"
                " Benchmarks). A worker that serves no app imports them too. It is in the environment of every Ray"
                " container, so changing it replaces the Ray cluster."
            ),
        ),
    ]
    warm_workers: Annotated[
        int,
        Field(
            default=0,
            ge=0,
            le=16,
            description=(
                "Fresh Ray worker processes kept started on every node, head included, for Serve's next app build"
                " or replica to take instead of starting one (Python, Ray and the preloaded modules: about 0.9 s of"
                " a replica's start here). The toolkit's Serve application `_warm_workers` (no route, 0 CPUs) tops"
                " each node up through the raylet's own API, one worker at a time, once no worker was taken there"
                " for 5 s. 2 covers a new app's build and its replica. Costs per node about 100 MiB of memory per"
                " idle worker and 0.02 cores in all (README, Benchmarks)."
                " 0 turns it off. KubeRay only: a single-node target's task or instance deploys its one app once."
            ),
        ),
    ]


# docs.aws.amazon.com/elasticloadbalancing/latest/application/application-load-balancers.html#connection-idle-timeout:
# the ALB's idle timeout defaults to 60 s, and AWS recommends that targets keep connections alive longer than it.
ALB_IDLE_TIMEOUT_S = 60


# rendered/ holds a directory per environment beside this one, the Argo CD wiring the app of apps syncs into Argo
# CD's namespace: an environment of that name would mix its objects into it.
ARGOCD_DIR = "argocd"


class EnvSettings(StrictModel):
    """Who and where: the environment's identity, target and delivery settings."""

    name: Annotated[K8sName, Field(description="Environment name; equals its directory under deployments/.")]
    tier: Annotated[
        Literal["dev", "staging", "prod"],
        Field(description="Promotion stage; images must be pinned by digest outside dev."),
    ]
    target: Annotated[TargetConfig, Field(description="Where the environment runs; `kind` selects the target.")]
    image: Annotated[
        str,
        Field(min_length=1, description="Container image for Ray head, workers and tasks; `repo@sha256:<digest>`."),
    ]
    ray_version: Annotated[
        str, Field(pattern=r"^\d+\.\d+\.\d+$", description="Ray version inside the image, e.g. 2.60.0.")
    ]
    gitops: Annotated[GitOps, Field(description="Git repository and revision Argo CD syncs.")]
    secrets: Secrets
    serve: Annotated[
        ServeOptions, Field(default_factory=ServeOptions, description="HTTP options of Ray Serve for all apps.")
    ]

    @field_validator("name")
    @classmethod
    def name_is_not_reserved(cls, name: str) -> str:
        if name == ARGOCD_DIR:
            raise rule_error(
                "env_name_is_not_reserved",
                field="",
                got=name,
                rule=f"rendered/{ARGOCD_DIR}/ holds the Argo CD wiring, so no environment may be called {ARGOCD_DIR}",
                hint="rename the environment's directory under deployments/",
            )
        return name

    @model_validator(mode="after")
    def keep_alive_outlasts_load_balancer(self) -> EnvSettings:
        if self.serve.keep_alive_timeout_s <= ALB_IDLE_TIMEOUT_S:
            raise rule_error(
                "keep_alive_outlasts_load_balancer",
                field="serve.keep_alive_timeout_s",
                got=self.serve.keep_alive_timeout_s,
                rule=f"the proxy would close idle connections before a load balancer does (an ALB after"
                f" {ALB_IDLE_TIMEOUT_S} s by default), and requests sent on them would fail with 502",
                hint=f"set it above your load balancer's idle timeout: more than {ALB_IDLE_TIMEOUT_S} s (default 75)",
            )
        return self

    @model_validator(mode="after")
    def image_pinned_by_digest_outside_dev(self) -> EnvSettings:
        if self.tier != "dev" and not IMAGE_DIGEST_PATTERN.search(self.image):
            raise rule_error(
                "image_pinned_by_digest_outside_dev",
                field="image",
                got=self.image,
                rule=f"a {self.tier} image must be pinned by digest",
                hint="use `<repository>@sha256:<64 hex digits>` (docker buildx imagetools inspect prints it)",
                related=("tier",),
            )
        return self


class Toleration(StrictModel):
    """A Kubernetes toleration for a worker group's pods."""

    key: Annotated[str, Field(min_length=1, description="Taint key to tolerate.")]
    operator: Annotated[Literal["Equal", "Exists"], Field(default="Exists", description="How the value is matched.")]
    value: Annotated[str | None, Field(default=None, description="Taint value, with operator Equal.")]
    effect: Annotated[
        Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None,
        Field(default=None, description="Taint effect to tolerate; unset tolerates all."),
    ]


class HeadGroup(StrictModel):
    """The Ray head pod. It runs no user work (`num-cpus: "0"`), only GCS, the dashboard and the Serve controller."""

    node_type: Annotated[
        str | None,
        Field(
            default=None,
            min_length=1,
            description="Instance type the head pod runs on (selected by node.kubernetes.io/instance-type); the"
            " pod must fit its allocatable. Required on eks.",
        ),
    ]

    num_cpus: Annotated[float, Field(default=2, gt=0, le=256, description="CPU request and limit of the head pod.")]
    memory_gib: Annotated[
        float, Field(default=8, gt=0, le=2048, description="Memory request and limit of the head pod, in GiB.")
    ]
    node_selector: Annotated[
        dict[str, str], Field(default_factory=dict, description="Kubernetes nodeSelector for the head pod.")
    ]


class WorkerGroup(StrictModel):
    """A pool of identical Ray worker nodes: one pod per node, scaled by the Ray autoscaler between min and max."""

    name: K8sName
    node_type: Annotated[str, Field(min_length=1, description="Instance type backing this group, e.g. m6i.xlarge.")]
    accelerator: Annotated[
        str | None,
        Field(default=None, pattern=r"^nvidia-[a-z0-9-]+$", description="GPU model, e.g. nvidia-l4; GPU groups only."),
    ]
    min_replicas: Annotated[int, Field(ge=0, le=1000, description="Fewest nodes kept in this group.")]
    max_replicas: Annotated[int, Field(ge=1, le=1000, description="Most nodes the autoscaler may start.")]
    num_cpus: Annotated[int, Field(ge=1, le=512, description="CPUs per node offered to Ray.")]
    memory_gib: Annotated[float, Field(gt=0, le=4096, description="Memory per node, in GiB.")]
    num_gpus: Annotated[int, Field(default=0, ge=0, le=16, description="Whole GPUs per node.")]
    node_selector: Annotated[
        dict[str, str], Field(default_factory=dict, description="Extra Kubernetes nodeSelector labels for this group.")
    ]
    tolerations: Annotated[
        list[Toleration], Field(default_factory=list, description="Tolerations for this group's pods.")
    ]

    @model_validator(mode="after")
    def min_replicas_le_max_replicas(self) -> WorkerGroup:
        if self.min_replicas > self.max_replicas:
            raise rule_error(
                "min_replicas_le_max_replicas",
                field="min_replicas",
                got=self.min_replicas,
                rule=f"min_replicas must be <= max_replicas ({self.max_replicas})",
                hint="raise max_replicas or lower min_replicas",
                related=("max_replicas",),
            )
        return self

    @model_validator(mode="after")
    def accelerator_iff_gpus(self) -> WorkerGroup:
        if (self.accelerator is None) != (self.num_gpus == 0):
            raise rule_error(
                "accelerator_iff_gpus",
                field="accelerator",
                got=self.accelerator,
                rule=f"a group with num_gpus={self.num_gpus} must {'not ' if self.num_gpus == 0 else ''}"
                "name an accelerator",
                hint="set both num_gpus and accelerator for a GPU group, neither for a CPU group",
                related=("num_gpus",),
            )
        return self


class Slo(StrictModel):
    """Service level objectives: the pass/fail thresholds of load tests and benchmarks."""

    p95_ms: Annotated[float, Field(gt=0, le=600_000, description="95th percentile latency limit, in milliseconds.")]
    error_rate: Annotated[float, Field(ge=0, le=1, description="Highest tolerated fraction of failed requests.")]
    min_rps: Annotated[
        float, Field(ge=0, le=1_000_000, description="Lowest acceptable throughput, in requests per second.")
    ]
    ttft_p95_ms: Annotated[
        float | None,
        Field(
            default=None,
            gt=0,
            le=600_000,
            description=(
                "95th percentile time to first token, in milliseconds, of an app that streams tokens (its Args model"
                " says streams_tokens): the threshold of the ServingTTFTP95High alert and of the load test's TTFT"
                " gate. Unset: neither. The first token waits for the batch before it to finish, so this is what"
                " autoscaling_config.target_ongoing_requests and batching.max_batch_size hold down (docs: Operations,"
                " Generation apps)."
            ),
        ),
    ]

    @model_validator(mode="after")
    def ttft_p95_ms_le_p95_ms(self) -> Slo:
        if self.ttft_p95_ms is not None and self.ttft_p95_ms > self.p95_ms:
            raise rule_error(
                "ttft_p95_ms_le_p95_ms",
                field="ttft_p95_ms",
                got=self.ttft_p95_ms,
                rule=f"ttft_p95_ms must be <= p95_ms ({self.p95_ms:g}): a first token cannot come after the whole"
                " answer",
                hint="lower ttft_p95_ms, or raise p95_ms (the latency of the whole answer, a stream included)",
                related=("p95_ms",),
            )
        return self


class AutoscalingConfig(StrictModel):
    """Ray Serve replica autoscaling for one deployment (names as in Ray's autoscaling_config)."""

    min_replicas: Annotated[int, Field(default=1, ge=0, le=1000, description="Fewest replicas.")]
    max_replicas: Annotated[int, Field(default=1, ge=1, le=1000, description="Most replicas.")]
    target_ongoing_requests: Annotated[
        float, Field(default=2, gt=0, le=10_000, description="Ongoing requests per replica the autoscaler aims for.")
    ]
    upscale_delay_s: Annotated[
        float, Field(default=30, ge=0, description="How long load must stay high before adding replicas, seconds.")
    ]
    downscale_delay_s: Annotated[
        float, Field(default=600, ge=0, description="How long load must stay low before removing replicas, seconds.")
    ]

    @model_validator(mode="after")
    def min_replicas_le_max_replicas(self) -> AutoscalingConfig:
        if self.min_replicas > self.max_replicas:
            raise rule_error(
                "min_replicas_le_max_replicas",
                field="min_replicas",
                got=self.min_replicas,
                rule=f"min_replicas must be <= max_replicas ({self.max_replicas})",
                hint="raise max_replicas or lower min_replicas",
                related=("max_replicas",),
            )
        return self


class Batching(StrictModel):
    """Request batching of the deployment's model calls, applied in place through `reconfigure()`."""

    max_batch_size: Annotated[int, Field(ge=1, le=1024, description="Most requests in one batch.")]
    batch_wait_timeout_s: Annotated[
        float, Field(ge=0, le=10, description="Longest wait for a batch to fill, in seconds.")
    ]
    max_concurrent_batches: Annotated[
        int,
        Field(
            default=1,
            ge=1,
            le=16,
            description="Batches in the model at once: with 2, the replica answers one batch and forms the next while"
            " the model runs, instead of taking turns (the app's batcher, serve_apps/common/batching.py).",
        ),
    ]


class RayActorOptions(StrictModel):
    """Resources of each replica (names as in Ray's ray_actor_options, memory in GiB)."""

    num_cpus: Annotated[float, Field(default=1, ge=0, le=512, description="CPUs reserved per replica.")]
    num_gpus: Annotated[
        float, Field(default=0, ge=0, le=16, description="GPUs per replica; a fraction shares one GPU.")
    ]
    memory_gib: Annotated[
        float | None, Field(default=None, gt=0, le=4096, description="Memory reserved per replica, in GiB.")
    ]

    @field_validator("num_gpus")
    @classmethod
    def gpu_fraction_or_whole(cls, value: float) -> float:
        if value > 1 and not value.is_integer():
            raise rule_error(
                "gpu_fraction_or_whole",
                field="",
                got=value,
                rule="num_gpus above 1 must be a whole number",
                hint="use a fraction <= 1 to share a GPU, or a whole number of GPUs",
            )
        return value


class Deployment(StrictModel):
    """One Ray Serve deployment of an app; `name` matches the deployment class in the app's code."""

    name: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description="Deployment name as in the app code.")]
    num_replicas: Annotated[
        int | None, Field(default=None, ge=1, le=1000, description="Fixed replica count; excludes autoscaling_config.")
    ]
    autoscaling_config: Annotated[
        AutoscalingConfig | None, Field(default=None, description="Replica autoscaling; excludes num_replicas.")
    ]
    max_ongoing_requests: Annotated[
        int, Field(default=5, ge=1, le=10_000, description="Most requests in flight per replica.")
    ]
    batching: Annotated[Batching | None, Field(default=None, description="Request batching; unset disables it.")]
    health_check_period_s: Annotated[
        float,
        Field(
            default=2,
            gt=0,
            le=60,
            description="How often Serve checks each replica. A replica whose process died is noticed at its next"
            " check only, so this bounds how long Serve runs one replica short; Ray's own default is 10 s.",
        ),
    ]
    max_surge_percent: Annotated[
        int,
        Field(
            default=100,
            ge=0,
            le=100,
            description="Extra replicas a rollout may start, as a percentage of the target count: with a positive"
            " value the old replicas keep serving until their replacements are ready, so a version that never"
            " becomes healthy never takes the old one down. 0 (Ray's default) stops old replicas first and needs no"
            " spare capacity.",
        ),
    ]
    ray_actor_options: Annotated[
        RayActorOptions, Field(default_factory=RayActorOptions, description="Resources of each replica.")
    ]
    user_config: Annotated[
        dict[str, Any],
        Field(default_factory=dict, description="Passed to the deployment's reconfigure(); updated in place."),
    ]

    @model_validator(mode="after")
    def num_replicas_xor_autoscaling(self) -> Deployment:
        if (self.num_replicas is None) == (self.autoscaling_config is None):
            both = self.num_replicas is not None
            raise rule_error(
                "num_replicas_xor_autoscaling",
                field="num_replicas" if both else "",
                got=self.num_replicas,
                rule="set exactly one of num_replicas and autoscaling_config",
                hint=(
                    "an overlay that switches mode sets the other key to null"
                    if both
                    else "add num_replicas: 1 or an autoscaling_config"
                ),
                related=("autoscaling_config",),
            )
        return self

    @model_validator(mode="after")
    def max_ongoing_requests_ge_batch_size(self) -> Deployment:
        if self.batching is not None and self.max_ongoing_requests < self.batching.max_batch_size:
            raise rule_error(
                "max_ongoing_requests_ge_batch_size",
                field="max_ongoing_requests",
                got=self.max_ongoing_requests,
                rule=f"max_ongoing_requests must be >= batching.max_batch_size ({self.batching.max_batch_size})",
                hint="otherwise a replica never holds enough requests to fill a batch; raise max_ongoing_requests",
                related=("batching.max_batch_size",),
            )
        return self

    @field_validator("user_config")
    @classmethod
    def batching_not_in_user_config(cls, value: dict[str, Any]) -> dict[str, Any]:
        if "batching" in value:
            raise rule_error(
                "batching_not_in_user_config",
                field="batching",
                got=value["batching"],
                rule="user_config.batching is reserved: render fills it from the deployment's batching",
                hint="move it to the deployment's `batching` key",
            )
        return value

    @property
    def max_replicas(self) -> int:
        """Replicas at full scale-out."""
        if self.autoscaling_config is not None:
            return self.autoscaling_config.max_replicas
        assert self.num_replicas is not None
        return self.num_replicas

    @property
    def min_replicas(self) -> int:
        """Replicas Serve starts on deploy and keeps at least."""
        if self.autoscaling_config is not None:
            return self.autoscaling_config.min_replicas
        assert self.num_replicas is not None
        return self.num_replicas


class App(StrictModel):
    """A Ray Serve application: code, model, args, SLOs and its deployments."""

    name: K8sName
    import_path: Annotated[
        str,
        Field(
            pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$",
            description="`module:attribute` of the app builder, importable in the image.",
        ),
    ]
    route_prefix: Annotated[
        str, Field(pattern=r"^/([a-z0-9-]+(/[a-z0-9-]+)*)?$", description="HTTP path prefix, e.g. /zero-shot.")
    ]
    model: Annotated[
        ModelArtifact | None, Field(default=None, description="The model artifact, passed to the app as args.model.")
    ]
    args: Annotated[
        dict[str, Any],
        Field(default_factory=dict, description="Arguments of the app builder; validated against its Args model."),
    ]
    slo: Annotated[Slo, Field(description="Service level objectives of this app.")]
    secrets: Secrets
    deployments: Annotated[
        list[Deployment], Field(min_length=1, description="Deployment options, merged by name across overlays.")
    ]

    @field_validator("args")
    @classmethod
    def model_not_in_args(cls, value: dict[str, Any]) -> dict[str, Any]:
        if "model" in value:
            raise rule_error(
                "model_not_in_args",
                field="model",
                got=value["model"],
                rule="args.model is reserved: render fills it from the app's `model`",
                hint="move it to the app's `model` key",
            )
        return value

    @field_validator("deployments")
    @classmethod
    def unique_deployment_names(cls, value: list[Deployment]) -> list[Deployment]:
        _reject_duplicates([d.name for d in value], "unique_deployment_names", "deployment name")
        return value


class Spec(StrictModel):
    """One environment, fully merged: settings, Ray cluster shape and apps."""

    env: Annotated[EnvSettings, Field(description="Identity, target and delivery settings.")]
    head_group: Annotated[
        HeadGroup, Field(default_factory=HeadGroup, description="The Ray head pod (no user work runs there).")
    ]
    worker_groups: Annotated[
        list[WorkerGroup], Field(min_length=1, description="Ray worker node pools, merged by name across overlays.")
    ]
    apps: Annotated[list[App], Field(min_length=1, description="Serve applications, merged by name across overlays.")]
    # Which file set each key, from the loader (render/spec/load.py) through the validation context; empty for a Spec
    # validated without one. The parity report reads it: an environment can act only on what its own files set,
    # since an overlay cannot remove a key it inherits.
    _sources: Sources = PrivateAttr(default_factory=Sources)
    # What the cross-field rules below found, raised together by the last of them.
    _broken: list[PydanticCustomError] = PrivateAttr(default_factory=list)

    def model_post_init(self, context: Any, /) -> None:
        self._sources = (context or {}).get("sources", Sources())

    @property
    def sources(self) -> Sources:
        """Which file set each key path of this environment (see render.spec.overlay.Sources)."""
        return self._sources

    @field_validator("worker_groups")
    @classmethod
    def unique_worker_group_names(cls, value: list[WorkerGroup]) -> list[WorkerGroup]:
        _reject_duplicates([g.name for g in value], "unique_worker_group_names", "worker group name")
        return value

    @field_validator("apps")
    @classmethod
    def unique_app_names_and_routes(cls, value: list[App]) -> list[App]:
        _reject_duplicates([a.name for a in value], "unique_app_names", "app name")
        _reject_duplicates([a.route_prefix for a in value], "unique_route_prefixes", "route_prefix", "route_prefix")
        return value

    @model_validator(mode="after")
    def secrets_match_target_store(self) -> Spec:
        store = self.env.target.secret_store_kind
        scopes = [("env.secrets", self.env.secrets)] + [
            (f"apps.{i}.secrets", a.secrets) for i, a in enumerate(self.apps)
        ]
        for scope, secrets in scopes:
            for var, ref in secrets.items():
                if getattr(ref, store) is None:
                    self._broken.append(
                        rule_error(
                            "secrets_match_target_store",
                            field=f"{scope}.{var}",
                            got=ref.model_dump(exclude_none=True),
                            rule=f"a {self.env.target.kind} target reads secrets from {store}",
                            hint=f"reference the secret with {store}",
                        )
                    )
        return self

    @model_validator(mode="after")
    def secret_names_are_free(self) -> Spec:
        scopes = [("env.secrets", self.env.secrets)] + [
            (f"apps.{i}.secrets", a.secrets) for i, a in enumerate(self.apps)
        ]
        for scope, secrets in scopes:
            for var in sorted(secrets):
                why = RESERVED_ENV_VARS.get(var) or next(
                    (reason for prefix, reason in RESERVED_ENV_PREFIXES.items() if var.startswith(prefix)), None
                )
                if why is not None:
                    self._broken.append(
                        rule_error(
                            "secret_names_are_free",
                            field=f"{scope}.{var}",
                            got=secrets[var].model_dump(exclude_none=True),
                            rule=f"a secret cannot be injected as {var}: {why}",
                            hint="give the secret another variable name, and read that one in the app",
                        )
                    )
        return self

    @model_validator(mode="after")
    def secrets_agree_across_apps(self) -> Spec:
        seen: dict[str, SecretRef] = dict(self.env.secrets)
        for i, app in enumerate(self.apps):
            for var, ref in app.secrets.items():
                if var in seen and seen[var] != ref:
                    self._broken.append(
                        rule_error(
                            "secrets_agree_across_apps",
                            field=f"apps.{i}.secrets.{var}",
                            got=ref.model_dump(exclude_none=True),
                            rule=f"{var} is already bound to {seen[var].model_dump(exclude_none=True)};"
                            " pods share one environment",
                            hint="use a distinct variable name for a distinct secret",
                        )
                    )
                    continue
                seen[var] = ref
        return self

    @model_validator(mode="after")
    def no_static_aws_keys_outside_dev(self) -> Spec:
        # A stored key pair never rotates and works from anywhere it leaks to; every target has a role to assume
        # instead (IRSA on EKS, the task role on ECS, Google ID token federation on Cloud Run). Variable names from
        # https://docs.aws.amazon.com/cli/latest/userguide/cli-configure-envvars.html.
        if self.env.tier == "dev":
            return self
        scopes = [("env.secrets", self.env.secrets)] + [
            (f"apps.{i}.secrets", a.secrets) for i, a in enumerate(self.apps)
        ]
        for scope, secrets in scopes:
            for var in sorted(set(secrets) & STATIC_AWS_KEY_VARS):
                self._broken.append(
                    rule_error(
                        "no_static_aws_keys_outside_dev",
                        field=f"{scope}.{var}",
                        got=secrets[var].model_dump(exclude_none=True),
                        rule=f"a {self.env.tier} environment gets AWS credentials by assuming a role, not from a"
                        " stored key that never rotates",
                        hint=self.env.target.aws_identity_hint,
                        related=("env.tier",),
                    )
                )
        return self

    @model_validator(mode="after")
    def ttft_slo_needs_streaming_app(self) -> Spec:
        for i, app in enumerate(self.apps):
            if app.slo.ttft_p95_ms is None:
                continue
            try:
                args_type = app_args_type(app.import_path)
            except (ImportError, AttributeError, TypeError, ValueError):
                continue  # the args check reports an import_path that does not load (render/spec/load.py)
            if not streams_tokens(args_type):
                self._broken.append(
                    rule_error(
                        "ttft_slo_needs_streaming_app",
                        field=f"apps.{i}.slo.ttft_p95_ms",
                        got=app.slo.ttft_p95_ms,
                        rule=f"{app.import_path} does not stream tokens ({args_type.__name__} does not declare"
                        " streams_tokens), so it has no first token to time",
                        hint="remove ttft_p95_ms; slo.p95_ms bounds the app's whole answers",
                    )
                )
        return self

    @model_validator(mode="after")
    def gpu_needs_gpu_worker_group(self) -> Spec:
        if any(g.num_gpus for g in self.worker_groups):
            return self
        for i, app in enumerate(self.apps):
            for j, dep in enumerate(app.deployments):
                if dep.ray_actor_options.num_gpus > 0:
                    self._broken.append(
                        rule_error(
                            "gpu_needs_gpu_worker_group",
                            field=f"apps.{i}.deployments.{j}.ray_actor_options.num_gpus",
                            got=dep.ray_actor_options.num_gpus,
                            rule="a GPU replica needs a worker group with num_gpus > 0",
                            hint="add a GPU worker group (num_gpus, accelerator) or set num_gpus: 0",
                        )
                    )
        return self

    @model_validator(mode="after")
    def gpu_packing_fits(self) -> Spec:
        nodes = [
            GpuNode(gpus=g.num_gpus, cpus=g.num_cpus, group=g.name)
            for g in self.worker_groups
            if g.num_gpus
            for _ in range(g.max_replicas)
        ]
        demands = [
            GpuDemand(gpus=d.ray_actor_options.num_gpus, cpus=d.ray_actor_options.num_cpus, owner=(i, j))
            for i, a in enumerate(self.apps)
            for j, d in enumerate(a.deployments)
            if d.ray_actor_options.num_gpus > 0
            for _ in range(d.max_replicas)
        ]
        if not nodes or not demands:
            return self
        unplaced = unplaced_replicas(demands, nodes)
        if unplaced:
            app_index, dep_index = unplaced[0].owner
            capacity = sum(n.gpus for n in nodes)
            wanted = sum(d.gpus for d in demands)
            self._broken.append(
                rule_error(
                    "gpu_packing_fits",
                    field=f"apps.{app_index}.deployments.{dep_index}.ray_actor_options.num_gpus",
                    got=unplaced[0].gpus,
                    rule=(
                        f"{len(unplaced)} of {len(demands)} GPU replicas at max autoscale do not fit the GPU worker"
                        f" groups at max size ({len(nodes)} nodes, {capacity} GPUs; replicas want {wanted:g} GPUs"
                        " packed per GPU and per node, CPUs included)"
                    ),
                    hint="raise the GPU group's max_replicas, lower max_replicas or the GPU fraction of the replicas",
                )
            )
        return self

    @model_validator(mode="after")
    def target_accepts_spec(self) -> Spec:
        # Rules of one target that need the whole spec (GPU on Fargate, Cloud Run instance shapes) live with the
        # target, in its config's spec_errors(); they run after the rules above, every one of them.
        self._broken.extend(self.env.target.spec_errors(self))
        return self

    @model_validator(mode="after")
    def broken_rules_are_reported(self) -> Spec:
        # Last of the validators: pydantic stops at the first validator that raises, so the rules above only collect
        # what they find, and this raises it all at once (pydantic-core reads a ValidationError raised here as the
        # list of its errors, located at this model).
        if self._broken:
            raise ValidationError.from_exception_data(
                type(self).__name__, [InitErrorDetails(type=e, loc=(), input=None) for e in self._broken]
            )
        return self


def _reject_duplicates(names: list[str], rule_name: str, what: str, key: str = "name") -> None:
    seen: set[str] = set()
    for index, name in enumerate(names):
        if name in seen:
            raise rule_error(
                rule_name,
                field=f"{index}.{key}",
                got=name,
                rule=f"{what} {name!r} appears more than once",
                hint=f"give each a distinct {what}",
            )
        seen.add(name)
