"""Monthly cost of an environment at its minimum and at its maximum scale, from clusters/prices.yaml.

    prices = load_prices(root)
    report = env_cost("prod", manifests, prices)   # manifests: the env's rendered objects, as dicts

- kuberay: the nodes of each RayService's Ray cluster. The head pod is priced as one node of the smallest listed
  CPU instance type that holds it (the spec gives the head no node type); each worker group at minReplicas and at
  maxReplicas nodes of its instance type. The cluster's cost is shared between apps by what their Serve replicas
  reserve at the same scale: GPU groups by GPUs, CPU groups by the CPUs of CPU-only replicas, the head by all
  CPUs; a pool no replica asks for stays "unattributed".
- ecs: each service's tasks at min and max count (its ScalableTarget, else desiredCount). Fargate per vCPU-hour and
  GB-hour; on EC2, the share of the instance (from the `ecs.instance-type` placement constraint) the task reserves.
- cloudrun: each service's instances at min and max instance count, always on (an upper bound for max).

Prices are list prices a person keeps in the file; the estimate prices compute only.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from pydantic import Field, ValidationError, model_validator

from render.errors import Problem, SpecError
from render.manifests import group_kind
from render.resources import (
    RAY_SERVICE,
    ServeReplicas,
    Task,
    cloud_run_instances,
    ecs_tasks,
    ray_cluster,
    serve_replicas,
)
from render.spec.base import StrictModel
from render.spec.load import read_yaml
from render.spec.rules import rule_error

PRICES_FILE = "clusters/prices.yaml"
TEMPLATES = Path(__file__).parent / "templates"


class InstanceType(StrictModel):
    """One EC2 instance type: an EKS worker node or an ECS container instance."""

    name: Annotated[str, Field(min_length=1, description="EC2 instance type, e.g. m6i.xlarge.")]
    vcpu: Annotated[int, Field(gt=0, description="vCPUs of the instance.")]
    memory_gib: Annotated[float, Field(gt=0, description="Memory of the instance, in GiB.")]
    gpus: Annotated[int, Field(default=0, ge=0, description="Whole GPUs of the instance.")]
    gpu_type: Annotated[
        str | None, Field(default=None, pattern=r"^nvidia-[a-z0-9-]+$", description="GPU model, e.g. nvidia-l4.")
    ]
    usd_per_hour: Annotated[float, Field(gt=0, description="On-demand price per instance-hour, in USD.")]
    source: Annotated[str, Field(min_length=1, description="Where the price comes from.")]
    as_of: Annotated[datetime.date, Field(description="When the price was read from its source.")]

    @model_validator(mode="after")
    def gpu_type_iff_gpus(self) -> InstanceType:
        if (self.gpu_type is None) != (self.gpus == 0):
            raise rule_error(
                "gpu_type_iff_gpus",
                field="gpu_type",
                got=self.gpu_type,
                rule=f"an instance type with gpus={self.gpus} must {'not ' if self.gpus == 0 else ''}name a gpu_type",
                hint="set both gpus and gpu_type for a GPU instance, neither for a CPU instance",
                related=("gpus",),
            )
        return self


class FargatePrices(StrictModel):
    """AWS Fargate: billed per vCPU-hour and GB-hour of the task size."""

    usd_per_vcpu_hour: Annotated[float, Field(gt=0, description="Price of one vCPU for one hour, in USD.")]
    usd_per_gb_hour: Annotated[float, Field(gt=0, description="Price of one GB of memory for one hour, in USD.")]
    source: Annotated[str, Field(min_length=1, description="Where the prices come from.")]
    as_of: Annotated[datetime.date, Field(description="When the prices were read from their source.")]


class CloudRunPrices(StrictModel):
    """Google Cloud Run: billed per vCPU-second, GiB-second and GPU-second of each instance."""

    usd_per_vcpu_second: Annotated[float, Field(gt=0, description="Price of one vCPU for one second, in USD.")]
    usd_per_gib_second: Annotated[float, Field(gt=0, description="Price of one GiB of memory for one second, in USD.")]
    usd_per_gpu_second: Annotated[float, Field(gt=0, description="Price of one GPU for one second, in USD.")]
    gpu_type: Annotated[
        str, Field(pattern=r"^nvidia-[a-z0-9-]+$", description="The GPU model usd_per_gpu_second is for.")
    ]
    source: Annotated[str, Field(min_length=1, description="Where the prices come from.")]
    as_of: Annotated[datetime.date, Field(description="When the prices were read from their source.")]


class Prices(StrictModel):
    """The whole clusters/prices.yaml file."""

    region: Annotated[str, Field(min_length=1, description="Region the list prices are for.")]
    hours_per_month: Annotated[float, Field(default=730, gt=0, le=744, description="Hours in the priced month.")]
    ec2_instance_types: Annotated[
        list[InstanceType], Field(min_length=1, description="EC2 instance types by name: EKS nodes and ECS on EC2.")
    ]
    fargate: Annotated[FargatePrices, Field(description="AWS Fargate prices.")]
    cloud_run: Annotated[CloudRunPrices, Field(description="Google Cloud Run prices.")]

    @model_validator(mode="after")
    def unique_instance_types(self) -> Prices:
        names = [t.name for t in self.ec2_instance_types]
        for index, name in enumerate(names):
            if name in names[:index]:
                raise rule_error(
                    "unique_instance_types",
                    field=f"ec2_instance_types.{index}.name",
                    got=name,
                    rule=f"instance type {name!r} appears more than once",
                    hint="keep one entry per instance type",
                )
        return self

    def instance(self, name: str | None, user: str) -> InstanceType:
        """The instance type called `name`; `user` says what needs it, for the error when it is missing."""
        for entry in self.ec2_instance_types:
            if entry.name == name:
                return entry
        listed = ", ".join(t.name for t in self.ec2_instance_types)
        raise SpecError(
            [
                Problem(
                    PRICES_FILE,
                    "ec2_instance_types",
                    f"no entry for {name!r}" if name else "no instance type",
                    f"{user} runs on it, so it needs a price",
                    f"add {name} with vcpu, memory_gib, usd_per_hour, source and as_of (listed: {listed})"
                    if name
                    else "pin the node type in the spec so it can be priced",
                )
            ]
        )

    def smallest_cpu_instance(self, cpus: float, memory: float, user: str) -> InstanceType:
        """The cheapest listed CPU-only instance type with at least `cpus` vCPUs and `memory` GiB."""
        fitting = [t for t in self.ec2_instance_types if not t.gpus and t.vcpu >= cpus and t.memory_gib >= memory]
        if not fitting:
            raise SpecError(
                [
                    Problem(
                        PRICES_FILE,
                        "ec2_instance_types",
                        f"no CPU instance type with {cpus:g} vCPU and {memory:g} GiB",
                        f"{user} is priced as one node of the smallest listed type that holds it",
                        "add a larger CPU instance type",
                    )
                ]
            )
        return min(fitting, key=lambda t: t.usd_per_hour)


def load_prices(root: Path) -> Prices:
    """clusters/prices.yaml, validated; raise SpecError naming the file and key."""
    path = root / PRICES_FILE
    if not path.is_file():
        raise SpecError([Problem(PRICES_FILE, "", "no file", "the cost estimate reads prices from it", "create it")])
    data = read_yaml(path, PRICES_FILE)
    try:
        return Prices.model_validate(data)
    except ValidationError as error:
        raise SpecError([_problem(e, data) for e in error.errors()]) from None


def _problem(error: Any, data: Any) -> Problem:
    ctx = error.get("ctx") or {}
    loc = list(error["loc"]) + [s for s in str(ctx.get("field", "")).split(".") if s]
    path, node = "", data
    for segment in loc:
        if str(segment).isdigit() and isinstance(node, list) and int(segment) < len(node):
            node = node[int(segment)]
            path += f"[{node['name']}]" if isinstance(node, dict) and "name" in node else f"[{segment}]"
        else:
            node = node.get(segment) if isinstance(node, dict) else None
            path = f"{path}.{segment}" if path else str(segment)
    if "hint" in ctx:
        return Problem(PRICES_FILE, path, ctx["got"], ctx["rule"], ctx["hint"])
    got = "nothing" if error["type"] == "missing" else repr(error.get("input"))
    return Problem(
        PRICES_FILE, path, got, error["msg"][0].lower() + error["msg"][1:], "see render/cost.py for the fields"
    )


@dataclass(frozen=True)
class Line:
    """One priced item: what it is, how many, and its monthly cost at min and at max scale."""

    name: str
    count: str
    usd_min: float
    usd_max: float


@dataclass(frozen=True)
class TargetCost:
    """The cost of one deployed unit (a RayService, the ECS services, the Cloud Run services)."""

    title: str
    lines: tuple[Line, ...]
    apps: tuple[Line, ...]
    notes: tuple[str, ...] = ()

    @property
    def usd_min(self) -> float:
        """Total at minimum scale."""
        return sum(line.usd_min for line in self.lines)

    @property
    def usd_max(self) -> float:
        """Total at maximum scale."""
        return sum(line.usd_max for line in self.lines)


@dataclass(frozen=True)
class EnvCost:
    """Every priced unit of one environment."""

    env: str
    targets: tuple[TargetCost, ...]

    @property
    def usd_min(self) -> float:
        """Total at minimum scale."""
        return sum(t.usd_min for t in self.targets)

    @property
    def usd_max(self) -> float:
        """Total at maximum scale."""
        return sum(t.usd_max for t in self.targets)


def shares(weights: dict[str, float], amount: float) -> dict[str, float]:
    """`amount` split in proportion to `weights` (nothing to split when every weight is 0)."""
    total = sum(weights.values())
    return {k: amount * w / total for k, w in weights.items()} if total > 0 else {k: 0.0 for k in weights}


def kuberay_cost(rayservice: dict[str, Any], prices: Prices) -> TargetCost:
    """Head and worker nodes of one RayService, and each app's share of them."""
    name = rayservice["metadata"]["name"]
    cluster = ray_cluster(rayservice)
    hours = prices.hours_per_month
    head = cluster.head
    head_type = prices.smallest_cpu_instance(head.cpus, head.memory_gib, f"the head pod of RayService {name}")
    head_usd = head_type.usd_per_hour * hours
    lines = [
        Line(f"head pod ({head.cpus:g} CPU, {head.memory_gib:g} GiB)", f"1 × {head_type.name}", head_usd, head_usd)
    ]
    pools = {"gpu": [0.0, 0.0], "cpu": [0.0, 0.0]}
    for group in cluster.workers:
        instance = prices.instance(group.node_type, f"worker group {group.name!r} of RayService {name}")
        low, high = (
            group.min_replicas * instance.usd_per_hour * hours,
            group.max_replicas * instance.usd_per_hour * hours,
        )
        lines.append(
            Line(
                f"worker group {group.name}",
                f"{_range(group.min_replicas, group.max_replicas)} × {instance.name}",
                low,
                high,
            )
        )
        pool = pools["gpu" if group.gpus else "cpu"]
        pool[0] += low
        pool[1] += high
    replicas = serve_replicas(rayservice)
    attributed: dict[str, list[float]] = {r.app: [0.0, 0.0] for r in replicas}
    for scale in (0, 1):
        for pool_name, resource in (("gpu", "gpu"), ("cpu", "cpu-only")):
            for app, amount in shares(_demand(replicas, scale, resource), pools[pool_name][scale]).items():
                attributed[app][scale] += amount
        for app, amount in shares(_demand(replicas, scale, "cpu"), head_usd).items():
            attributed[app][scale] += amount
    app_lines = [
        Line(app, _range(*_replica_range([r for r in replicas if r.app == app])), low, high)
        for app, (low, high) in sorted(attributed.items())
    ]
    total = [sum(line.usd_min for line in lines), sum(line.usd_max for line in lines)]
    rest = [total[0] - sum(a.usd_min for a in app_lines), total[1] - sum(a.usd_max for a in app_lines)]
    if rest[0] > 0.005 or rest[1] > 0.005:
        app_lines.append(Line("unattributed (capacity no replica asks for)", "", rest[0], rest[1]))
    return TargetCost(f"kuberay: RayService {name}", tuple(lines), tuple(app_lines))


def _demand(replicas: list[ServeReplicas], scale: int, resource: str) -> dict[str, float]:
    """What each app's replicas reserve at min (0) or max (1) scale: `gpu`, `cpu`, or `cpu-only` (CPUs of the
    replicas that use no GPU, since GPU replicas land on GPU nodes)."""
    totals = {r.app: 0.0 for r in replicas}
    for r in replicas:
        count = (r.min_replicas, r.max_replicas)[scale]
        if resource == "gpu":
            totals[r.app] += count * r.gpus
        elif resource == "cpu" or not r.gpus:
            totals[r.app] += count * r.cpus
    return totals


def _replica_range(replicas: list[ServeReplicas]) -> tuple[int, int]:
    return sum(r.min_replicas for r in replicas), sum(r.max_replicas for r in replicas)


def _range(low: int, high: int) -> str:
    return str(low) if low == high else f"{low}–{high}"


def task_hourly_usd(task: Task, prices: Prices) -> float:
    """What one ECS task or one Cloud Run instance costs per hour."""
    if task.kind == "cloudrun":
        run = prices.cloud_run
        return 3600 * (
            task.cpus * run.usd_per_vcpu_second
            + task.memory_gib * run.usd_per_gib_second
            + task.gpus * run.usd_per_gpu_second
        )
    if task.launch == "FARGATE":
        return task.cpus * prices.fargate.usd_per_vcpu_hour + task.memory_gib * prices.fargate.usd_per_gb_hour
    instance = prices.instance(task.instance_type, f"ECS service {task.name!r} (EC2 launch type)")
    share = max(
        task.cpus / instance.vcpu,
        task.memory_gib / instance.memory_gib,
        task.gpus / instance.gpus if instance.gpus else 0.0,
    )
    return min(share, 1.0) * instance.usd_per_hour


def _task_target(title: str, tasks: list[Task], prices: Prices, unit: str) -> TargetCost:
    lines = []
    for task in tasks:
        monthly = task_hourly_usd(task, prices) * prices.hours_per_month
        size = f"{task.cpus:g} vCPU, {task.memory_gib:g} GiB" + (f", {task.gpus} GPU" if task.gpus else "")
        where = f", {task.launch.lower()}" if task.kind == "ecs" else ""
        if task.instance_type and task.launch == "EC2":
            where += f" on {task.instance_type}"
        lines.append(
            Line(
                f"{task.name} ({size}{where})",
                f"{_range(task.min_count, task.max_count)} {unit}{'s' if task.max_count > 1 else ''}",
                task.min_count * monthly,
                task.max_count * monthly,
            )
        )
    return TargetCost(title, tuple(lines), ())


def env_cost(env: str, manifests: list[dict[str, Any]], prices: Prices) -> EnvCost:
    """The cost of one environment's rendered objects; raise SpecError when something has no price."""
    targets = [kuberay_cost(m, prices) for m in manifests if group_kind(m) == RAY_SERVICE]
    if tasks := ecs_tasks(manifests):
        targets.append(_task_target("ecs: services", tasks, prices, "task"))
    if instances := cloud_run_instances(manifests):
        target = _task_target("cloudrun: services", instances, prices, "instance")
        targets.append(
            TargetCost(target.title, target.lines, target.apps, ("max assumes every instance busy all month",))
        )
    return EnvCost(env, tuple(targets))


def usd(amount: float) -> str:
    """`$1,234.56`."""
    return f"${amount:,.2f}"


def signed_usd(amount: float) -> str:
    """`+$12.00` / `-$3.50` / `±$0.00`."""
    if abs(amount) < 0.005:
        return "±$0.00"
    return f"{'+' if amount > 0 else '-'}${abs(amount):,.2f}"


def templates() -> Environment:
    """The Jinja2 environment of the Markdown reports: strict, no autoescape (Markdown, not HTML)."""
    return Environment(  # noqa: S701 - Markdown for terminals and PR comments, not HTML
        loader=FileSystemLoader(TEMPLATES),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _line_view(line: Line) -> dict[str, str]:
    return {"name": line.name, "count": line.count, "min": usd(line.usd_min), "max": usd(line.usd_max)}


def cost_view(cost: EnvCost, prices: Prices) -> dict[str, Any]:
    """The values cost.md.j2 shows, formatted."""
    return {
        "env": cost.env,
        "hours": f"{prices.hours_per_month:g}",
        "region": prices.region,
        "as_of": max(t.as_of for t in prices.ec2_instance_types).isoformat(),
        "targets": [
            {
                "title": t.title,
                "lines": [_line_view(line) for line in t.lines],
                "total": {"min": usd(t.usd_min), "max": usd(t.usd_max)},
                "apps": [_line_view(line) for line in t.apps],
                "notes": list(t.notes),
            }
            for t in cost.targets
        ],
        "total": {"min": usd(cost.usd_min), "max": usd(cost.usd_max)},
    }


def cost_markdown(cost: EnvCost, prices: Prices) -> str:
    """The `cost` command's Markdown report."""
    return templates().get_template("cost.md.j2").render(**cost_view(cost, prices))
