"""The FastAPI side every app shares: how invalid requests are answered."""

import math
from collections.abc import Sequence
from typing import Any, NoReturn

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse


def make_api(title: str, description: str) -> FastAPI:
    """A FastAPI app (docs at /docs) whose 422 answers survive any input, NaN and infinity included."""
    api = FastAPI(title=title, description=description)
    api.add_exception_handler(RequestValidationError, _unprocessable)
    return api


def reject(location: Sequence[str | int], message: str, value: Any) -> NoReturn:
    """Answer 422 like FastAPI's own validation does, for a rule that depends on the app's Args."""
    raise RequestValidationError([{"type": "value_error", "loc": ("body", *location), "msg": message, "input": value}])


async def _unprocessable(request: Request, error: Exception) -> JSONResponse:
    # FastAPI's own handler echoes each bad input; a NaN or infinity there makes the JSON encoder fail,
    # turning a client's mistake into a 500. Non-finite numbers are echoed as strings instead.
    assert isinstance(error, RequestValidationError)
    return JSONResponse(status_code=422, content={"detail": _finite(jsonable_encoder(error.errors()))})


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, list):
        return [_finite(item) for item in value]
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    return value
