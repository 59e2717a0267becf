"""Promotion: what may differ between consecutive environments (the guard), and copying what was tried in one
environment into the next (`promote`).

The policy is `deployments/promotion.yaml`: the order of environments (dev → staging → prod), environments that
follow another one (staging-ecs runs what staging runs), and glob-like key paths that may differ between an
environment and the one before it. Specs are compared after their overlays are merged, as flat key paths that
name list items (`apps[zero-shot].model.sha256`); `env.image` is compared as `env.image.repository`, `.tag` and
`.digest`, so prod may pull staging's digest from its own registry.

The guard reads time into "may only run what the earlier environment ran": staging normally lags dev, and prod
lags staging, so a later environment may hold a value the earlier one holds now *or held in a commit of the git
history* of deployments/. What it may not hold is a value the earlier one never had: a model hash in prod that
staging never ran. History is read only for the values that differ now, newest commit first.

`promote(root, "dev", "staging")` copies the `promote:` keys (model, args, image digest) of dev's effective spec
into deployments/staging/env.yaml, and into the overlay of every environment that follows staging (staging-ecs,
staging-cloudrun: they run what staging runs, so the step that changes staging changes them), stating a key only
where the environment would not inherit that value anyway, and keeps the files' comments and layout (ruamel.yaml
round trip). Models across schemes: a later environment keeps
its own scheme and bucket and takes the object key from the earlier one, so `file://models/zero_shot/x.onnx`
(dev, built by `nox -s models`) becomes `s3://<staging's bucket>/zero_shot/x.onnx` (where `nox -s
publish_models` uploads it); the sha256 is what guarantees the bytes. A later environment reading a local file
is refused.
"""

from __future__ import annotations

import fnmatch
import io
import itertools
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, ValidationError, model_validator

from render.errors import Problem, SpecError
from render.review.snapshot import GitError, extract, git
from render.spec.base import StrictModel
from render.spec.load import DEPLOYMENTS_DIR, load_specs, read_yaml
from render.spec.models import Spec
from render.spec.rules import rule_error

POLICY_FILE = f"{DEPLOYMENTS_DIR}/promotion.yaml"
OVERLAY_FILE = "env.yaml"
_TOKEN = re.compile(r"([^.\[\]]+)|\[([^\]]+)\]")
_PATTERN = re.compile(r"^([^.\[\]]+|\[[^\]]+\])((\.[^.\[\]]+)|(\[[^\]]+\]))*$")


class _Absent:
    """A key path that one side does not have."""

    def __repr__(self) -> str:
        return "(absent)"


ABSENT: Any = _Absent()
Token = tuple[str, str]


def tokens(path: str) -> list[Token]:
    """`apps[zero-shot].model.sha256` → [("key", "apps"), ("item", "zero-shot"), ("key", "model"), ...]."""
    return [("key", key) if key else ("item", item) for key, item in _TOKEN.findall(path)]


def matches(pattern: str, path: str) -> bool:
    """Whether a glob-like pattern covers a key path: each segment an fnmatch pattern, `[*]` any list item;
    a pattern that names a subtree (`worker_groups`) covers every key below it."""
    wanted, given = tokens(pattern), tokens(path)
    return len(wanted) <= len(given) and all(
        w[0] == g[0] and fnmatch.fnmatchcase(g[1], w[1]) for w, g in zip(wanted, given, strict=False)
    )


def _check_patterns(patterns: list[str], where: str) -> list[str]:
    for index, pattern in enumerate(patterns):
        if not _PATTERN.match(pattern):
            raise rule_error(
                "key_path_pattern",
                field=f"{where}.{index}" if where else str(index),
                got=pattern,
                rule="a key path is dotted keys and [item] selectors, e.g. apps[*].deployments[*].autoscaling_config",
                hint="write keys with dots, list items as [name] or [*]",
            )
    return patterns


class Policy(StrictModel):
    """The whole deployments/promotion.yaml file."""

    order: Annotated[
        list[str],
        Field(min_length=1, description="Environments in promotion order, earliest first: dev, staging, prod."),
    ]
    followers: Annotated[
        dict[str, str],
        Field(
            default_factory=dict,
            description="Environment → the environment whose values it runs (staging-ecs: staging); compared with it.",
        ),
    ]
    may_differ: Annotated[
        list[str],
        Field(
            default_factory=list, description="Key paths that may differ between any environment and the one before it."
        ),
    ]
    may_differ_into: Annotated[
        dict[str, list[str]],
        Field(
            default_factory=dict,
            description="Environment → further key paths that may differ between it and the one before it only.",
        ),
    ]
    promote: Annotated[
        list[str], Field(min_length=1, description="Key paths `promote` copies from an environment into the next.")
    ]

    @model_validator(mode="after")
    def environments_are_placed_once(self) -> Policy:
        placed = [*self.order, *self.followers]
        for index, name in enumerate(placed):
            if name in placed[:index]:
                raise rule_error(
                    "environments_are_placed_once",
                    field="followers" if index >= len(self.order) else f"order.{index}",
                    got=name,
                    rule=f"{name!r} is placed twice",
                    hint="list an environment once, in order or in followers",
                )
        for follower, leader in self.followers.items():
            if leader not in placed:
                raise rule_error(
                    "leader_is_placed",
                    field=f"followers.{follower}",
                    got=leader,
                    rule="a follower follows an environment of order or followers",
                    hint=f"use one of: {', '.join(placed)}",
                )
        for name in self.may_differ_into:
            if name not in placed[1:]:
                raise rule_error(
                    "may_differ_into_a_later_environment",
                    field=f"may_differ_into.{name}",
                    got=name,
                    rule="may_differ_into names an environment that comes after another",
                    hint=f"use one of: {', '.join(placed[1:])}",
                )
        _check_patterns(self.may_differ, "may_differ")
        _check_patterns(self.promote, "promote")
        for name, patterns in self.may_differ_into.items():
            _check_patterns(patterns, f"may_differ_into.{name}")
        return self

    def predecessor(self, env: str) -> str | None:
        """The environment `env` is compared with: the one before it in order, or the one it follows."""
        if env in self.followers:
            return self.followers[env]
        index = self.order.index(env)
        return self.order[index - 1] if index > 0 else None

    def followers_of(self, env: str) -> list[str]:
        """The environments that run what `env` runs, directly or through another follower, leaders first."""
        found: list[str] = []
        leaders = [env]
        while leaders:
            leaders = [follower for follower, leader in self.followers.items() if leader in leaders]
            found += leaders
        return found

    def allowed(self, env: str) -> list[str]:
        """Key path patterns that may differ between `env` and its predecessor."""
        return [*self.may_differ, *self.may_differ_into.get(env, [])]


def load_policy(root: Path) -> Policy | None:
    """deployments/promotion.yaml, validated; None when the repository has none."""
    path = root / POLICY_FILE
    if not path.is_file():
        return None
    data = read_yaml(path, POLICY_FILE)
    try:
        return Policy.model_validate(data)
    except ValidationError as error:
        problems = []
        for e in error.errors():
            ctx = e.get("ctx") or {}
            where = ".".join(str(s) for s in [*e["loc"], *str(ctx.get("field", "")).split(".")] if str(s))
            if "hint" in ctx:
                problems.append(Problem(POLICY_FILE, where, ctx["got"], ctx["rule"], ctx["hint"]))
            else:
                got = "nothing" if e["type"] == "missing" else repr(e.get("input"))
                problems.append(
                    Problem(POLICY_FILE, where, got, e["msg"][0].lower() + e["msg"][1:], "see render/promotion.py")
                )
        raise SpecError(problems) from None


def split_image(image: str) -> dict[str, str | None]:
    """`registry/repo:tag@sha256:…` → repository, tag, digest (None where absent)."""
    name, _, digest = image.partition("@")
    slash = name.rfind("/")
    colon = name.rfind(":")
    tag = name[colon + 1 :] if colon > slash else None
    return {"repository": name[:colon] if tag is not None else name, "tag": tag, "digest": digest or None}


def _flatten(value: Any, path: str, into: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for key, child in value.items():
            _flatten(child, f"{path}.{key}" if path else str(key), into)
    elif (
        isinstance(value, list) and value and all(isinstance(i, dict) and isinstance(i.get("name"), str) for i in value)
    ):
        for item in value:
            _flatten({k: v for k, v in item.items() if k != "name"}, f"{path}[{item['name']}]", into)
            into[f"{path}[{item['name']}]"] = True
    else:
        into[path] = value


def effective_values(spec: Spec) -> dict[str, Any]:
    """Every value of a merged spec by named key path; `apps[x]` itself maps to True (the item exists)."""
    data = spec.model_dump(mode="json")
    data["env"]["image"] = split_image(spec.env.image)
    flat: dict[str, Any] = {}
    _flatten(data, "", flat)
    return flat


def _items_missing(path: str, values: dict[str, Any]) -> bool:
    """Whether a named list item on the way to `path` is absent from `values` (the environment leaves it out)."""
    prefix = ""
    for kind, text in tokens(path):
        prefix = f"{prefix}[{text}]" if kind == "item" else (f"{prefix}.{text}" if prefix else text)
        if kind == "item" and prefix not in values:
            return True
    return False


class History:
    """The effective values environments had in past commits of deployments/, read from git on demand."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._commits: list[str] | None = None
        self._values: dict[tuple[str, str], dict[str, Any] | None] = {}

    def commits(self) -> list[str]:
        """Commits that changed deployments/, newest first; none outside a git work tree."""
        if self._commits is None:
            try:
                top = Path(git(self.root, "rev-parse", "--show-toplevel").strip()).resolve()
                listed = (
                    git(self.root, "log", "--format=%H", "--", DEPLOYMENTS_DIR).split()
                    if top == self.root.resolve()
                    else []
                )
            except GitError:
                listed = []
            self._commits = listed
        return self._commits

    def values(self, env: str, commit: str) -> dict[str, Any] | None:
        """The effective values of `env` at `commit`, or None where it did not load."""
        if (env, commit) not in self._values:
            with tempfile.TemporaryDirectory(prefix="render-history-") as scratch:
                try:
                    extract(self.root, commit, [DEPLOYMENTS_DIR, "clusters"], Path(scratch))
                    self._values[env, commit] = effective_values(load_specs(Path(scratch), [env])[env])
                except (GitError, SpecError):
                    self._values[env, commit] = None
        return self._values[env, commit]

    def had(self, env: str, path: str, value: Any) -> bool:
        """Whether `env` had `value` at `path` in some commit."""
        for commit in self.commits():
            values = self.values(env, commit)
            if values is not None and not _items_missing(path, values) and values.get(path, ABSENT) == value:
                return True
        return False


def _layer_files(root: Path, env: str) -> list[Path]:
    directory = root / DEPLOYMENTS_DIR / env
    return sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")])


def _states(data: Any, path: str) -> bool:
    """Whether a raw overlay document states `path` (env.image.* is stated by env.image)."""
    node = data
    for kind, text in tokens(re.sub(r"^env\.image\..*$", "env.image", path)):
        if kind == "key" and isinstance(node, dict) and text in node:
            node = node[text]
        elif kind == "item" and isinstance(node, list):
            node = next((i for i in node if isinstance(i, dict) and i.get("name") == text), None)
            if node is None:
                return False
        else:
            return False
    return True


def _blamed_file(root: Path, env: str, path: str) -> str:
    files = _layer_files(root, env)
    for file in files:
        if _states(read_yaml(file, str(file)), path):
            return str(file.relative_to(root))
    return str(files[0].relative_to(root)) if files else f"{DEPLOYMENTS_DIR}/{env}"


def _known(policy: Policy, envs: list[str]) -> list[Problem]:
    placed = [*policy.order, *policy.followers]
    problems = [
        Problem(
            POLICY_FILE, "order", repr(name), f"deployments/{name} does not exist", "list existing environments only"
        )
        for name in placed
        if name not in envs
    ]
    problems += [
        Problem(
            POLICY_FILE,
            "order",
            f"no place for {name!r}",
            "every environment has a place in the promotion order",
            f"add {name} to order, or to followers as `{name}: <the environment it runs like>`",
        )
        for name in envs
        if name not in placed
    ]
    return problems


def promotion_problems(root: Path, specs: dict[str, Spec], policy: Policy, history: History) -> list[Problem]:
    """Every key where an environment holds a value its predecessor neither holds nor held, with both values."""
    problems = _known(policy, list(specs))
    if problems:
        return problems
    flat = {name: effective_values(spec) for name, spec in specs.items()}
    for later in [*policy.order, *policy.followers]:
        earlier = policy.predecessor(later)
        if earlier is None:
            continue
        allowed = policy.allowed(later)
        before, after = flat[earlier], flat[later]
        for path in sorted(set(before) | set(after)):
            old, new = before.get(path, ABSENT), after.get(path, ABSENT)
            if old == new or any(matches(p, path) for p in allowed) or _items_missing(path, after):
                continue
            if history.had(earlier, path, new):
                continue
            searched = len(history.commits())
            problems.append(
                Problem(
                    _blamed_file(root, later, path),
                    path,
                    f"{new!r} in {later}, {old!r} in {earlier}",
                    f"{later} may only run what {earlier} ran, and {earlier} never had this value"
                    f" (its spec now and in {searched} commit(s) of deployments/ history)",
                    f"promote with `nox -s promote -- {earlier} {later}`, make them equal, or let the key differ"
                    f" in {POLICY_FILE} (may_differ)",
                )
            )
    return problems


def check_promotion(root: Path, specs: dict[str, Spec]) -> str | None:
    """Raise SpecError when the specs break deployments/promotion.yaml; return a note when there is no policy."""
    policy = load_policy(root)
    if policy is None:
        return f"no {POLICY_FILE}: promotion guard skipped"
    problems = promotion_problems(root, specs, policy, History(root))
    if problems:
        raise SpecError(problems)
    return None


def round_trip_yaml() -> Any:
    """A round-trip YAML that keeps comments, quotes and this repository's layout."""
    # Imported here: only `promote` and `set-image` edit YAML by hand, and render, diff and cost do not need ruamel.
    from ruamel.yaml import YAML

    handler = YAML()
    handler.preserve_quotes = True
    handler.indent(mapping=2, sequence=4, offset=2)
    handler.width = 4096
    handler.representer.add_representer(
        type(None), lambda representer, _: representer.represent_scalar("tag:yaml.org,2002:null", "null")
    )
    return handler


def _node(document: Any, path: str, create: bool) -> tuple[Any, str] | None:
    """The mapping that holds the last key of `path`, and that key (created on the way when `create`)."""
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    steps = tokens(path)
    node = document
    for (kind, text), following in itertools.pairwise(steps):
        if kind == "key":
            if text not in node:
                if not create:
                    return None
                node[text] = CommentedSeq() if following[0] == "item" else CommentedMap()
            node = node[text]
        else:
            item = next((i for i in node if isinstance(i, dict) and i.get("name") == text), None)
            if item is None:
                if not create:
                    return None
                item = CommentedMap(name=text)
                node.append(item)
            node = item
    return node, steps[-1][1]


def _set(document: Any, path: str, value: Any) -> None:
    holder, key = _node(document, path, create=True)  # type: ignore[misc]
    holder[key] = value


def _unset(document: Any, path: str) -> None:
    """Remove `path`, and the maps and list items (holding only their name) it leaves empty."""
    _unset_steps(document, tokens(path))


def _unset_steps(node: Any, steps: list[Token]) -> None:
    kind, text = steps[0]
    if kind == "key":
        if not isinstance(node, dict) or text not in node:
            return
        if len(steps) == 1:
            del node[text]
            return
        _unset_steps(node[text], steps[1:])
        if not node[text]:
            del node[text]
        return
    item = (
        next((i for i in node if isinstance(i, dict) and i.get("name") == text), None)
        if isinstance(node, list)
        else None
    )
    if item is not None and len(steps) > 1:
        _unset_steps(item, steps[1:])
        if set(item) == {"name"}:
            node.remove(item)


def promoted_uri(source: str, target: str, where: str) -> str:
    """The model URI the later environment gets: its own scheme and bucket, the earlier one's object key."""
    source_scheme, _, source_rest = source.partition("://")
    target_scheme, _, target_rest = target.partition("://")
    if target_scheme == "file" and source_scheme == "file":
        return source
    if target_scheme == "file":
        raise SpecError(
            [
                Problem(
                    where,
                    "model.uri",
                    repr(target),
                    "a later environment reads models from a bucket, not a local file",
                    f"set its model.uri to the bucket that holds {source}",
                )
            ]
        )
    if source_scheme == "file":
        if not source_rest.startswith("models/"):
            raise SpecError(
                [
                    Problem(
                        where,
                        "model.uri",
                        repr(source),
                        "a file:// model is promoted by its path under models/",
                        "keep dev's models under file://models/<app>/<file>",
                    )
                ]
            )
        key = source_rest.removeprefix("models/")
    else:
        key = source_rest.partition("/")[2]
    return f"{target_scheme}://{target_rest.partition('/')[0]}/{key}"


@dataclass(frozen=True)
class Promotion:
    """What `promote` did to one environment: its overlay file, each key path it changed, what it left out and why,
    the overlay's new text, and whether that differs from the file (a change it inherits leaves the file as it is)."""

    env: str
    file: str
    changes: tuple[str, ...]
    notes: tuple[str, ...]
    text: str
    rewrites: bool


def _wanted(
    policy: Policy, source: str, target: str, flat_source: dict[str, Any], flat_target: dict[str, Any], file: str
) -> tuple[dict[str, Any], list[str]]:
    """Key path → value the target should get; notes for what is not promoted."""
    wanted: dict[str, Any] = {}
    notes: list[str] = []
    for path in sorted(set(flat_source) | set(flat_target)):
        if not any(matches(p, path) for p in policy.promote) or path.startswith("env.image."):
            continue
        if _items_missing(path, flat_target):
            notes.append(f"{path}: {target} has no such item; add it to deployments/base or {target} to promote it")
            continue
        if _items_missing(path, flat_source):
            continue
        value = flat_source.get(path, ABSENT)
        if path.endswith(".model.uri") and value is not ABSENT and flat_target.get(path) is not None:
            value = promoted_uri(value, flat_target[path], file)
        if value != flat_target.get(path, ABSENT):
            wanted[path] = value
    if any(matches(p, "env.image.digest") for p in policy.promote):
        digest = flat_source["env.image.digest"]
        if digest is None:
            notes.append(f"env.image: {source}'s image has no digest, so there is none to promote")
        elif digest != flat_target["env.image.digest"]:
            wanted["env.image"] = f"{flat_target['env.image.repository']}@{digest}"
    return wanted, [n for n in dict.fromkeys(notes)]


def _scratch_values(scratch: Path, target: str, text: str) -> dict[str, Any]:
    """The target's effective values with `text` as its overlay; raise SpecError when that does not load."""
    (scratch / DEPLOYMENTS_DIR / target / OVERLAY_FILE).write_text(text, encoding="utf-8")
    return effective_values(load_specs(scratch, [target])[target])


def _value_at(values: dict[str, Any], path: str) -> Any:
    return image_reference(values) if path == "env.image" else values.get(path, ABSENT)


def image_reference(values: dict[str, Any]) -> str:
    """The image reference again from its flattened parts."""
    text = str(values["env.image.repository"])
    if values["env.image.tag"] is not None:
        text += f":{values['env.image.tag']}"
    if values["env.image.digest"] is not None:
        text += f"@{values['env.image.digest']}"
    return text


def dump_round_trip(handler: Any, document: Any) -> str:
    """The text of a document loaded with round_trip_yaml()."""
    stream = io.StringIO()
    handler.dump(document, stream)
    return stream.getvalue()


def promote(root: Path, source: str, target: str) -> list[Promotion]:
    """Copy the promotable values of `source` into `target` and into every environment that follows `target`
    (deployments/promotion.yaml's `followers`: staging-ecs runs what staging runs, on another target), each in its
    own overlay, stating only what that environment would not inherit; check every environment against the policy,
    then write the overlays. One Promotion per environment, `target` first; nothing is written on error."""
    policy = load_policy(root)
    if policy is None:
        raise SpecError(
            [
                Problem(
                    POLICY_FILE,
                    "",
                    "no file",
                    "promote follows the promotion order it defines",
                    "create it (see README)",
                )
            ]
        )
    specs = load_specs(root)
    if target not in specs or source not in specs or policy.predecessor(target) != source:
        placed = [*policy.order, *policy.followers]
        before = policy.predecessor(target) if target in placed else None
        raise SpecError(
            [
                Problem(
                    POLICY_FILE,
                    "order",
                    f"{source} → {target}",
                    "promotion goes one step, from an environment to the next",
                    f"promote into {target} from {before}"
                    if before
                    else f"follow the order: {' → '.join(policy.order)}",
                )
            ]
        )
    flat_source = effective_values(specs[source])
    with tempfile.TemporaryDirectory(prefix="render-promote-") as directory:
        scratch = Path(directory)
        shutil.copytree(root / DEPLOYMENTS_DIR, scratch / DEPLOYMENTS_DIR)
        shutil.copytree(root / "clusters", scratch / "clusters")
        # Leaders first: a follower that extends its leader inherits what the leader's overlay now states.
        promotions = [
            _promote_into(root, scratch, policy, source, env, flat_source, effective_values(specs[env]))
            for env in [target, *policy.followers_of(target)]
        ]
        problems = promotion_problems(scratch, load_specs(scratch), policy, History(root))
        if problems:
            raise SpecError(problems)
    for promotion in promotions:
        if promotion.rewrites:
            overlay = root / promotion.file
            overlay.parent.mkdir(parents=True, exist_ok=True)
            overlay.write_text(promotion.text, encoding="utf-8")
    return promotions


def _promote_into(
    root: Path,
    scratch: Path,
    policy: Policy,
    source: str,
    target: str,
    flat_source: dict[str, Any],
    flat_target: dict[str, Any],
) -> Promotion:
    """`target`'s overlay with `source`'s promotable values, left in the scratch copy of deployments/ (where the
    policy is checked); raise SpecError when the overlay cannot give `target` a value."""
    overlay = root / DEPLOYMENTS_DIR / target / OVERLAY_FILE
    file = str(overlay.relative_to(root))
    handler = round_trip_yaml()
    original = overlay.read_text(encoding="utf-8") if overlay.exists() else ""
    document = handler.load(original) if original.strip() else handler.map()
    wanted, notes = _wanted(policy, source, target, flat_source, flat_target, file)
    for path, value in wanted.items():
        if value is ABSENT:
            _unset(document, path)
        else:
            _set(document, path, value)
    for path, value in wanted.items():
        # State a key only where the target would not inherit the same value from the layers below it.
        trial = handler.load(dump_round_trip(handler, document))
        _unset(trial, path)
        try:
            inherited = _scratch_values(scratch, target, dump_round_trip(handler, trial))
        except SpecError:
            continue
        if _value_at(inherited, path) == value:
            document = trial
    # An overlay left as it was keeps its bytes: a round trip may lay out what it did not change differently.
    unchanged = bool(original.strip()) and document == handler.load(original)
    text = original if unchanged else dump_round_trip(handler, document)
    after = _scratch_values(scratch, target, text)
    unreached = [p for p, v in wanted.items() if _value_at(after, p) != v]
    if unreached:
        # An overlay cannot remove a key a lower layer states (it can only override it).
        raise SpecError(
            [
                Problem(
                    file,
                    p,
                    f"{_show(_value_at(after, p))} after promotion",
                    f"{target} cannot be given {_show(wanted[p])} by its overlay",
                    "a lower layer states this key: move it out of that layer",
                )
                for p in unreached
            ]
        )
    changes = tuple(f"{p}: {_show(_value_at(flat_target, p))} → {_show(v)}" for p, v in wanted.items())
    return Promotion(target, file, changes, tuple(notes), text, text != original)


def _show(value: Any) -> str:
    return "(absent)" if value is ABSENT else repr(value)
