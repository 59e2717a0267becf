"""Monthly cost of an environment at its minimum and at its maximum scale, at the list prices of the region its
cluster is in: clusters/prices.yaml holds prices per region, clusters/node_types.yaml each EC2 type's hardware.

    book = load_price_book(root)                    # prices, node hardware, the cluster of each environment
    pricing = book.pricing("prod")                  # the prices of prod's cluster's region
    report = env_cost("prod", manifests, pricing)   # manifests: the env's rendered objects, as dicts
    print(cost_markdown(report, pricing, today, max_age_days=365))

- kuberay: the nodes of each RayService's Ray cluster. The head pod is priced as one node of its node type (its
  `node.kubernetes.io/instance-type` selector), or, without one, of the cheapest listed CPU type that holds it;
  each worker group at minReplicas and at maxReplicas nodes of its instance type. The cluster's cost is shared
  between apps by what their Serve replicas reserve at the same scale: GPU groups by GPUs, CPU groups by the CPUs
  of CPU-only replicas, the head by all CPUs; a pool no replica asks for stays "unattributed".
- ecs: each service's tasks at min and max count (its ScalableTarget, else desiredCount). Fargate per vCPU-hour and
  GB-hour; on EC2, the share of the instance (from the `ecs.instance-type` placement constraint) the task reserves.
- cloudrun: each service's instances at min and max instance count, always on (an upper bound for max).

An environment is priced only at its own region's prices: a region or an instance type missing there is an error,
never another region's price. The report lists every price it used with its date and warns about old ones.
Prices are list prices a person keeps in the file; the estimate prices compute only.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from pydantic import Field, StringConstraints, ValidationError

from render.errors import Problem, SpecError
from render.manifests import group_kind
from render.review.resources import (
    RAY_SERVICE,
    PodGroup,
    ServeReplicas,
    Task,
    cloud_run_instances,
    ecs_tasks,
    ray_cluster,
    serve_replicas,
)
from render.spec.base import StrictModel
from render.spec.clusters import Cluster
from render.spec.load import NODE_TYPES_FILE, load_clusters, load_node_types, load_specs, read_yaml
from render.spec.nodes import NodeType

PRICES_FILE = "clusters/prices.yaml"
TEMPLATES = Path(__file__).parent / "templates"
# A list price more than a year old has likely moved; `cost --max-price-age-days` changes the limit.
DEFAULT_MAX_PRICE_AGE_DAYS = 365

RegionName = Annotated[str, StringConstraints(pattern=r"^[a-z]+(-[a-z0-9]+)+$")]
InstanceTypeName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9-]+\.[a-z0-9-]+$")]
Source = Annotated[str, Field(min_length=1, description="Where the price comes from, and whether it was checked.")]
AsOf = Annotated[datetime.date, Field(description="When the price was read from its source (YYYY-MM-DD).")]


class Ec2Price(StrictModel):
    """The on-demand price of one EC2 instance type in one region; its hardware is in clusters/node_types.yaml."""

    usd_per_hour: Annotated[float, Field(gt=0, description="Price per instance-hour, Linux, in USD.")]
    source: Source
    as_of: AsOf


class FargatePrices(StrictModel):
    """AWS Fargate in one region: billed per vCPU-hour and GB-hour of the task size."""

    usd_per_vcpu_hour: Annotated[float, Field(gt=0, description="Price of one vCPU for one hour, in USD.")]
    usd_per_gb_hour: Annotated[float, Field(gt=0, description="Price of one GB of memory for one hour, in USD.")]
    source: Source
    as_of: AsOf


class CloudRunPrices(StrictModel):
    """Google Cloud Run in one region: billed per vCPU-second, GiB-second and GPU-second of each instance."""

    usd_per_vcpu_second: Annotated[float, Field(gt=0, description="Price of one vCPU for one second, in USD.")]
    usd_per_gib_second: Annotated[float, Field(gt=0, description="Price of one GiB of memory for one second, in USD.")]
    usd_per_gpu_second: Annotated[float, Field(gt=0, description="Price of one GPU for one second, in USD.")]
    gpu_type: Annotated[
        str, Field(pattern=r"^nvidia-[a-z0-9-]+$", description="The GPU model usd_per_gpu_second is for.")
    ]
    source: Source
    as_of: AsOf


class RegionPrices(StrictModel):
    """The prices of one region: those of the services that run there."""

    ec2: Annotated[
        dict[InstanceTypeName, Ec2Price],
        Field(default_factory=dict, description="EC2 instance types by name: EKS nodes and ECS container instances."),
    ]
    fargate: Annotated[FargatePrices | None, Field(default=None, description="AWS Fargate prices.")]
    cloud_run: Annotated[CloudRunPrices | None, Field(default=None, description="Google Cloud Run prices.")]


class PriceList(StrictModel):
    """The whole clusters/prices.yaml file."""

    hours_per_month: Annotated[float, Field(default=730, gt=0, le=744, description="Hours in the priced month.")]
    regions: Annotated[
        dict[RegionName, RegionPrices],
        Field(min_length=1, description="Prices by cloud region, named as in clusters/clusters.yaml."),
    ]


@dataclass(frozen=True, order=True)
class PriceUsed:
    """One price an estimate used: its key path in prices.yaml, its rate, its date and its source."""

    key: str
    rate: str
    as_of: datetime.date
    source: str


@dataclass(frozen=True)
class PricedNode:
    """An EC2 instance type: its hardware and its price in the region."""

    hardware: NodeType
    usd_per_hour: float
    price: PriceUsed

    @property
    def name(self) -> str:
        """The instance type, e.g. m6i.xlarge."""
        return self.hardware.name


def _amount(value: float) -> str:
    """A price without exponent notation: 0.000018, not 1.8e-05."""
    return f"{value:.10f}".rstrip("0").rstrip(".")


def _missing(path: str, got: str, rule: str, hint: str) -> SpecError:
    return SpecError([Problem(PRICES_FILE, path, got, rule, hint)])


@dataclass(frozen=True)
class Pricing:
    """What one environment is priced at: the prices of its cluster's region, and the node hardware."""

    region: str
    cluster: str
    hours_per_month: float
    prices: RegionPrices
    node_types: dict[str, NodeType]

    def node(self, name: str | None, user: str) -> PricedNode:
        """The instance type called `name` in this region; `user` says what runs on it, for the error when the
        region has no price for it."""
        path = f"regions.{self.region}.ec2"
        if name is None:
            raise _missing(
                path,
                "no instance type",
                f"{user} selects no node.kubernetes.io/instance-type, so it has no price",
                "pin the node type in the spec so it can be priced",
            )
        entry = self.prices.ec2.get(name)
        if entry is None:
            listed = ", ".join(sorted(self.prices.ec2)) or "none"
            raise _missing(
                path,
                f"no entry for {name!r}",
                f"{user} runs on it in {self.region} (cluster {self.cluster}), so it needs a price there",
                f"add {path}.{name} with usd_per_hour, source and as_of (listed in {self.region}: {listed})",
            )
        return PricedNode(
            self.node_types[name],
            entry.usd_per_hour,
            PriceUsed(f"{path}.{name}", f"{_amount(entry.usd_per_hour)} USD/h", entry.as_of, entry.source),
        )

    def cheapest_cpu_node(self, cpus: float, memory_gib: float, user: str) -> PricedNode:
        """The cheapest instance type priced in this region with no GPU, `cpus` vCPUs and `memory_gib` GiB."""
        fitting = [
            self.node(name, user)
            for name, hardware in self.node_types.items()
            if name in self.prices.ec2
            and not hardware.gpus
            and hardware.vcpu >= cpus
            and hardware.memory_gib >= memory_gib
        ]
        if not fitting:
            raise _missing(
                f"regions.{self.region}.ec2",
                f"no CPU instance type with {cpus:g} vCPU and {memory_gib:g} GiB",
                f"{user} selects no instance type, so it is priced as one node of the cheapest type that holds it",
                "pin its node type in the spec, or price a larger CPU instance type in this region",
            )
        return min(fitting, key=lambda n: (n.usd_per_hour, n.name))

    def fargate(self, user: str) -> tuple[FargatePrices, PriceUsed]:
        """This region's Fargate prices."""
        path = f"regions.{self.region}.fargate"
        fargate = self.prices.fargate
        if fargate is None:
            raise _missing(
                path,
                "nothing",
                f"{user} runs on Fargate in {self.region} (cluster {self.cluster}), so it needs Fargate prices there",
                f"add {path} with usd_per_vcpu_hour, usd_per_gb_hour, source and as_of",
            )
        rate = f"{_amount(fargate.usd_per_vcpu_hour)} USD/vCPU-h, {_amount(fargate.usd_per_gb_hour)} USD/GB-h"
        return fargate, PriceUsed(path, rate, fargate.as_of, fargate.source)

    def cloud_run(self, user: str) -> tuple[CloudRunPrices, PriceUsed]:
        """This region's Cloud Run prices."""
        path = f"regions.{self.region}.cloud_run"
        run = self.prices.cloud_run
        if run is None:
            raise _missing(
                path,
                "nothing",
                f"{user} runs on Cloud Run in {self.region} (cluster {self.cluster}), so it needs Cloud Run prices"
                " there",
                f"add {path} with usd_per_vcpu_second, usd_per_gib_second, usd_per_gpu_second, gpu_type, source and"
                " as_of",
            )
        rate = (
            f"{_amount(run.usd_per_vcpu_second)} USD/vCPU-s, {_amount(run.usd_per_gib_second)} USD/GiB-s,"
            f" {_amount(run.usd_per_gpu_second)} USD/GPU-s ({run.gpu_type})"
        )
        return run, PriceUsed(path, rate, run.as_of, run.source)


@dataclass(frozen=True)
class PriceBook:
    """The price list, the node hardware, and each environment's target cluster: what prices any environment."""

    prices: PriceList
    node_types: dict[str, NodeType]
    clusters: dict[str, Cluster]

    def __post_init__(self) -> None:
        unknown = [
            Problem(
                PRICES_FILE,
                f"regions.{region}.ec2.{name}",
                repr(name),
                f"no such node type in {NODE_TYPES_FILE}, which holds the vCPUs, memory and GPUs a price is for",
                f"add {name}'s hardware to {NODE_TYPES_FILE}, or fix the name",
            )
            for region, regional in self.prices.regions.items()
            for name in regional.ec2
            if name not in self.node_types
        ]
        if unknown:
            raise SpecError(unknown)

    def pricing(self, env: str) -> Pricing:
        """The prices of the region of `env`'s cluster; SpecError when prices.yaml has none for that region."""
        cluster = self.clusters.get(env)
        if cluster is None:
            raise SpecError([Problem("deployments", "", repr(env), "no such environment, so no region to price it in")])
        regional = self.prices.regions.get(cluster.region)
        if regional is None:
            raise _missing(
                "regions",
                f"no entry for {cluster.region!r}",
                f"environment {env} runs in {cluster.region} (cluster {cluster.name} in clusters/clusters.yaml),"
                " and is priced only at that region's prices",
                f"add regions.{cluster.region} with the prices of what runs there"
                f" (listed: {', '.join(sorted(self.prices.regions))})",
            )
        return Pricing(cluster.region, cluster.name, self.prices.hours_per_month, regional, self.node_types)


def load_prices(root: Path) -> PriceList:
    """clusters/prices.yaml, validated; raise SpecError naming the file and key."""
    path = root / PRICES_FILE
    if not path.is_file():
        raise SpecError([Problem(PRICES_FILE, "", "no file", "the cost estimate reads prices from it", "create it")])
    data = read_yaml(path, PRICES_FILE)
    try:
        return PriceList.model_validate(data)
    except ValidationError as error:
        raise SpecError([_problem(e) for e in error.errors()]) from None


def _problem(error: Any) -> Problem:
    # Pydantic adds `[key]` after a dict key whose own value failed; the key path names each key once.
    path = ".".join(str(s) for s in error["loc"] if s != "[key]")
    if error["type"] == "missing":
        got = "nothing"
    elif error["type"] == "extra_forbidden":
        got = f"unknown key {str(error['loc'][-1])!r}"
    else:
        got = repr(error.get("input"))
    rule = error["msg"][0].lower() + error["msg"][1:]
    return Problem(PRICES_FILE, path, got, rule, "see the models in render/cost.py for the fields")


def load_price_book(root: Path, envs: list[str] | None = None) -> PriceBook:
    """Prices, node hardware and the target cluster of the named environments (all when None); raise SpecError
    when a file is invalid or a priced instance type has no hardware in clusters/node_types.yaml."""
    prices = load_prices(root)
    clusters = load_clusters(root)
    specs = load_specs(root, envs)
    targets = {env: clusters[spec.env.target.cluster] for env, spec in specs.items()}
    return PriceBook(prices, load_node_types(root), targets)


@dataclass(frozen=True)
class Line:
    """One priced item: what it is, how many, and its monthly cost at min and at max scale."""

    name: str
    count: str
    usd_min: float
    usd_max: float


@dataclass(frozen=True)
class TargetCost:
    """The cost of one deployed unit (a RayService, the ECS services, the Cloud Run services), and the prices used."""

    title: str
    lines: tuple[Line, ...]
    apps: tuple[Line, ...]
    prices: tuple[PriceUsed, ...]
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

    @property
    def prices(self) -> tuple[PriceUsed, ...]:
        """Every price the estimate used, once each, by key."""
        return tuple(sorted({p for t in self.targets for p in t.prices}))


def shares(weights: dict[str, float], amount: float) -> dict[str, float]:
    """`amount` split in proportion to `weights` (nothing to split when every weight is 0)."""
    total = sum(weights.values())
    return {k: amount * w / total for k, w in weights.items()} if total > 0 else {k: 0.0 for k in weights}


def head_node(head: PodGroup, pricing: Pricing, user: str) -> PricedNode:
    """The node a Ray head pod is priced as: its own node type, else the cheapest CPU type that holds it."""
    if head.node_type:
        return pricing.node(head.node_type, user)
    return pricing.cheapest_cpu_node(head.cpus, head.memory_gib, user)


def kuberay_cost(rayservice: dict[str, Any], pricing: Pricing) -> TargetCost:
    """Head and worker nodes of one RayService, and each app's share of them."""
    name = rayservice["metadata"]["name"]
    cluster = ray_cluster(rayservice)
    hours = pricing.hours_per_month
    head = cluster.head
    head_type = head_node(head, pricing, f"the head pod of RayService {name}")
    head_usd = head_type.usd_per_hour * hours
    used = [head_type.price]
    lines = [
        Line(f"head pod ({head.cpus:g} CPU, {head.memory_gib:g} GiB)", f"1 × {head_type.name}", head_usd, head_usd)
    ]
    pools = {"gpu": [0.0, 0.0], "cpu": [0.0, 0.0]}
    for group in cluster.workers:
        instance = pricing.node(group.node_type, f"worker group {group.name!r} of RayService {name}")
        used.append(instance.price)
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
    return TargetCost(f"kuberay: RayService {name}", tuple(lines), tuple(app_lines), tuple(sorted(set(used))))


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


def task_hourly_usd(task: Task, pricing: Pricing) -> tuple[float, PriceUsed]:
    """What one ECS task or one Cloud Run instance costs per hour, and the price that says so."""
    if task.kind == "cloudrun":
        run, used = pricing.cloud_run(f"Cloud Run service {task.name!r}")
        hourly = 3600 * (
            task.cpus * run.usd_per_vcpu_second
            + task.memory_gib * run.usd_per_gib_second
            + task.gpus * run.usd_per_gpu_second
        )
        return hourly, used
    if task.launch == "FARGATE":
        fargate, used = pricing.fargate(f"ECS service {task.name!r}")
        return task.cpus * fargate.usd_per_vcpu_hour + task.memory_gib * fargate.usd_per_gb_hour, used
    instance = pricing.node(task.instance_type, f"ECS service {task.name!r} (EC2 launch type)")
    hardware = instance.hardware
    share = max(
        task.cpus / hardware.vcpu,
        task.memory_gib / hardware.memory_gib,
        task.gpus / hardware.gpus if hardware.gpus else 0.0,
    )
    return min(share, 1.0) * instance.usd_per_hour, instance.price


def _task_target(title: str, tasks: list[Task], pricing: Pricing, unit: str, notes: tuple[str, ...]) -> TargetCost:
    lines, used = [], set()
    for task in tasks:
        hourly, price = task_hourly_usd(task, pricing)
        used.add(price)
        monthly = hourly * pricing.hours_per_month
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
    return TargetCost(title, tuple(lines), (), tuple(sorted(used)), notes)


def env_cost(env: str, manifests: list[dict[str, Any]], pricing: Pricing) -> EnvCost:
    """The cost of one environment's rendered objects at `pricing`; raise SpecError when something has no price."""
    targets = [kuberay_cost(m, pricing) for m in manifests if group_kind(m) == RAY_SERVICE]
    if tasks := ecs_tasks(manifests):
        targets.append(_task_target("ecs: services", tasks, pricing, "task", ()))
    if instances := cloud_run_instances(manifests):
        notes = ("max assumes every instance busy all month",)
        targets.append(_task_target("cloudrun: services", instances, pricing, "instance", notes))
    return EnvCost(env, tuple(targets))


def stale_prices(prices: Iterable[PriceUsed], today: datetime.date, max_age_days: int) -> list[str]:
    """A warning for each price read from its source more than `max_age_days` days before `today`."""
    return [
        f"`{p.key}` is {age} days old (as of {p.as_of}, more than {max_age_days} days ago): check it against its"
        f" source ({p.source}) and update it and its as_of"
        for p in prices
        if (age := (today - p.as_of).days) > max_age_days
    ]


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


def cost_view(cost: EnvCost, pricing: Pricing, today: datetime.date, max_age_days: int) -> dict[str, Any]:
    """The values cost.md.j2 shows, formatted; prices read more than `max_age_days` before `today` get a warning."""
    return {
        "env": cost.env,
        "hours": f"{pricing.hours_per_month:g}",
        "region": pricing.region,
        "cluster": pricing.cluster,
        "warnings": stale_prices(cost.prices, today, max_age_days),
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
        "prices": [
            {"key": p.key, "rate": p.rate, "as_of": p.as_of.isoformat(), "source": p.source} for p in cost.prices
        ],
    }


def cost_markdown(cost: EnvCost, pricing: Pricing, today: datetime.date, max_age_days: int) -> str:
    """The `cost` command's Markdown report."""
    return templates().get_template("cost.md.j2").render(**cost_view(cost, pricing, today, max_age_days))
