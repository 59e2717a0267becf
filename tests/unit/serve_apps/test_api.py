"""The shared FastAPI behaviour: 422 answers, also for inputs JSON cannot echo or bodies that are not JSON,
413 past the body limit and 408 to a body that stalls."""

import asyncio
import json
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from pydantic import BaseModel, ConfigDict
from starlette.types import Message

from serve_apps.common.api import (
    MAX_ECHO_CHARS,
    MAX_ERRORS_SHOWN,
    MAX_JSON_DEPTH,
    MAX_REQUEST_BODY_BYTES_ENV,
    REQUEST_BODY_TIMEOUT_S_ENV,
    BoundedBody,
    echo,
    make_api,
    reject,
)
from serve_apps.common.schemas import FiniteFloat

JSON = {"content-type": "application/json"}


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")

    values: list[FiniteFloat]


def client() -> TestClient:
    api = make_api(title="t", description="d")

    @api.post("/predict")
    def predict(body: Body) -> Body:
        if len(body.values) > 2:
            reject(["values"], "at most 2 values", len(body.values))
        return body

    return TestClient(api)


def test_nan_and_infinity_get_422_not_500() -> None:
    response = client().post(
        "/predict", content=b'{"values": [1, NaN, -Infinity]}', headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    assert [(e["loc"], e["input"]) for e in response.json()["detail"]] == [
        (["body", "values", 1], "nan"),
        (["body", "values", 2], "-inf"),
    ]


def test_reject_answers_422_naming_the_field() -> None:
    response = client().post("/predict", json={"values": [1, 2, 3]})
    assert response.status_code == 422
    assert response.json()["detail"] == [
        {"type": "value_error", "loc": ["body", "values"], "msg": "at most 2 values", "input": 3}
    ]


def test_a_body_declared_past_the_limit_gets_413(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MAX_REQUEST_BODY_BYTES_ENV, "1024")
    response = client().post("/predict", json={"values": [1.0] * 1000})
    assert response.status_code == 413
    assert response.json() == {"detail": "request body larger than 1024 bytes"}


def test_a_streamed_body_past_the_limit_gets_413(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MAX_REQUEST_BODY_BYTES_ENV, "1024")

    def chunks() -> Iterator[bytes]:
        yield b'{"values": ['
        for _ in range(1000):
            yield b"1.0, "
        yield b"1.0]}"

    response = client().post("/predict", content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 413


def test_a_body_within_the_limit_is_answered(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MAX_REQUEST_BODY_BYTES_ENV, "1024")
    assert client().post("/predict", json={"values": [1.0, 2.0]}).status_code == 200


def post(body: bytes, headers: dict[str, str] = JSON) -> tuple[int, bytes]:
    response = client().post("/predict", content=body, headers=headers)
    return response.status_code, response.content


def detail(content: bytes) -> list[dict[str, object]]:
    # strict UTF-8: an answer that carried a lone surrogate would fail here
    errors: list[dict[str, object]] = json.loads(content.decode("utf-8"))["detail"]
    return errors


def test_a_lone_surrogate_in_an_invalid_field_gets_422_with_it_escaped() -> None:
    status, content = post(b'{"values": [1, "\\ud800"]}')
    assert status == 422
    assert detail(content) == [
        {
            "type": "float_type",
            "loc": ["body", "values", 1],
            "msg": "Input should be a valid number",
            "input": "\\ud800",
        }
    ]


def test_a_lone_surrogate_as_a_field_name_gets_422_with_it_escaped() -> None:
    status, content = post(b'{"values": [1], "\\udc00x": 1}')
    assert status == 422
    # pydantic refuses the key as a string before it could call it an extra field
    assert [(e["type"], e["loc"], e["input"]) for e in detail(content)] == [("string_unicode", ["body"], "\\udc00x")]


def test_a_lone_surrogate_in_a_reject_message_gets_422() -> None:
    api = make_api(title="t", description="d")

    @api.post("/predict")
    def predict(body: Body) -> Body:
        reject(["values"], "no \ud800 here", "\ud800")

    response = TestClient(api).post("/predict", json={"values": [1]})
    assert response.status_code == 422
    assert detail(response.content) == [
        {"type": "value_error", "loc": ["body", "values"], "msg": "no \\ud800 here", "input": "\\ud800"}
    ]


def test_a_body_that_is_not_utf8_gets_422_naming_the_byte() -> None:
    status, content = post(b'{"values": [1], "n": "\xff"}')
    assert status == 422
    assert detail(content) == [
        {
            "type": "utf8_invalid",
            "loc": ["body", 22],
            "msg": "not valid UTF-8 at byte 22: invalid start byte",
            "input": 'values": [1], "n": "\\xff"}',
        }
    ]


def test_a_non_json_body_that_is_not_utf8_gets_422() -> None:
    status, content = post(b"\xff\xfe", {"content-type": "text/plain"})
    assert status == 422
    assert [(e["loc"], e["input"]) for e in detail(content)] == [(["body"], "\\xff\\xfe")]


def test_json_nested_past_the_bound_gets_422_naming_the_byte() -> None:
    status, content = post(b'{"values": ' + b"[" * 100_000 + b"]" * 100_000 + b"}")
    assert status == 422
    (error,) = detail(content)
    assert error["type"] == "json_too_deep"
    assert error["loc"] == ["body", 11 + MAX_JSON_DEPTH - 1]
    assert error["msg"] == f"JSON nested deeper than {MAX_JSON_DEPTH} levels at byte {11 + MAX_JSON_DEPTH - 1}"


def test_json_nested_to_the_bound_reaches_validation() -> None:
    depth = MAX_JSON_DEPTH - 1  # inside the object
    status, content = post(b'{"values": ' + b"[" * depth + b"]" * depth + b"}")
    assert status == 422
    assert [(e["type"], e["loc"]) for e in detail(content)] == [("float_type", ["body", "values", 0])]


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    status, content = post(b'{"values": ["' + b"[" * 100 + b'\\"["]}')
    assert status == 422
    assert [e["type"] for e in detail(content)] == ["float_type"]


def test_malformed_json_gets_422_naming_the_byte_line_and_column() -> None:
    status, content = post('{"values":\n ["é", 1,}'.encode())
    assert status == 422
    assert detail(content) == [
        {
            "type": "json_invalid",
            "loc": ["body", 21],
            "msg": "invalid JSON at byte 21 (line 2, column 10): Expecting value",
            "input": '"values":\n ["é", 1,}',
        }
    ]


def test_a_utf8_byte_order_mark_is_accepted_as_fastapi_does() -> None:
    assert post(b'\xef\xbb\xbf{"values": [1]}')[0] == 200


def test_an_empty_json_body_gets_the_missing_body_422() -> None:
    status, content = post(b"")
    assert status == 422
    assert [(e["type"], e["loc"]) for e in detail(content)] == [("missing", ["body"])]


def test_a_huge_bad_input_is_echoed_cut() -> None:
    status, content = post(json.dumps({"values": "x" * 900_000}).encode())
    assert status == 422
    (error,) = detail(content)
    assert error["input"] == "x" * MAX_ECHO_CHARS + "…"
    assert len(content) < 1000


def test_a_huge_bad_structure_is_echoed_as_the_start_of_its_repr() -> None:
    status, content = post(json.dumps({"values": 1, "extra": [[1.5, "a"]] * 50_000}).encode())
    assert status == 422
    (_, extra) = detail(content)
    assert isinstance(extra["input"], str) and extra["input"].startswith("[[1.5, 'a'], [1.5, 'a'],")
    assert len(content) < 1000


def test_a_small_bad_structure_is_echoed_as_it_is() -> None:
    assert echo({"a": [1, float("nan"), "\ud800"]}) == {"a": [1, "nan", "\\ud800"]}


def test_many_errors_are_listed_up_to_the_bound_and_counted() -> None:
    status, content = post(json.dumps({"values": ["a"] * 100_000}).encode())
    assert status == 422
    answer = json.loads(content)
    assert len(answer["detail"]) == MAX_ERRORS_SHOWN
    assert answer["more_errors"] == 100_000 - MAX_ERRORS_SHOWN
    assert len(content) < 10_000


def test_a_body_that_stalls_gets_408(monkeypatch: pytest.MonkeyPatch) -> None:
    # TestClient sends a body whole, so the middleware gets a receive that stalls after the first chunk.
    monkeypatch.setenv(REQUEST_BODY_TIMEOUT_S_ENV, "0.2")
    reached: list[Message] = []

    async def app(scope: object, receive: object, send: object) -> None:
        reached.append({})

    async def scenario() -> list[Message]:
        chunks = [{"type": "http.request", "body": b'{"values": [', "more_body": True}]
        sent: list[Message] = []

        async def receive() -> Message:
            if chunks:
                return chunks.pop()
            await asyncio.Event().wait()
            raise AssertionError("unreachable")

        async def send(message: Message) -> None:
            sent.append(message)

        scope = {"type": "http", "method": "POST", "headers": [(b"content-length", b"100")]}
        await asyncio.wait_for(BoundedBody(app)(scope, receive, send), 5)
        return sent

    start, body = asyncio.run(scenario())
    assert (start["status"], dict(start["headers"])[b"connection"]) == (408, b"close")
    assert json.loads(body["body"]) == {"detail": "request body not received within 0.2 s"}
    assert reached == []
