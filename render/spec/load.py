"""Reading deployments/ and clusters/: the only code that opens spec files.

`load_specs(root, names)` returns a validated `Spec` per environment or raises one `SpecError` holding every
problem found across all of them, each located by file and key path.
"""

from __future__ import annotations

import difflib
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError

from render.errors import Problem, SpecError
from render.spec.builders import app_args_type, deployment_names
from render.spec.clusters import Cluster, Clusters
from render.spec.models import App, Spec
from render.spec.nodes import NodeType, NodeTypes
from render.spec.overlay import Provenance, Sources, join, merge

DEPLOYMENTS_DIR = "deployments"
CLUSTERS_FILE = "clusters/clusters.yaml"
NODE_TYPES_FILE = "clusters/node_types.yaml"
BASE = "base"
# Keys of a layer file that steer loading and are not part of the spec itself.
LOADER_KEYS = ("extends",)
# Bounds of one spec file, far above any real one (the deepest key path is about 6 levels; this repository's largest
# file holds a few hundred values), far below what the recursive steps after loading survive.
MAX_DEPTH = 64
MAX_VALUES = 100_000


class _UniqueKeyLoader(yaml.CSafeLoader):
    """libyaml's safe loader, refusing a mapping key given twice (PyYAML silently keeps the last)."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def read_yaml(path: Path, display: str) -> dict[str, Any]:
    """Parse one YAML file that must hold a mapping; raise SpecError naming the file and line."""
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise SpecError([Problem(display, "", "an unreadable file", f"cannot read it ({error.strerror})")]) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line_number = raw.count(b"\n", 0, error.start) + 1
        reason = f"line {line_number}: byte {error.start} is not UTF-8 ({error.reason})"
        raise SpecError([Problem(display, "", "a file that is not UTF-8", reason, "save the file as UTF-8")]) from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = f"line {mark.line + 1}: " if mark is not None else ""
        reason = getattr(error, "problem", None) or str(error)
        raise SpecError(
            [Problem(display, "", "invalid YAML", f"{line}{reason}", "fix the YAML syntax at that line")]
        ) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SpecError(
            [Problem(display, "", type(data).__name__, "a spec file holds a mapping at top level", "start with `env:`")]
        )
    _check_size(data, display)
    return data


def _check_size(data: dict[str, Any], display: str) -> None:
    """Refuse a document nested deeper than MAX_DEPTH or holding more than MAX_VALUES values once its aliases are
    expanded: everything after loading walks the document recursively and as often as an alias repeats it, so such a
    file would end in a RecursionError or never."""
    values = 0
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        values += 1
        if values > MAX_VALUES:
            rule = f"a spec file holds at most {MAX_VALUES:,} values, YAML aliases counted as often as they repeat"
            hint = "repeat less through anchors and aliases"
            raise SpecError([Problem(display, "", "more values", rule, hint)])
        children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
        if children and depth >= MAX_DEPTH:
            rule = f"a spec file nests at most {MAX_DEPTH} levels of mappings and lists"
            raise SpecError([Problem(display, "", "deeper nesting", rule, "flatten it")])
        stack.extend((child, depth + 1) for child in children)


def known_envs(root: Path) -> list[str]:
    """Names of the environment directories under deployments/ (base excluded)."""
    deployments = root / DEPLOYMENTS_DIR
    if not deployments.is_dir():
        return []
    return sorted(d.name for d in deployments.iterdir() if d.is_dir() and d.name != BASE and any(_layer_files(d)))


def _layer_files(directory: Path) -> list[Path]:
    return sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")])


@dataclass(frozen=True)
class _Layer:
    env: str
    file: str
    data: dict[str, Any]


def _display(root: Path, path: Path) -> str:
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)


def _parent(root: Path, env: str) -> str:
    """The environment `env` extends: the one its files name in `extends`, or base."""
    parents: dict[str, str] = {}
    for file in _layer_files(root / DEPLOYMENTS_DIR / env):
        display = _display(root, file)
        data = read_yaml(file, display)
        if "extends" not in data:
            continue
        parent = data["extends"]
        if not isinstance(parent, str):
            raise SpecError(
                [Problem(display, "extends", repr(parent), "extends names one environment", "write `extends: <env>`")]
            )
        if not (root / DEPLOYMENTS_DIR / parent).is_dir():
            known = ", ".join([BASE, *known_envs(root)])
            raise SpecError(
                [
                    Problem(
                        display,
                        "extends",
                        repr(parent),
                        "extends names an environment directory that does not exist",
                        f"use one of: {known}",
                    )
                ]
            )
        parents[display] = parent
    if len(set(parents.values())) > 1:
        raise SpecError(
            [
                Problem(
                    f"{DEPLOYMENTS_DIR}/{env}",
                    "extends",
                    repr(sorted(parents.values())),
                    "the files of one environment extend one parent",
                    "state extends once",
                )
            ]
        )
    return next(iter(parents.values()), BASE)


def _layers(root: Path, env: str) -> list[_Layer]:
    """Every file of every layer of `env`, base first, the env's own files last."""
    chain = [env]
    while chain[-1] != BASE:
        parent = _parent(root, chain[-1])
        if parent in chain:
            cycle = " -> ".join([*chain, parent])
            raise SpecError(
                [
                    Problem(
                        f"{DEPLOYMENTS_DIR}/{chain[-1]}",
                        "extends",
                        repr(parent),
                        f"overlays extend in a circle ({cycle})",
                        "make the chain end at base",
                    )
                ]
            )
        chain.append(parent)
    return [
        _Layer(name, _display(root, file), read_yaml(file, _display(root, file)))
        for name in reversed(chain)
        for file in _layer_files(root / DEPLOYMENTS_DIR / name)
    ]


def load_clusters(root: Path) -> dict[str, Cluster]:
    """The clusters of clusters/clusters.yaml by name."""
    path = root / CLUSTERS_FILE
    if not path.is_file():
        raise SpecError(
            [
                Problem(
                    CLUSTERS_FILE,
                    "",
                    "no file",
                    "environments name their cluster in this file",
                    "create it (see README)",
                )
            ]
        )
    data = read_yaml(path, CLUSTERS_FILE)
    try:
        clusters = Clusters.model_validate(data)
    except ValidationError as error:
        raise SpecError([_problem(e, data, Provenance(), [CLUSTERS_FILE], Clusters) for e in error.errors()]) from None
    return {c.name: c for c in clusters.clusters}


def load_node_types(root: Path) -> dict[str, NodeType]:
    """The node types of clusters/node_types.yaml by name; none when the file is absent (then no pod is checked
    against a node, and a KubeRay environment on eks is refused for naming an unknown node type)."""
    path = root / NODE_TYPES_FILE
    if not path.is_file():
        return {}
    data = read_yaml(path, NODE_TYPES_FILE)
    try:
        table = NodeTypes.model_validate(data)
    except ValidationError as error:
        raise SpecError(
            [_problem(e, data, Provenance(), [NODE_TYPES_FILE], NodeTypes) for e in error.errors()]
        ) from None
    return {n.name: n for n in table.node_types}


def load_specs(root: Path, names: list[str] | None = None) -> dict[str, Spec]:
    """Validate the named environments (all when None); raise one SpecError with every problem found."""
    known = known_envs(root)
    if not known:
        raise SpecError(
            [
                Problem(
                    DEPLOYMENTS_DIR,
                    "",
                    "no environment",
                    "deployments/ has no environment directory",
                    "add deployments/dev/env.yaml",
                )
            ]
        )
    wanted = known if names is None else names
    unknown = [n for n in wanted if n not in known]
    if unknown:
        raise SpecError(
            [
                Problem(DEPLOYMENTS_DIR, "", repr(n), "no such environment", f"known environments: {', '.join(known)}")
                for n in unknown
            ]
        )
    context = {"clusters": load_clusters(root), "node_types": load_node_types(root)}
    specs: dict[str, Spec] = {}
    problems: list[Problem] = []
    not_run: list[str] = []
    for name in wanted:
        try:
            specs[name] = _load_one(root, name, context)
        except SpecError as error:
            problems.extend(error.problems)
            not_run.extend(error.not_run)
    if problems:
        raise SpecError(problems, not_run)
    return specs


def _load_one(root: Path, env: str, context: dict[str, Any]) -> Spec:
    layers = _layers(root, env)
    provenance = Provenance(shared_layers=sum(layer.env == BASE for layer in layers))
    merged: dict[str, Any] = {}
    for index, layer in enumerate(layers):
        body = {k: v for k, v in layer.data.items() if k not in LOADER_KEYS}
        merged = merge(merged, body, "", provenance, index)
    files = [layer.file for layer in layers]
    problems = [
        Problem(
            files[layer],
            path,
            f"{name!r} twice",
            "an item of a list that merges by name is stated once per file; the second merged into the first",
            "make the two items one, or rename one",
        )
        for path, name, layer in dict.fromkeys(provenance.repeated)
    ]
    env_section = merged.get("env")
    if isinstance(env_section, dict):
        stated = env_section.get("name", env)
        if stated != env:
            setter = provenance.layer_of("env.name")
            problems.append(
                Problem(
                    files[setter] if setter is not None else f"{DEPLOYMENTS_DIR}/{env}",
                    "env.name",
                    repr(stated),
                    f"env.name must equal its directory name ({env!r})",
                    f"set env.name: {env} or remove it",
                )
            )
        elif "name" not in env_section:
            # The directory names the environment: attribute the name to its own first file.
            provenance.record(env, "env.name", next(i for i, layer in enumerate(layers) if layer.env == env))
        merged["env"] = {**env_section, "name": env}
    sources = Sources(
        {path: files[layer] for path, layer in provenance.recorded().items()},
        frozenset(layer.file for layer in layers if layer.env == env),
    )
    spec, found, not_run = _validate(env, merged, provenance, files, {**context, "sources": sources})
    problems += found
    apps = spec.apps if spec is not None else _apps_that_parse(merged)
    problems += [p for i, app in enumerate(apps) if app for p in _args_problems(app, i, merged, provenance, files)]
    if problems or spec is None:
        raise SpecError(problems, not_run)
    return spec


def _cross_field_rules() -> list[str]:
    """Names of the Spec's cross-field rules (its model validators but the one that raises what they found)."""
    last = Spec.broken_rules_are_reported.__name__
    return [name for name in Spec.__pydantic_decorators__.model_validators if name != last]


def _in_an_app(error: Any) -> bool:
    """Whether a pydantic error lies inside one item of the apps list."""
    loc = error["loc"]
    return len(loc) > 1 and loc[0] == "apps" and isinstance(loc[1], int)


def _validate(
    env: str, merged: dict[str, Any], provenance: Provenance, files: list[str], context: dict[str, Any]
) -> tuple[Spec | None, list[Problem], list[str]]:
    """Validate the merged spec: the Spec (when it validates), its problems, and the checks that did not run.

    Pydantic runs the cross-field rules only when every field parses. When the fields that fail all lie inside
    some apps, the rules run a second time on the other apps, so a typo in one app does not hide a GPU packing
    problem in another; when anything else fails (a key of env, worker_groups), they cannot run, and the note says so.
    """
    try:
        return Spec.model_validate(merged, context=context), [], []
    except ValidationError as error:
        errors = error.errors()
    problems = [_problem(e, merged, provenance, files, Spec) for e in errors]
    rules = ", ".join(_cross_field_rules())
    fields = [e for e in errors if e["loc"]]
    if not fields:
        return None, problems, []
    if not all(_in_an_app(e) for e in fields):
        return None, problems, [f"{env}: the cross-field rules ({rules}) did not run: fix the keys above first"]
    broken = sorted({e["loc"][1] for e in fields})
    names = ", ".join(_named_path(["apps", i], merged) for i in broken)
    rest = {**merged, "apps": [a for i, a in enumerate(merged["apps"]) if i not in broken]}
    if not rest["apps"]:
        return (
            None,
            problems,
            [f"{env}: the cross-field rules ({rules}) and the args checks did not run: no app parses"],
        )
    try:
        Spec.model_validate(rest, context=context)
    except ValidationError as error:
        problems += [_problem(e, rest, provenance, files, Spec) for e in error.errors()]
    its, parse = ("its", "it does") if len(broken) == 1 else ("their", "they do")
    return (
        None,
        problems,
        [
            f"{env}: the cross-field rules ({rules}) ran without {names}, and {its} args were not checked: {parse} not"
            " parse"
        ],
    )


def _apps_that_parse(merged: dict[str, Any]) -> list[App | None]:
    """Each app of the merged spec, validated on its own; None for one that does not parse."""
    apps = merged.get("apps")
    if not isinstance(apps, list):
        return []
    parsed: list[App | None] = []
    for data in apps:
        try:
            parsed.append(App.model_validate(data))
        except ValidationError:
            parsed.append(None)
    return parsed


def app_args(app: App) -> dict[str, Any]:
    """The app builder's arguments as Ray receives them: the app's args plus its model, defaults resolved."""
    payload = dict(app.args)
    if app.model is not None:
        payload["model"] = app.model.model_dump()
    return app_args_type(app.import_path).model_validate(payload).model_dump(mode="json")


def _args_problems(
    app: App, index: int, merged: dict[str, Any], provenance: Provenance, files: list[str]
) -> list[Problem]:
    path = f"apps[{app.name}]"
    file = files[provenance.layer_of(path) or 0]
    try:
        args_type = app_args_type(app.import_path)
    except (ImportError, AttributeError, TypeError, ValueError) as error:
        return [
            Problem(
                file,
                f"{path}.import_path",
                repr(app.import_path),
                f"cannot load the app builder ({error})",
                "name a `module:function` whose first parameter is a pydantic Args model",
            )
        ]
    payload = dict(app.args)
    if app.model is not None:
        payload["model"] = app.model.model_dump()
    try:
        args = args_type.model_validate(payload)
    except ValidationError as error:
        app_data = merged["apps"][index]
        return [
            _problem(
                {**e, "loc": (e["loc"] if e["loc"][:1] == ("model",) else ("args", *e["loc"]))},
                app_data,
                provenance,
                files,
                None,
                base_path=path,
            )
            for e in error.errors()
        ]
    built = deployment_names(app.import_path, args)
    if built is None:
        return []
    return [
        Problem(
            files[provenance.layer_of(f"{path}.deployments[{deployment.name}]") or 0],
            f"{path}.deployments[{deployment.name}].name",
            repr(deployment.name),
            f"{app.import_path} builds no deployment of that name, and Ray refuses options for one it does not build",
            f"use one of: {', '.join(built)}" if built else "the builder builds no deployment",
        )
        for deployment in app.deployments
        if deployment.name not in built
    ]


_GENERIC_HINTS = {
    "missing": "add this key",
    "int_type": "write a whole number",
    "int_parsing": "write a whole number",
    "int_from_float": "write a whole number",
    "float_type": "write a number",
    "float_parsing": "write a number",
    "string_type": "write a string (quote it)",
    "bool_type": "write true or false",
    "bool_parsing": "write true or false",
    "dict_type": "write a mapping of key: value",
    "model_type": "write a mapping of key: value",
    "model_attributes_type": "write a mapping of key: value",
    "list_type": "write a list (`- item` lines)",
    "literal_error": "use one of the allowed values",
    "union_tag_invalid": "use one of the allowed kinds",
    "union_tag_not_found": "add `kind:`",
    "string_pattern_mismatch": "match the pattern",
    "greater_than": "raise the value",
    "greater_than_equal": "raise the value",
    "less_than": "lower the value",
    "less_than_equal": "lower the value",
    "too_short": "add items",
    "too_long": "shorten it",
    "string_too_long": "shorten it",
    "string_too_short": "write a non-empty string",
}


def _problem(
    error: Any,
    data: Any,
    provenance: Provenance,
    files: list[str],
    model: type[BaseModel] | None,
    base_path: str = "",
) -> Problem:
    """Turn one pydantic error into a Problem with a named key path and the file that set it."""
    ctx = error.get("ctx") or {}
    loc = list(error["loc"])
    if "field" in ctx:
        loc += [int(s) if s.isdigit() else s for s in ctx["field"].split(".") if s]
    path = _named_path(loc, data, base_path)
    candidates = [path]
    for related in ctx.get("related", ()):
        related_loc = list(error["loc"]) + [int(s) if s.isdigit() else s for s in related.split(".")]
        candidates.append(_named_path(related_loc, data, base_path))
    kind = error["type"]
    layer_of = provenance.layer_missing if kind == "missing" else provenance.layer_of
    layers = [layer for c in candidates if (layer := layer_of(c)) is not None]
    file = files[max(layers)] if layers else files[-1]
    if "hint" in ctx:
        return Problem(file, path, ctx["got"], ctx["rule"], ctx["hint"])
    if kind == "missing":
        got = "nothing"
    elif kind == "extra_forbidden":
        got = f"unknown key {str(loc[-1])!r}"
    else:
        got = repr(error.get("input"))
        if len(got) > 120:
            got = got[:117] + "..."
    rule = error["msg"][0].lower() + error["msg"][1:]
    hint = _GENERIC_HINTS.get(kind, "see deployments/schema.json for this key")
    if kind == "extra_forbidden":
        allowed = _allowed_keys(model, loc[:-1], data) if model is not None else []
        close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
        hint = (
            f"did you mean {close[0]!r}?"
            if close
            else f"allowed keys: {', '.join(allowed)}"
            if allowed
            else "remove it"
        )
    elif kind == "string_pattern_mismatch":
        hint = f"match {ctx.get('pattern')}"
    return Problem(file, path, got, rule, hint)


def _named_path(loc: list[Any], data: Any, base_path: str = "") -> str:
    """Render a pydantic loc as a key path that names list items: `apps[zero-shot].slo.p95_ms`.

    Discriminated-union tags that pydantic inserts into loc (`target.kuberay.cluster`) are skipped.
    """
    path = base_path
    current = data
    for position, segment in enumerate(loc):
        last = position == len(loc) - 1
        if isinstance(segment, int) and isinstance(current, list) and 0 <= segment < len(current):
            item = current[segment]
            path += (
                f"[{item['name']}]" if isinstance(item, dict) and isinstance(item.get("name"), str) else f"[{segment}]"
            )
            current = item
        elif isinstance(current, dict) and segment in current:
            path = join(path, str(segment))
            current = current[segment]
        elif isinstance(current, dict) and not last and current.get("kind") == segment:
            continue
        else:
            path = join(path, str(segment)) if not isinstance(segment, int) else f"{path}[{segment}]"
            current = None
    return path


def _allowed_keys(model: type[BaseModel], loc: list[Any], data: Any) -> list[str]:
    """Field names of the model found at `loc` inside `model`, following the data for union members."""
    current: Any = model
    node = data
    for segment in loc:
        if isinstance(node, dict) and segment not in node and node.get("kind") == segment:
            continue
        if isinstance(segment, int):
            node = node[segment] if isinstance(node, list) and segment < len(node) else None
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)) or segment not in current.model_fields:
            return []
        current = _unwrap(
            current.model_fields[segment].annotation, node.get(segment) if isinstance(node, dict) else None
        )
        node = node.get(segment) if isinstance(node, dict) else None
    if isinstance(current, type) and issubclass(current, BaseModel):
        return sorted(current.model_fields)
    return []


def _unwrap(annotation: Any, value: Any) -> Any:
    """The model class inside Optional/list/dict/Annotated/discriminated-union annotations."""
    origin = get_origin(annotation)
    if origin is typing.Annotated:
        return _unwrap(get_args(annotation)[0], value)
    if origin in (list, dict):
        return _unwrap(get_args(annotation)[-1], None)
    if origin is Union or str(origin) == "<class 'types.UnionType'>":
        members = [m for m in get_args(annotation) if m is not type(None)]
        for member in members:
            kind_field = getattr(member, "model_fields", {}).get("kind")
            if (
                isinstance(value, dict)
                and kind_field is not None
                and value.get("kind") in get_args(kind_field.annotation)
            ):
                return member
        return _unwrap(members[0], value) if len(members) == 1 else None
    return annotation
