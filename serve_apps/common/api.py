"""The FastAPI side every app shares: how invalid and oversized requests are answered."""

import json
import math
import os
from collections.abc import Sequence
from typing import Any, NoReturn

from fastapi import FastAPI, HTTPException, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Set by render in every Ray container (env.serve.max_request_body_bytes, render/plan.py); the default is the spec's.
MAX_REQUEST_BODY_BYTES_ENV = "MAX_REQUEST_BODY_BYTES"
DEFAULT_MAX_REQUEST_BODY_BYTES = 1024**2


def make_api(title: str, description: str) -> FastAPI:
    """A FastAPI app (docs at /docs) whose 422 answers survive any input, NaN and infinity included."""
    api = FastAPI(title=title, description=description)
    api.add_exception_handler(RequestValidationError, _unprocessable)
    api.add_middleware(BodySizeLimit)
    return api


class BodySizeLimit:
    """Answers 413 to a body past $MAX_REQUEST_BODY_BYTES: at once when Content-Length says so, else as soon as
    the received chunks exceed it, so an oversized body is never held in memory whole."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        # Read when the middleware stack is built, i.e. in the replica, which inherits its container's environment.
        self.limit = int(os.environ.get(MAX_REQUEST_BODY_BYTES_ENV, DEFAULT_MAX_REQUEST_BODY_BYTES))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self._too_large(send)
            return
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise _BodyTooLarge(self.limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _BodyTooLarge:
            if started:
                raise
            await self._too_large(send)

    async def _too_large(self, send: Send) -> None:
        body = json.dumps({"detail": f"request body larger than {self.limit} bytes"}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})


class _BodyTooLarge(HTTPException):
    """The body received so far is past the limit; FastAPI passes an HTTPException raised while reading through."""

    def __init__(self, limit: int) -> None:
        super().__init__(status_code=413, detail=f"request body larger than {limit} bytes")


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
