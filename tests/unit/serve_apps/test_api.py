"""The shared FastAPI behaviour: 422 answers, also for inputs JSON cannot echo, and 413 past the body limit."""

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from pydantic import BaseModel

from serve_apps.common.api import MAX_REQUEST_BODY_BYTES_ENV, make_api, reject
from serve_apps.common.schemas import FiniteFloat


class Body(BaseModel):
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
