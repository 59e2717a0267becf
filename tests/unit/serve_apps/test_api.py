"""The shared FastAPI behaviour: 422 answers, also for inputs JSON cannot echo (no Ray needed)."""

from fastapi.testclient import TestClient
from pydantic import BaseModel

from serve_apps.common.api import make_api, reject
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
