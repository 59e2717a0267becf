"""The contract between the pipeline and a target plug-in: its config's base class and what `build(plan)` returns."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar, get_args

from pydantic import ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from render.spec.base import StrictModel
from render.spec.rules import rule_error

if TYPE_CHECKING:
    from render.plan import EnvPlan
    from render.spec.models import Spec


class TargetConfigBase(StrictModel):
    """What every `<Kind>TargetConfig` shares: the secret store it reads, the cluster kinds it runs on, a spec hook.

    Subclasses declare `kind: Literal[...]`, `cluster` and `namespace` themselves (descriptions differ per target).
    """

    secret_store_kind: ClassVar[str]
    cluster_kinds: ClassVar[tuple[str, ...]]
    # How the target's workloads get AWS credentials without a stored key: the hint of no_static_aws_keys_outside_dev.
    aws_identity_hint: ClassVar[str] = (
        "remove the keys: the workloads assume the IAM role the target renders (env.target.service_account."
        "iam_role_arn on kuberay, env.target.task_role_arn on ecs)"
    )

    @field_validator("cluster", check_fields=False)
    @classmethod
    def cluster_is_known(cls, value: str, info: ValidationInfo) -> str:
        clusters = (info.context or {}).get("clusters")
        if clusters is None:
            return value
        if value not in clusters:
            raise rule_error(
                "cluster_is_known",
                field="",
                got=value,
                rule="the cluster is not listed in clusters/clusters.yaml",
                hint=f"use one of: {', '.join(sorted(clusters)) or '(none listed)'}",
            )
        kind = clusters[value].kind
        if kind not in cls.cluster_kinds:
            wanted = " or ".join(cls.cluster_kinds)
            raise rule_error(
                "cluster_kind_matches_target",
                field="",
                got=value,
                rule=f"{_a(cls.target_kind())} target needs a cluster of kind {wanted}, and {value!r} is of"
                f" kind {kind}",
                hint=f"name {_a(wanted)} cluster",
            )
        return value

    @classmethod
    def target_kind(cls) -> str:
        """The `kind` literal of this target."""
        return str(get_args(cls.model_fields["kind"].annotation)[0])

    def spec_errors(self, spec: Spec) -> Iterator[PydanticCustomError]:
        """Rules of this target that need the whole spec (deployments, worker groups), as `rule_error`s with
        paths relative to the Spec. The Spec's `target_accepts_spec` validator reports every one, also when one of
        the Spec's own rules failed: a rule here must not rely on those (see `gpu_needs_gpu_worker_group`)."""
        return iter(())


Config = TypeVar("Config", bound=TargetConfigBase)


def target_of(plan: EnvPlan, kind: type[Config]) -> Config:
    """The environment's target config, typed as the builder that was picked for it expects."""
    target = plan.spec.env.target
    assert isinstance(target, kind), f"{type(target).__name__} given to the {kind.target_kind()} builder"
    return target


def _a(word: str) -> str:
    return f"{'an' if word[:1] in 'aeiou' else 'a'} {word}"


def size_related(app_index: int, deployments: int) -> tuple[str, ...]:
    """Spec paths that decide an app's task or instance size: a size error blames the last file setting one."""
    return tuple(
        f"apps.{app_index}.deployments.{j}.ray_actor_options.{name}"
        for j in range(deployments)
        for name in ("num_cpus", "memory_gib", "num_gpus")
    )


class Support(StrEnum):
    """How far a target honours one spec field, named for what becomes of a value the environment sets.

    Only IGNORED fields can be both set and not honoured in a render that succeeds (a REFUSED value fails it), so
    they are the only rows render/parity.py warns about, and only where the environment's own files set them.
    """

    EXACT = "exact"
    APPROXIMATED = "approximated"
    IGNORED = "ignored"
    REFUSED = "refused if set"
    NOT_DEPLOYED = "not deployed"


@dataclass(frozen=True)
class Honour:
    """How a target honours one spec field: the support level and, in a sentence, how."""

    support: Support
    how: str


def exact(how: str) -> Honour:
    """The field reaches the running service as stated."""
    return Honour(Support.EXACT, how)


def approximated(how: str) -> Honour:
    """The field is mapped onto the nearest thing the target has; `how` says what changes."""
    return Honour(Support.APPROXIMATED, how)


def ignored(how: str) -> Honour:
    """The target has no such knob: the field is rendered without, and a value the environment's own files set is
    warned about."""
    return Honour(Support.IGNORED, how)


def refused(how: str) -> Honour:
    """A spec rule refuses a value of the field (or the values `how` names), so a render never ignores one; `how`
    names the rule."""
    return Honour(Support.REFUSED, how)


def not_deployed(how: str) -> Honour:
    """The field is read by the toolkit (load tests, Argo CD), not by the running service."""
    return Honour(Support.NOT_DEPLOYED, how)


SERVE_CONFIG = "in the Serve config Ray reads"

# Fields every target honours the same way, because they travel in the Serve config or are read by the toolkit.
# Paths name list items with `[]` and mapping values with `<key>` (see render/parity.py).
COMMON_PARITY: Mapping[str, Honour] = {
    "env.name": exact("names every rendered object"),
    "env.tier": exact("rule: outside dev the image must be pinned by digest"),
    "env.image": exact("the container image"),
    "env.gitops.repo_url": not_deployed("the Argo CD Application's source repository"),
    "env.gitops.revision": not_deployed("the Argo CD Application's target revision"),
    "env.serve.request_timeout_s": exact(f"http_options.request_timeout_s {SERVE_CONFIG}"),
    "env.serve.keep_alive_timeout_s": exact(f"http_options.keep_alive_timeout_s {SERVE_CONFIG}"),
    "env.serve.max_request_body_bytes": exact(
        "MAX_REQUEST_BODY_BYTES in the environment of every container that runs Ray; the apps answer 413"
    ),
    "env.serve.access_log": exact(f"logging_config.enable_access_log of every application {SERVE_CONFIG}"),
    "env.serve.preload_modules": exact(
        "RAY_preload_python_modules in the environment of every container that runs Ray: Ray Serve's replica module,"
        " what every model replica imports when it starts (boto3, the prediction log) and the modules of the apps"
        " that container serves"
    ),
    "apps[].name": exact(f"application name {SERVE_CONFIG}"),
    "apps[].import_path": exact(f"import_path {SERVE_CONFIG}"),
    "apps[].route_prefix": exact(f"route_prefix {SERVE_CONFIG}"),
    "apps[].model.uri": exact(f"args.model.uri {SERVE_CONFIG}"),
    "apps[].model.sha256": exact(f"args.model.sha256 {SERVE_CONFIG}; the app verifies it before loading"),
    "apps[].args": exact(f"args {SERVE_CONFIG}, defaults resolved by the app's Args model"),
    "apps[].slo.min_rps": not_deployed(
        "read by load tests and benchmarks; a capacity floor, not alerted on: in production, traffic below it is"
        " demand, not failure"
    ),
    "apps[].deployments[].name": exact(f"deployment name {SERVE_CONFIG}"),
    "apps[].deployments[].max_ongoing_requests": exact(f"max_ongoing_requests {SERVE_CONFIG}"),
    "apps[].deployments[].batching.max_batch_size": exact(f"user_config.batching {SERVE_CONFIG}"),
    "apps[].deployments[].batching.batch_wait_timeout_s": exact(f"user_config.batching {SERVE_CONFIG}"),
    "apps[].deployments[].batching.max_concurrent_batches": exact(f"user_config.batching {SERVE_CONFIG}"),
    "apps[].deployments[].health_check_period_s": exact(f"health_check_period_s {SERVE_CONFIG}"),
    "apps[].deployments[].max_surge_percent": exact(f"max_surge_percent {SERVE_CONFIG}"),
    "apps[].deployments[].user_config": exact(f"user_config {SERVE_CONFIG}"),
}


def secret_parity(aws: Honour, gcp: Honour, key: Honour) -> dict[str, Honour]:
    """The same honours for the environment's and every app's secrets."""
    return {
        f"{scope}.<key>.{name}": honour
        for scope in ("env.secrets", "apps[].secrets")
        for name, honour in (("aws_secrets_manager", aws), ("gcp_secret_manager", gcp), ("key", key))
    }


@dataclass(frozen=True)
class NativeBody:
    """A request body of a cloud API for a user's own pipeline, written under native/ where Argo CD never looks.

    `api` is `<service>.<Operation>` as the validator knows it (`ecs.RegisterTaskDefinition`, `run.v2.Service`).
    """

    app: str
    api: str
    body: dict[str, Any]
    suffix: str = "json"

    @property
    def path(self) -> str:
        """The file, relative to rendered/<env>/."""
        return f"{NATIVE_DIR}/{self.app}/{self.api}.{self.suffix}"


NATIVE_DIR = "native"


@dataclass(frozen=True)
class TargetOutput:
    """Everything a target builds for one environment, before validation and serialization.

    manifests: Kubernetes objects Argo CD applies (validated against their CRDs).
    serve_configs: where → Serve config YAML text (validated with Ray's ServeDeploySchema).
    native: cloud API bodies under native/ (validated against botocore models or the Cloud Run protos).
    ignore_differences: Argo CD ignoreDifferences entries for fields a controller owns at run time.
    parity: spec field path → how this target honours it, for every field not in COMMON_PARITY and not
        the target's own config (those are exact by construction).
    sizing: one line per approximation the target made with this environment's numbers.
    streaming: for each app that streams tokens, what carries its streams on this target and what bounds them
        (render/targets/streaming.py).
    """

    manifests: list[dict[str, Any]]
    serve_configs: dict[str, str]
    parity: Mapping[str, Honour]
    native: list[NativeBody] = field(default_factory=list)
    ignore_differences: list[dict[str, Any]] = field(default_factory=list)
    sizing: list[str] = field(default_factory=list)
    streaming: list[str] = field(default_factory=list)
