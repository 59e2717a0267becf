"""Bodies that are not an app's JSON get a 422 naming the problem from every app, never a 5xx.

The dev env's four apps run on the session's Ray (`ray_cluster`, conftest.py) as its Serve config deploys them; the
prediction log is a SQLite file in a cache directory of this module. Each bad body goes to every app: a lone
surrogate in a field that fails validation, bytes that are not UTF-8, JSON nested past the bound, malformed JSON,
and a bad input of nearly 1 MiB.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from localrun.serve import deploy, env_serve_config
from serve_apps.common.api import MAX_ECHO_CHARS, MAX_JSON_DEPTH
from tests.integration.single_app import REPO_ROOT, free_port

# Each app's list field, and the rest of a body that is valid but for it.
FIELDS = {
    "doubleit": ("values", {}),
    "iris": ("instances", {}),
    "tabular": ("instances", {}),
    "zero-shot": ("labels", {"text": "The striker scored twice."}),
}
JSON = {"content-type": "application/json"}


@pytest.fixture(scope="module")
def http(ray_cluster: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    from ray import serve

    config = env_serve_config(REPO_ROOT, "dev")
    env_vars = {"MODEL_CACHE_DIR": str(tmp_path_factory.mktemp("cache"))}
    config["applications"] = [{**app, "runtime_env": {"env_vars": env_vars}} for app in config["applications"]]
    try:
        with httpx.Client(base_url=deploy(config, free_port()).url, timeout=30) as client:
            yield client
    finally:
        serve.shutdown()


def post(http: httpx.Client, app: str, body: bytes) -> list[dict[str, Any]]:
    """POST `body` as JSON to the app; its 422's errors, read as strict UTF-8."""
    response = http.post(f"/{app}/predict", content=body, headers=JSON)
    assert response.status_code == 422, (response.status_code, response.text[:500])
    errors: list[dict[str, Any]] = json.loads(response.content.decode("utf-8"))["detail"]
    return errors


def body_with(app: str, raw_value: bytes) -> tuple[str, bytes]:
    """The app's list field and a body whose field holds `raw_value`, a JSON text written as bytes."""
    field, rest = FIELDS[app]
    head = json.dumps(rest)[:-1].encode() + (b", " if rest else b"")
    return field, head + b'"' + field.encode() + b'": ' + raw_value + b"}"


@pytest.mark.parametrize("app", FIELDS)
def test_a_lone_surrogate_in_an_invalid_field_gets_422_with_it_escaped(http: httpx.Client, app: str) -> None:
    field, body = body_with(app, b'"\\ud800"')
    errors = post(http, app, body)
    assert [(e["type"], e["loc"], e["input"]) for e in errors] == [("list_type", ["body", field], "\\ud800")]


@pytest.mark.parametrize("app", FIELDS)
def test_a_body_that_is_not_utf8_gets_422_naming_the_byte(http: httpx.Client, app: str) -> None:
    _, body = body_with(app, b'"\xff"')
    offset = body.index(b"\xff")
    errors = post(http, app, body)
    assert [(e["type"], e["loc"], e["msg"]) for e in errors] == [
        ("utf8_invalid", ["body", offset], f"not valid UTF-8 at byte {offset}: invalid start byte")
    ]


@pytest.mark.parametrize("app", FIELDS)
def test_json_nested_past_the_bound_gets_422(http: httpx.Client, app: str) -> None:
    _, body = body_with(app, b"[" * 100_000 + b"]" * 100_000)
    offset = body.index(b"[") + MAX_JSON_DEPTH - 1
    errors = post(http, app, body)
    assert [(e["type"], e["loc"], e["msg"]) for e in errors] == [
        ("json_too_deep", ["body", offset], f"JSON nested deeper than {MAX_JSON_DEPTH} levels at byte {offset}")
    ]


@pytest.mark.parametrize("app", FIELDS)
def test_malformed_json_gets_422_naming_the_byte(http: httpx.Client, app: str) -> None:
    _, body = body_with(app, b"[1,")
    offset = len(body) - 1
    errors = post(http, app, body)
    assert [(e["type"], e["loc"]) for e in errors] == [("json_invalid", ["body", offset])]
    assert errors[0]["msg"].startswith(f"invalid JSON at byte {offset} (line 1, column {offset + 1}): "), errors


@pytest.mark.parametrize("app", FIELDS)
def test_a_huge_bad_input_is_echoed_cut(http: httpx.Client, app: str) -> None:
    field, body = body_with(app, b'"' + b"x" * 1_000_000 + b'"')
    errors = post(http, app, body)
    assert [(e["type"], e["loc"], e["input"]) for e in errors] == [
        ("list_type", ["body", field], "x" * MAX_ECHO_CHARS + "…")
    ]
