"""A generated corpus of bad specs: every mapping, every scalar of the fixture repo's layer files, broken in turn.

Each case must exit 1 through the CLI, name the file and the key path, print no traceback and leave rendered/
byte-for-byte unchanged.
"""

from __future__ import annotations

import copy
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from render.cli import main
from render.write import read_tree
from tests.golden_tree import FIXTURE_REPO

LAYER_FILES = ["deployments/base/env.yaml", "deployments/base/apps.yaml", "deployments/dev/env.yaml"]
# Mappings whose keys are free by design: a new key there is valid, not a typo.
FREE_FORM = ("user_config", "node_selector")


@dataclass(frozen=True)
class Case:
    """One broken layer file and what the error must name."""

    id: str
    file: str
    text: str
    expect: str


def _walk(node: Any, path: str, raw: list[Any]) -> Iterator[tuple[str, list[Any], Any]]:
    """(named path, raw key path, value) of every node below `node`."""
    if isinstance(node, dict):
        for key, value in node.items():
            child = f"{path}.{key}" if path else str(key)
            yield child, [*raw, key], value
            yield from _walk(value, child, [*raw, key])
    elif isinstance(node, list):
        for index, item in enumerate(node):
            name = item.get("name") if isinstance(item, dict) else None
            child = f"{path}[{name}]" if isinstance(name, str) else f"{path}[{index}]"
            yield child, [*raw, index], item
            yield from _walk(item, child, [*raw, index])


def _set(data: Any, raw: list[Any], value: Any) -> Any:
    changed = copy.deepcopy(data)
    node = changed
    for key in raw[:-1]:
        node = node[key]
    node[raw[-1]] = value
    return changed


def _cases() -> Iterator[Case]:
    for file in LAYER_FILES:
        data = yaml.safe_load((FIXTURE_REPO / file).read_text())
        mappings = [("", [])] + [(p, r) for p, r, v in _walk(data, "", []) if isinstance(v, dict)]
        for path, raw in mappings:
            if path.endswith(FREE_FORM):
                continue
            bogus = copy.deepcopy(data)
            target = bogus
            for key in raw:
                target = target[key]
            target["bogus_key"] = 1
            where = f"{path}.bogus_key" if path else "bogus_key"
            yield Case(f"unknown-key:{file}:{where}", file, yaml.safe_dump(bogus), f"{file}: {where}: got unknown key")
        for path, raw, value in _walk(data, "", []):
            free = any(f".{key}." in f"{path}." for key in FREE_FORM)
            if path.endswith(("name", "kind")) or free or isinstance(value, dict | list):
                continue
            yield Case(
                f"wrong-type:{file}:{path}", file, yaml.safe_dump(_set(data, raw, [["nested"]])), f"{file}: {path}: got"
            )
            if isinstance(value, int | float) and not isinstance(value, bool):
                yield Case(
                    f"negative:{file}:{path}", file, yaml.safe_dump(_set(data, raw, -1)), f"{file}: {path}: got -1"
                )
                yield Case(
                    f"huge:{file}:{path}",
                    file,
                    yaml.safe_dump(_set(data, raw, 10**9)),
                    f"{file}: {path}: got 1000000000",
                )
    dev = "deployments/dev/env.yaml"
    dev_text = (FIXTURE_REPO / dev).read_text()
    for index, broken in enumerate(
        [
            "env: [unclosed\n",
            "env:\n\ttier: dev\n",
            "env: {tier: dev\n",
            "env:\n  tier: dev\n tier2: x\n",
            ": :\n  - ]\n",
        ]
    ):
        yield Case(f"broken-yaml:{index}", dev, broken, f"{dev}: got invalid YAML; line")
    for key in ["env", "apps"]:
        yield Case(f"duplicate-key:{key}", dev, dev_text + f"{key}: {{}}\n", f"duplicate key '{key}'")
    for var, value in [
        ("DB_URL", "mysql://root:secret@db:3306/serving"),
        ("API_KEY", "sk-live-1234567890abcdef"),
        ("TOKEN", {"value": "hunter2"}),
        ("PASSWORD", {"aws_secrets_manager": "pa ss word with spaces"}),
    ]:
        data = yaml.safe_load(dev_text)
        data["env"]["secrets"] = {var: value}
        yield Case(f"secret-value:{var}", dev, yaml.safe_dump(data), f"{dev}: env.secrets.{var}")
    data = yaml.safe_load((FIXTURE_REPO / "deployments/base/apps.yaml").read_text())
    data["apps"].append(copy.deepcopy(data["apps"][0]))
    yield Case("duplicate-app", "deployments/base/apps.yaml", yaml.safe_dump(data), "appears more than once")
    for parent, expect in [
        ("nowhere", "extends names an environment directory that does not exist"),
        ("dev", "overlays extend in a circle (dev -> dev)"),
        ("prod", "overlays extend in a circle"),
        (["a", "b"], "deployments/dev/env.yaml: extends: got ['a', 'b']; extends names one environment."),
    ]:
        yield Case(f"extends:{parent}", dev, f"extends: {parent}\n" + dev_text, expect)


CASES = list(_cases())


@pytest.fixture(scope="module")
def rendered_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo = tmp_path_factory.mktemp("corpus") / "repo"
    shutil.copytree(FIXTURE_REPO, repo)
    assert main(["--root", str(repo), "render"]) == 0
    return repo


def test_corpus_has_at_least_100_cases() -> None:
    assert len(CASES) >= 100
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_generated_bad_spec(
    case: Case, rendered_repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(rendered_repo, repo)
    if case.id == "extends:prod":  # dev -> prod -> dev
        prod = repo / "deployments/prod/env.yaml"
        prod.write_text("extends: dev\n" + prod.read_text())
    before = read_tree(repo / "rendered")
    (repo / case.file).write_text(case.text)
    assert main(["--root", str(repo), "render"]) == 1
    err = capsys.readouterr().err
    assert case.expect in err
    assert "Traceback" not in err
    assert read_tree(repo / "rendered") == before
