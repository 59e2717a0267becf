"""The parts of the documentation site that are generated when it is built, so that they cannot drift from the code:

- the spec reference, walked from the pydantic models (every field with its type, default, unit, bounds and
  description, and every validator with the rules it raises, read from the validator's own source);
- each target's parity tables, taken from the `rendered/<env>/PARITY.md` that render wrote;
- the SLO alerts (render/alerts.py) and the impact labels of `nox -s diff` (render/impact.py);
- the benchmark's method and goals (benchmarks/serving.py's docstring, benchmarks/report.py's GOAL_* constants);
- the benchmark history (reports/bench/history.csv) and the latest reliability report, when this checkout has them.

tools/docs_hooks.py hands these to MkDocs; nothing here imports MkDocs, so the unit tests import this module as is.
"""

from __future__ import annotations

import ast
import csv
import inspect
import json
import math
import re
import textwrap
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from render import alerts
from render.review import impact
from render.review.cost import PriceList
from render.review.promotion import Policy
from render.spec.clusters import Clusters
from render.spec.load import app_args_type
from render.spec.models import Spec
from render.spec.nodes import NodeTypes

REPO = Path(__file__).resolve().parent.parent
SPEC_REFERENCE = "reference/spec.md"
# A hand-written page asks for a generated part with `<!-- generated: <name> [<argument>] -->` on a line of its own.
MARKER = re.compile(r"^<!-- generated: (?P<name>[a-z-]+)(?: (?P<argument>[a-z0-9-]+))? -->$", re.MULTILINE)


class DocsError(Exception):
    """A page asks for something that cannot be generated: an unknown marker, a target nothing rendered."""


# --- the spec reference -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Root:
    """A file a person edits, and the model that reads it."""

    title: str
    files: str
    model: type[BaseModel]


ROOTS = (
    Root("Environment spec", "`deployments/base/*.yaml`, then each `deployments/<env>/*.yaml` overlay", Spec),
    Root("Clusters", "`clusters/clusters.yaml`", Clusters),
    Root("Node types", "`clusters/node_types.yaml`", NodeTypes),
    Root("Promotion policy", "`deployments/promotion.yaml`", Policy),
    Root("Prices", "`clusters/prices.yaml`", PriceList),
)
# Longest suffix first: `_ms` before `_s`.
UNITS = (
    ("_millicores", "millicores"),
    ("_percent", "percent"),
    ("_bytes", "bytes"),
    ("_days", "days"),
    ("_gib", "GiB"),
    ("_mib", "MiB"),
    ("_rps", "requests per second"),
    ("_ms", "milliseconds"),
    ("_s", "seconds"),
)
_UNIT_WORDS = {"vcpu": "vCPU", "gb": "GB", "gib": "GiB", "gpu": "GPU"}
_BOUNDS = (
    ("exclusiveMinimum", "> {}"),
    ("minimum", "≥ {}"),
    ("exclusiveMaximum", "< {}"),
    ("maximum", "≤ {}"),
    ("minLength", "at least {} character(s)"),
    ("maxLength", "at most {} character(s)"),
    ("minItems", "at least {} item(s)"),
    ("maxItems", "at most {} item(s)"),
    ("minProperties", "at least {} entry(ies)"),
    ("pattern", "matches `{}`"),
)


@dataclass(frozen=True)
class Rule:
    """A check a validator makes: the rule name its error carries (None for a plain ValueError), what it requires
    and how to fix it, as written in the source (a placeholder of the message shown by its name in angle quotes)."""

    name: str | None
    rule: str
    hint: str


@dataclass(frozen=True)
class Validator:
    """A validator of one model and the rules it raises."""

    name: str
    applies_to: str
    rules: tuple[Rule, ...]


@dataclass
class Section:
    """One model in the reference: where it appears in its file and what it holds."""

    model: type[BaseModel]
    anchor: str
    paths: list[str] = field(default_factory=list)
    condition: str = ""


def unit(name: str) -> str:
    """The unit a field's name states (`timeout_s` → seconds, `usd_per_hour` → USD per hour), or ''."""
    if name.startswith("usd_per_"):
        words = name.removeprefix("usd_per_").split("_")
        return "USD per " + " ".join(_UNIT_WORDS.get(word, word) for word in words)
    return next((label for suffix, label in UNITS if name.endswith(suffix)), "")


def _members(annotation: Any) -> list[Any]:
    """The types a field's annotation may hold, Annotated, Optional and containers looked through."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _members(typing.get_args(annotation)[0])
    if origin in (Union, types.UnionType, list, dict):
        args = typing.get_args(annotation)
        return [m for arg in (args[1:] if origin is dict else args) for m in _members(arg)]
    return [annotation]


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    return [m for m in _members(annotation) if isinstance(m, type) and issubclass(m, BaseModel)]


def _child_path(annotation: Any, path: str) -> str:
    """The path of the model inside a field, in the notation of the parity report: `[]` for a list item, `<key>` for a
    mapping value (`apps[].deployments[]`, `env.secrets.<key>`)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _child_path(typing.get_args(annotation)[0], path)
    if origin in (Union, types.UnionType):
        inner = [m for m in typing.get_args(annotation) if m is not type(None)]
        return _child_path(inner[0], path) if len(inner) == 1 else path
    if origin is list:
        return _child_path(typing.get_args(annotation)[0], f"{path}[]")
    if origin is dict:
        return _child_path(typing.get_args(annotation)[1], f"{path}.<key>")
    return path


def sections(root: type[BaseModel], root_path: str = "") -> list[Section]:
    """Every model reachable from `root`, depth first in field order, each with the paths it appears at."""
    found: dict[type[BaseModel], Section] = {}

    def visit(model: type[BaseModel], path: str, condition: str) -> None:
        if model in found:
            found[model].paths.append(path)
            return
        found[model] = Section(model, model.__name__.lower(), [path], condition)
        for name, info in model.model_fields.items():
            child = _child_path(info.annotation, f"{path}.{name}" if path else name)
            inner = _models_in(info.annotation)
            for member in inner:
                kind = member.model_fields.get("kind")
                literal = typing.get_args(kind.annotation) if kind is not None and len(inner) > 1 else ()
                visit(member, child, f"when `kind` is `{literal[0]}`" if literal else "")

    visit(root, root_path, "")
    return list(found.values())


def _type(annotation: Any, anchors: dict[type[BaseModel], str]) -> str:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return _type(args[0], anchors)
    if origin in (Union, types.UnionType):
        return " or ".join("null" if a is type(None) else _type(a, anchors) for a in args)
    if origin is Literal:
        return " or ".join(f"`{json.dumps(a)}`" for a in args)
    if origin is list:
        return f"list of {_type(args[0], anchors)}"
    if origin is dict:
        return f"map of {_type(args[0], anchors)} to {_type(args[1], anchors)}"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return f"[{annotation.__name__}](#{anchors[annotation]})"
    if annotation is Any:
        return "any"
    return getattr(annotation, "__name__", str(annotation))


def _default(info: FieldInfo) -> str:
    if info.is_required():
        return "required"
    value = info.get_default(call_default_factory=True, validated_data={})
    if isinstance(value, BaseModel):
        return "its defaults" if not value.model_fields_set else f"`{_json(value.model_dump(mode='json'))}`"
    return f"`{_json(value)}`"


def _json(value: Any) -> str:
    return json.dumps(value, default=str, ensure_ascii=False)


def _bounds(schema: Any) -> list[str]:
    """Bounds stated in a property's JSON Schema (pydantic's own rendering of Field(gt=..., pattern=...))."""
    found: list[str] = []
    if not isinstance(schema, dict) or not schema:
        return found
    for alternative in schema.get("anyOf", [schema]):
        found += [text.format(alternative[key]) for key, text in _BOUNDS if key in alternative]
        found += [f"keys: {b}" for b in _bounds(alternative.get("propertyNames", {}))]
        found += [f"each: {b}" for b in _bounds(alternative.get("items", {}))]
        found += [f"values: {b}" for b in _bounds(alternative.get("additionalProperties"))]
    return found


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell: on one line, `|` escaped outside code spans (inside one, the table
    extension leaves it alone and would show the backslash)."""
    parts = re.split(r"(`[^`]*`)", " ".join(text.split()))
    return "".join(part if part.startswith("`") else part.replace("|", "\\|") for part in parts)


def _source_text(node: ast.expr, scope: dict[str, Any], bound: dict[str, str]) -> str:
    """A message argument as its source reads: literal arguments the caller passed and the module's constants filled
    in, other placeholders shown by their last name in angle quotes or, for an expression, by an ellipsis."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(
            str(part.value) if isinstance(part, ast.Constant) else _placeholder(part, scope, bound)
            for part in node.values
            if isinstance(part, ast.Constant | ast.FormattedValue)
        )
    return "…"


def _placeholder(part: ast.FormattedValue, scope: dict[str, Any], bound: dict[str, str]) -> str:
    expression = part.value
    if isinstance(expression, ast.Name):
        if expression.id in bound:
            return bound[expression.id]
        constant = scope.get(expression.id)
        if isinstance(constant, str | int | float) and expression.id.isupper():
            return str(constant)
        return f"‹{expression.id}›"
    if isinstance(expression, ast.Attribute):
        return f"‹{expression.attr}›"
    return "…"


def _callee(call: ast.Call, scope: dict[str, Any]) -> Any:
    """The object a call names through the calling function's module globals (`node_errors`, `aws_iam.check`)."""
    parts: list[str] = []
    node: ast.expr = call.func
    while isinstance(node, ast.Attribute):
        parts.insert(0, node.attr)
        node = node.value
    if not isinstance(node, ast.Name) or node.id not in scope:
        return None
    target = scope[node.id]
    for part in parts:
        target = getattr(target, part, None)
    return target


def rules_of(function: Callable[..., Any], bound: dict[str, str] | None = None) -> tuple[Rule, ...]:
    """The rules a validator raises: its own `rule_error(...)` and `raise ValueError(...)`, and those of the
    toolkit's functions it calls (a rule name passed in as a literal argument is followed into the callee)."""
    found: dict[tuple[str | None, str], Rule] = {}
    _collect(inspect.unwrap(getattr(function, "__func__", function)), bound or {}, found, set())
    return tuple(found.values())


def _collect(function: Any, bound: dict[str, str], found: dict[tuple[str | None, str], Rule], seen: set[Any]) -> None:
    key = (function, tuple(sorted(bound.items())))
    if key in seen or not inspect.isfunction(function):
        return
    seen.add(key)
    tree = ast.parse(textwrap.dedent(inspect.getsource(function)))
    for node in ast.walk(tree):
        if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call):
            call = node.exc
            if isinstance(call.func, ast.Name) and call.func.id == "ValueError" and call.args:
                rule = Rule(None, _source_text(call.args[0], function.__globals__, bound), "")
                found.setdefault((None, rule.rule), rule)
        if not isinstance(node, ast.Call):
            continue
        if isinstance(node.func, ast.Name) and node.func.id == "rule_error" and node.args:
            first = node.args[0]
            name = first.value if isinstance(first, ast.Constant) else bound.get(getattr(first, "id", ""))
            if isinstance(name, str):
                words = {
                    k.arg: _source_text(k.value, function.__globals__, bound)
                    for k in node.keywords
                    if k.arg in ("rule", "hint")
                }
                found.setdefault(
                    (name, words.get("rule", "")), Rule(name, words.get("rule", ""), words.get("hint", ""))
                )
            continue
        callee = _callee(node, function.__globals__)
        if inspect.isfunction(callee) and callee.__module__.split(".")[0] in ("render", "serve_apps"):
            _collect(callee, _literal_arguments(node, callee), found, seen)


def _literal_arguments(call: ast.Call, callee: Callable[..., Any]) -> dict[str, str]:
    names = list(inspect.signature(callee).parameters)
    literals = {names[i]: a.value for i, a in enumerate(call.args) if i < len(names) and isinstance(a, ast.Constant)}
    literals |= {k.arg: k.value.value for k in call.keywords if k.arg and isinstance(k.value, ast.Constant)}
    return {name: value for name, value in literals.items() if isinstance(value, str)}


def validators(model: type[BaseModel]) -> list[Validator]:
    """The validators of `model` that check something, inherited ones included, and a target config's spec_errors
    (its rules that need the whole spec, run by Spec's target_accepts_spec)."""
    decorators = model.__pydantic_decorators__
    found = [
        Validator(name, f"`{'`, `'.join(d.info.fields)}`", rules_of(d.func))
        for name, d in decorators.field_validators.items()
    ]
    found += [Validator(name, "the whole object", rules_of(d.func)) for name, d in decorators.model_validators.items()]
    spec_errors = getattr(model, "spec_errors", None)
    if spec_errors is not None and "spec_errors" in vars(model):
        found.append(Validator("spec_errors", "the whole spec, with this target", rules_of(spec_errors)))
    return [v for v in found if v.rules]


def _rule_lines(rules: tuple[Rule, ...]) -> list[str]:
    lines = []
    for rule in rules:
        name = f"`{rule.name}`: " if rule.name else ""
        hint = f" *Hint:* {rule.hint}" if rule.hint else ""
        lines.append(f"{name}{rule.rule}.{hint}".replace("..", "."))
    return lines


def _section_markdown(section: Section, anchors: dict[type[BaseModel], str]) -> list[str]:
    model = section.model
    doc = inspect.cleandoc(model.__doc__ or "").split("\n\n")[0].replace("\n", " ")
    where = ", ".join(f"`{p}`" for p in section.paths if p) or "the top of the file"
    condition = f", {section.condition}" if section.condition else ""
    lines = [f"### {model.__name__} {{#{section.anchor}}}", "", doc, "", f"At {where}{condition}.", ""]
    properties = model.model_json_schema()["properties"]
    lines += ["| field | type | default | unit | bounds | description |", "| --- | --- | --- | --- | --- | --- |"]
    for name, info in model.model_fields.items():
        bounds = "; ".join(_bounds(properties.get(info.alias or name, {})))
        cells = [f"`{name}`", _type(info.annotation, anchors), _default(info), unit(name), bounds, info.description]
        lines.append("| " + " | ".join(_cell(c or "") for c in cells) + " |")
    checks = validators(model)
    if checks:
        lines += ["", "Validators:", ""]
        for check in checks:
            lines.append(f"- `{check.name}` (on {check.applies_to}):")
            lines += [f"    - {line}" for line in _rule_lines(check.rules)]
    return [*lines, ""]


def app_args_models() -> dict[str, type[BaseModel]]:
    """The Args model of every app in serve_apps/ (`<app>/app.py`'s app_builder), by package name."""
    return {
        path.parent.name: app_args_type(f"serve_apps.{path.parent.name}.app:app_builder")
        for path in sorted((REPO / "serve_apps").glob("*/app.py"))
    }


def spec_reference() -> str:
    """docs/reference/spec.md: every model of every file a person edits, then the Args model of every app."""
    parts: list[tuple[Root, list[Section]]] = [(root, sections(root.model)) for root in ROOTS]
    args = app_args_models()
    parts += [
        (
            Root(
                f"`{package}` app args",
                f"`apps[].args` of an app whose `import_path` is in `serve_apps/{package}/`",
                model,
            ),
            sections(model, "apps[].args"),
        )
        for package, model in args.items()
    ]
    anchors: dict[type[BaseModel], str] = {}
    for _, found in parts:
        for section in found:
            if section.model in anchors:
                continue
            if section.anchor in anchors.values():
                section.anchor = f"{section.model.__module__.split('.')[-1]}-{section.anchor}".replace("_", "-")
            anchors[section.model] = section.anchor
    lines = [
        "# Spec reference",
        "",
        "Generated from the pydantic models when the site is built (`tools/docs_pages.py`), so it is the spec render",
        "reads. Every model forbids keys it does not declare. A unit in the *unit* column comes from the field's",
        "name; *bounds* are checked when the file is read; *validators* are the cross-field rules, each reported as",
        "`<file>: <key path>: got <value>; <rule>. Hint: <fix>`. The same descriptions reach your editor through",
        "`deployments/schema.json` (`nox -s schema`).",
        "",
    ]
    shown: set[type[BaseModel]] = set()
    for root, found in parts:
        lines += [f"## {root.title}", "", f"Read from {root.files}.", ""]
        for section in found:
            if section.model not in shown:
                shown.add(section.model)
                lines += _section_markdown(section, anchors)
    return "\n".join(lines)


# --- parity tables, alerts, benchmark and reliability reports -------------------------------------------------------

_PARITY_TITLE = re.compile(r"^# Parity of `(?P<env>[^`]+)` on (?P<kind>[a-z]+)$")


def parity_reports(rendered: Path) -> dict[str, list[tuple[str, str]]]:
    """Target kind → [(env, PARITY.md text)] of every environment render wrote, by environment name."""
    reports: dict[str, list[tuple[str, str]]] = {}
    for path in sorted(rendered.glob("*/PARITY.md")):
        text = path.read_text(encoding="utf-8")
        title = _PARITY_TITLE.match(text.splitlines()[0])
        if title is None:
            raise DocsError(f"{path}: its first line is not `# Parity of `<env>` on <kind>`")
        reports.setdefault(title["kind"], []).append((title["env"], text))
    return reports


def _demote(markdown: str, levels: int) -> str:
    """Markdown with every heading `levels` deeper, code blocks left alone."""
    out, fenced = [], False
    for line in markdown.splitlines():
        fenced ^= line.startswith("```")
        out.append("#" * levels + line if line.startswith("#") and not fenced else line)
    return "\n".join(out)


def parity_tabs(rendered: Path, kind: str) -> str:
    """One content tab per environment of `kind` with its PARITY.md (title dropped, headings under the tab)."""
    reports = parity_reports(rendered).get(kind)
    if not reports:
        raise DocsError(f"no rendered/<env>/PARITY.md of a {kind} environment: run `nox -s render`")
    tabs = []
    for env, text in reports:
        body = _demote(text.split("\n", 1)[1].strip(), 3)
        tabs.append(f'=== "{env}"\n\n' + textwrap.indent(body, "    ") + "\n")
    return "\n".join(tabs)


def alerts_table() -> str:
    """The alerts every KubeRay environment renders per app, with the README anchor each runbook_url points at."""
    lines = ["| alert | severity | fires when | for | runbook_url anchor |", "| --- | --- | --- | --- | --- |"]
    for burn in alerts.BURN_RATES:
        days = alerts.BUDGET_DAYS / burn.factor
        when = (
            f"5xx ratio above {burn.factor:g} × `slo.error_rate` over both {burn.long_window} and"
            f" {burn.short_window} (a {alerts.BUDGET_DAYS}-day budget gone in {days:.1f} days)"
        )
        lines.append(f"| `{burn.alert}` | {burn.severity} | {when} | {burn.for_} | `#{burn.alert.lower()}` |")
    latency = alerts.LATENCY_ALERT
    when = f"p95 latency at the Serve ingress over {alerts.LATENCY_WINDOW} above `slo.p95_ms`"
    lines.append(f"| `{latency}` | {alerts.LATENCY_SEVERITY} | {when} | {alerts.LATENCY_FOR} | `#{latency.lower()}` |")
    ttft = alerts.TTFT_ALERT
    when = (
        f"p95 time to first token over {alerts.LATENCY_WINDOW} above `slo.ttft_p95_ms` (apps that stream tokens and"
        " declare it)"
    )
    lines.append(f"| `{ttft}` | {alerts.LATENCY_SEVERITY} | {when} | {alerts.LATENCY_FOR} | `#{ttft.lower()}` |")
    return "\n".join(lines)


def impact_labels() -> str:
    """The impact labels of `nox -s diff` with their meanings, in the order render/impact.py defines them."""
    labels = [value for value in vars(impact).values() if isinstance(value, impact.Label)]
    return "\n".join(
        ["| impact | what applying it does |", "| --- | --- |"]
        + [f"| `{label.name}` | {_cell(label.meaning)} |" for label in labels]
    )


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def history_rows(history: Path) -> list[dict[str, str]]:
    """The rows of reports/bench/history.csv, oldest first."""
    with history.open(newline="", encoding="utf-8") as file:
        return list(csv.DictReader(file))


def _systems(rows: list[dict[str, str]]) -> list[str]:
    """Systems with a headline throughput column (`<system>_rps`; the load curve's `curve_*` columns left out)."""
    columns = list(rows[0])
    return [c.removesuffix("_rps") for c in columns if c.endswith("_rps") and not c.startswith("curve_")]


FLOOR_PREFIX = "floor_"  # benchmarks/report.py's floor_uvicorn and floor_serve
MAX_X_LABELS = 8  # up to this many points every one is labelled on the x axis, else the first and the last
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#17becf", "#7f7f7f")


def svg_chart(
    title: str, unit_label: str, series: dict[str, list[float | None]], labels: list[str], log: bool = False
) -> str:
    """A line chart as inline SVG, one line per series over the runs; a missing value breaks its line. `log` puts the
    values on a logarithmic scale (latencies of systems an order of magnitude apart)."""
    width, height, left, right, top, bottom = 720, 300, 60, 170, 30, 40
    values: list[float] = [v for points in series.values() for v in points if v is not None and v > 0]
    if log:
        low = 10 ** math.floor(math.log10(min(values, default=1.0)))
        high = 10 ** math.ceil(math.log10(max(values, default=10.0)))
        high = high if high > low else low * 10
        ticks = [low * 10**k for k in range(round(math.log10(high / low)) + 1)]
    else:
        low, high = 0.0, max(values, default=1.0) * 1.1
        ticks = [high / 1.1 * fraction for fraction in (0, 0.5, 1)]
    runs = max(len(labels), 2)

    def x(i: int) -> float:
        return left + (width - left - right) * i / (runs - 1)

    def y(v: float) -> float:
        share = math.log10(v / low) / math.log10(high / low) if log else (v - low) / (high - low)
        return top + (height - top - bottom) * (1 - share)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" role="img" aria-label="{title}"'
        ' style="max-width:100%;font:12px sans-serif">',
        f'<text x="{left}" y="18" font-weight="bold">{title}</text>',
        f'<line x1="{left}" y1="{height - bottom}" x2="{width - right}" y2="{height - bottom}" stroke="#888"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{height - bottom}" stroke="#888"/>',
    ]
    for tick in ticks:
        parts.append(f'<text x="{left - 6}" y="{y(tick) + 4:.1f}" text-anchor="end">{tick:g}</text>')
    parts.append(f'<text x="{left - 6}" y="{top - 8}" text-anchor="end">{unit_label}</text>')
    shown = range(len(labels)) if len(labels) <= MAX_X_LABELS else sorted({0, len(labels) - 1})
    for i in shown:
        parts.append(f'<text x="{x(i):.1f}" y="{height - bottom + 16}" text-anchor="middle">{labels[i]}</text>')
    for n, (name, points) in enumerate(series.items()):
        colour = PALETTE[n % len(PALETTE)]
        segments: list[list[str]] = [[]]
        for i, point in enumerate(points):
            if point is None:
                segments.append([])
            else:
                segments[-1].append(f"{x(i):.1f},{y(max(point, low)):.1f}")
        for segment in segments:
            if len(segment) > 1:
                parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{" ".join(segment)}"/>')
            for coordinates in segment:
                cx, cy = coordinates.split(",")
                parts.append(f'<circle cx="{cx}" cy="{cy}" r="3" fill="{colour}"/>')
        legend_y = top + 16 * n
        parts.append(f'<rect x="{width - right + 12}" y="{legend_y}" width="10" height="10" fill="{colour}"/>')
        parts.append(f'<text x="{width - right + 28}" y="{legend_y + 9}">{name}</text>')
    parts.append("</svg>")
    return "".join(parts)


def bench_history(history: Path) -> str:
    """The latest run's table and the history plots, or how to produce the history when this checkout has none."""
    rows = history_rows(history) if history.exists() else []
    if not rows:
        return (
            '!!! info "No benchmark history in this build"\n\n'
            "    This site was built without `reports/bench/history.csv`."
            " Run `nox -s bench` (each full run appends one line), then `nox -s docs` again: this section then"
            " shows the latest run and the history plots."
        )
    latest = rows[-1]
    systems = _systems(rows)
    lines = [
        f"Latest run: {latest.get('timestamp', '?')}, commit `{latest.get('commit', '?')}`, load generator"
        f" {latest.get('load_generator', '?')}; {len(rows)} run(s) in `reports/bench/history.csv`.",
        "",
        "| system | requests/s | p95 ms |",
        "| --- | ---: | ---: |",
    ]
    lines += [f"| {s} | {latest.get(f'{s}_rps') or '–'} | {latest.get(f'{s}_p95_ms') or '–'} |" for s in systems]
    figures = ("served_over_", "serve_path_", "ceiling_", "cold_start", "scale_up", "render_", "goals_")
    ratios = [c for c in latest if c.startswith(figures)]
    if ratios:
        lines += ["", "| figure | value |", "| --- | ---: |"]
        lines += [f"| `{c}` | {latest[c] or '–'} |" for c in ratios]
    lines += _load_curve(latest)
    lines += _generation(latest)
    labels = [r.get("timestamp", "")[:16] for r in rows]
    # The HTTP floors (benchmarks/http_floor.py) answer without a model, ten times faster than the rest: a yardstick
    # in the table, left out of the plots, whose scale they would flatten.
    charted = [s for s in systems if not s.startswith(FLOOR_PREFIX)]
    throughput = {s: [_number(r.get(f"{s}_rps", "")) for r in rows] for s in charted}
    p95 = {s: [_number(r.get(f"{s}_p95_ms", "")) for r in rows] for s in charted}
    lines += ["", svg_chart("Throughput per run", "req/s", throughput, labels), ""]
    lines += [svg_chart("p95 latency per run (log scale)", "ms", p95, labels, log=True), ""]
    return "\n".join(lines)


_CURVE_COLUMN = re.compile(r"^curve_(?P<system>.+)_(?P<clients>\d+)_rps$")


def _load_curve(row: dict[str, str]) -> list[str]:
    """The latest run's load curve (its `curve_<system>_<clients>_*` columns): throughput and p95 per client count."""
    points: dict[str, set[int]] = {}
    for column, value in row.items():
        match = _CURVE_COLUMN.match(column)
        if match and value:
            points.setdefault(match["system"], set()).add(int(match["clients"]))
    if not points:
        return []
    clients = sorted(set().union(*points.values()))
    labels = [str(count) for count in clients]
    throughput = {s: [_number(row.get(f"curve_{s}_{c}_rps", "")) for c in clients] for s in points}
    p95 = {s: [_number(row.get(f"curve_{s}_{c}_p95_ms", "")) for c in clients] for s in points}
    table = ["| clients | " + " | ".join(f"{s} req/s, p50 / p95 ms" for s in points) + " |"]
    table.append("| ---: |" + " ---: |" * len(points))
    for count in clients:
        cells = [
            f"{row.get(f'curve_{s}_{count}_rps') or '–'}, {row.get(f'curve_{s}_{count}_p50_ms') or '–'}"
            f" / {row.get(f'curve_{s}_{count}_p95_ms') or '–'}"
            for s in points
        ]
        table.append(f"| {count} | " + " | ".join(cells) + " |")
    return [
        "",
        "Load curve of the latest run (closed-loop clients; one window per point):",
        "",
        *table,
        "",
        svg_chart("Throughput by clients (latest run)", "req/s", throughput, labels),
        "",
        svg_chart("p95 latency by clients (latest run, log scale)", "ms", p95, labels, log=True),
    ]


_GENERATION_COLUMN = re.compile(r"^generation_(?P<system>.+)_(?P<clients>\d+)_tokens_per_s$")


def _generation(row: dict[str, str]) -> list[str]:
    """The latest run's generation part (its `generation_<system>_<clients>_*` columns): tokens/s and TTFT p95 per
    system and client count; nothing for a run before that part, whose cells are empty."""
    points = []
    for column, value in row.items():
        match = _GENERATION_COLUMN.match(column)
        if match and value:
            points.append((match["system"], int(match["clients"])))
    if not points:
        return []
    table = ["| system | clients | tokens/s | TTFT p95 ms |", "| --- | ---: | ---: | ---: |"]
    for system, clients in points:
        table.append(
            f"| {system} | {clients} | {row[f'generation_{system}_{clients}_tokens_per_s']}"
            f" | {row.get(f'generation_{system}_{clients}_ttft_p95_ms') or '–'} |"
        )
    return ["", "Generation in the latest run (plain-language, streamed; one window per row):", "", *table]


_GOAL = re.compile(r"^(?P<name>GOAL_[A-Z0-9_]+) = (?P<value>[^#\n]+?)[ \t]*(?:#[ \t]*(?P<note>.*))?$", re.MULTILINE)


def bench_method(serving: Path) -> str:
    """The benchmark's method, as the docstring of benchmarks/serving.py states it (read, not imported: the
    benchmark's own dependencies are not the site's)."""
    docstring = ast.get_docstring(ast.parse(serving.read_text(encoding="utf-8")))
    if not docstring:
        raise DocsError(f"{serving} has no module docstring to show as the benchmark's method")
    return f"```text\n{docstring}\n```"


def bench_goals(report: Path) -> str:
    """The goals a benchmark run is judged by: the GOAL_* constants of benchmarks/report.py, with their comments."""
    goals = list(_GOAL.finditer(report.read_text(encoding="utf-8")))
    if not goals:
        raise DocsError(f"{report} defines no GOAL_* constant")
    rows = [f"| `{g['name']}` | {g['value']} | {_cell(g['note'] or '')} |" for g in goals]
    return "\n".join(["| goal | value | note |", "| --- | ---: | --- |", *rows])


def latest_reliability(reports: Path) -> str:
    """The newest reports/reliability/<stamp>.md (headings under the page's), or how to produce one."""
    found = sorted(reports.glob("*.md"))
    if not found:
        return (
            '!!! info "No reliability report in this build"\n\n'
            "    Run `nox -s reliability` (it writes `reports/reliability/<timestamp>.md`), then `nox -s docs` again:"
            " the newest report then appears here."
        )
    newest = found[-1]
    return f"From `reports/reliability/{newest.name}`:\n\n" + _demote(newest.read_text(encoding="utf-8").strip(), 2)


GENERATORS: dict[str, Callable[[Path, str | None], str]] = {
    "parity": lambda root, kind: parity_tabs(root / "rendered", kind or ""),
    "alerts": lambda root, _: alerts_table(),
    "impact-labels": lambda root, _: impact_labels(),
    "bench-method": lambda root, _: bench_method(root / "benchmarks" / "serving.py"),
    "bench-goals": lambda root, _: bench_goals(root / "benchmarks" / "report.py"),
    "bench-history": lambda root, _: bench_history(root / "reports" / "bench" / "history.csv"),
    "reliability": lambda root, _: latest_reliability(root / "reports" / "reliability"),
}


def expand(markdown: str, root: Path = REPO) -> str:
    """A page with each `<!-- generated: ... -->` marker replaced by what it names; an unknown one is an error."""

    def replace(match: re.Match[str]) -> str:
        generator = GENERATORS.get(match["name"])
        if generator is None:
            raise DocsError(f"unknown generated part {match['name']!r}; known: {', '.join(sorted(GENERATORS))}")
        return generator(root, match["argument"])

    return MARKER.sub(replace, markdown)
