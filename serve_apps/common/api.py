"""The FastAPI side every app shares: how invalid, oversized and slow requests are answered."""

import asyncio
import json
import math
import os
import re
import reprlib
from collections.abc import Sequence
from typing import Any, NoReturn

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Set by render in every Ray container (env.serve.max_request_body_bytes, render/plan.py); the default is the spec's.
MAX_REQUEST_BODY_BYTES_ENV = "MAX_REQUEST_BODY_BYTES"
DEFAULT_MAX_REQUEST_BODY_BYTES = 1024**2
# Longest a replica waits for a whole request body. Nothing else bounds it below the whole request: uvicorn has no
# body read timeout, and Ray Serve's proxy only cuts a request off after http_options.request_timeout_s (30 s in the
# spec), which a client may lift with `x-request-timeout-seconds: 0`. Not rendered yet: render may set it later.
REQUEST_BODY_TIMEOUT_S_ENV = "REQUEST_BODY_TIMEOUT_S"
DEFAULT_REQUEST_BODY_TIMEOUT_S = 5.0
# The deepest request of any app nests 3 levels; past this bound neither the JSON parser nor pydantic gets the body.
MAX_JSON_DEPTH = 32
# What a 422 gives back of a bad request, in characters and in errors: enough to spot the mistake, never the
# request again (a 1 MiB body of wrong items would otherwise come back as several MiB of errors).
MAX_ECHO_CHARS = 200
MAX_MESSAGE_CHARS = 1000
MAX_ERRORS_SHOWN = 20
# Bytes of the body on either side of a problem's offset that its 422 shows.
EXCERPT_BYTES = 20

_STRING_OR_BRACKET = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"?|[\[\]{}]', re.DOTALL)
_BOUNDED_REPR = reprlib.Repr()
_BOUNDED_REPR.maxlevel = 3
_BOUNDED_REPR.maxstring = _BOUNDED_REPR.maxother = _BOUNDED_REPR.maxlong = MAX_ECHO_CHARS // 4


def make_api(title: str, description: str) -> FastAPI:
    """A FastAPI app (docs at /docs) whose bodies are bounded (BoundedBody) and whose 422 answers survive any input."""
    api = FastAPI(title=title, description=description)
    api.add_exception_handler(RequestValidationError, _unprocessable)
    api.add_middleware(BoundedBody)
    return api


class BoundedBody:
    """Reads a request's body whole before the app sees it, and answers instead of the app when the body is
    past $MAX_REQUEST_BODY_BYTES (413: at once when Content-Length says so, else as soon as the received chunks
    exceed it, so such a body is never held whole), not all there within $REQUEST_BODY_TIMEOUT_S (408), or,
    sent as JSON, not UTF-8, nested deeper than MAX_JSON_DEPTH or not JSON (422 naming the problem and its byte
    offset): no model or pydantic work starts on such a body."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        # Read when the middleware stack is built, i.e. in the replica, which inherits its container's environment.
        self.limit = int(os.environ.get(MAX_REQUEST_BODY_BYTES_ENV, DEFAULT_MAX_REQUEST_BODY_BYTES))
        self.timeout_s = float(os.environ.get(REQUEST_BODY_TIMEOUT_S_ENV, DEFAULT_REQUEST_BODY_TIMEOUT_S))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        declared = headers.get(b"content-length")
        if declared is None and b"transfer-encoding" not in headers:
            await self.app(scope, receive, send)  # no body: nothing to wait for
            return
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await _answer(send, 413, {"detail": f"request body larger than {self.limit} bytes"})
            return
        try:
            async with asyncio.timeout(self.timeout_s):
                body = await self._read(receive)
        except TimeoutError:
            # The client may still be sending: the connection cannot carry another request.
            detail = f"request body not received within {self.timeout_s:g} s"
            await _answer(send, 408, {"detail": detail}, [(b"connection", b"close")])
            return
        except _BodyTooLarge:
            await _answer(send, 413, {"detail": f"request body larger than {self.limit} bytes"})
            return
        if body is None:
            return  # the client went away; nobody to answer
        # FastAPI parses a JSON body only when it is not empty.
        if body and _is_json(headers.get(b"content-type")) and (problem := json_problem(body)) is not None:
            await _answer(send, 422, {"detail": [problem]})
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()  # after the body: a disconnect, when it comes
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    async def _read(self, receive: Receive) -> bytes | None:
        """The whole body, or None when the client disconnects first; raises _BodyTooLarge past the limit."""
        chunks: list[bytes] = []
        received = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return None
            chunk = message.get("body", b"")
            received += len(chunk)
            if received > self.limit:
                raise _BodyTooLarge
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)


class _BodyTooLarge(Exception):
    """The body received so far is past the limit."""


def _is_json(content_type: bytes | None) -> bool:
    """Whether FastAPI parses a body of this Content-Type as JSON (application/json or application/*+json)."""
    if content_type is None:
        return False
    mime = content_type.decode("latin-1").partition(";")[0].strip().lower()
    return mime == "application/json" or (mime.startswith("application/") and mime.endswith("+json"))


def json_problem(body: bytes) -> dict[str, Any] | None:
    """Why `body` cannot be an app's JSON request, as one error of a 422 (its loc the byte offset, like FastAPI's
    own json_invalid), or None when it parses. Checked in this order: UTF-8 (RFC 8259), depth, syntax."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        return _body_error(body, "utf8_invalid", error.start, f"not valid UTF-8 at byte {error.start}: {error.reason}")
    # Nesting deeper than MAX_JSON_DEPTH needs more opening brackets than that; a request has a handful, so counting
    # them (in C) spares it the token scan (in Python): 5.9 -> 1.7 µs for a zero-shot request of eight labels.
    if body.count(b"[") + body.count(b"{") > MAX_JSON_DEPTH and (too_deep := _depth_problem(body, text)):
        return too_deep
    # FastAPI parses the body again (it takes no parsed body), and skips a UTF-8 byte order mark: so does this parse.
    start = 1 if text.startswith("\ufeff") else 0
    try:
        json.loads(text[start:])
    except json.JSONDecodeError as error:
        offset = len(text[: start + error.pos].encode())
        message = f"invalid JSON at byte {offset} (line {error.lineno}, column {error.colno}): {error.msg}"
        return _body_error(body, "json_invalid", offset, message)
    except ValueError as error:  # an integer longer than Python converts (sys.get_int_max_str_digits)
        return {"type": "json_invalid", "loc": ["body"], "msg": _text(f"invalid JSON: {error}", MAX_MESSAGE_CHARS)}
    return None


def _depth_problem(body: bytes, text: str) -> dict[str, Any] | None:
    """The json_too_deep error at the first bracket nested past MAX_JSON_DEPTH (brackets inside strings do not
    count), or None."""
    depth = 0
    for token in _STRING_OR_BRACKET.finditer(text):
        if token.group() in ("[", "{"):
            depth += 1
            if depth > MAX_JSON_DEPTH:
                offset = len(text[: token.start()].encode())
                message = f"JSON nested deeper than {MAX_JSON_DEPTH} levels at byte {offset}"
                return _body_error(body, "json_too_deep", offset, message)
        elif token.group() in ("]", "}"):
            depth -= 1
    return None


def _body_error(body: bytes, kind: str, offset: int, message: str) -> dict[str, Any]:
    excerpt = body[max(0, offset - EXCERPT_BYTES) : offset + EXCERPT_BYTES]
    return {"type": kind, "loc": ["body", offset], "msg": message, "input": _text(_decoded(excerpt), MAX_ECHO_CHARS)}


async def _answer(send: Send, status: int, content: Any, headers: Sequence[tuple[bytes, bytes]] = ()) -> None:
    body = json.dumps(content, separators=(",", ":")).encode()
    head = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *headers]
    await send({"type": "http.response.start", "status": status, "headers": head})
    await send({"type": "http.response.body", "body": body})


def reject(location: Sequence[str | int], message: str, value: Any) -> NoReturn:
    """Answer 422 like FastAPI's own validation does, for a rule that depends on the app's Args."""
    raise RequestValidationError([{"type": "value_error", "loc": ("body", *location), "msg": message, "input": value}])


async def _unprocessable(request: Request, error: Exception) -> JSONResponse:
    # FastAPI's own handler echoes each bad input whole and fails on what JSON or UTF-8 cannot carry (NaN, a lone
    # surrogate, bytes that are not UTF-8), turning a client's mistake into a 500: every text here is escaped.
    assert isinstance(error, RequestValidationError)
    errors = error.errors()
    content: dict[str, Any] = {"detail": [_shown(item) for item in errors[:MAX_ERRORS_SHOWN]]}
    if len(errors) > MAX_ERRORS_SHOWN:
        content["more_errors"] = len(errors) - MAX_ERRORS_SHOWN
    return JSONResponse(status_code=422, content=content)


def _shown(error: dict[str, Any]) -> dict[str, Any]:
    """One validation error as a 422 shows it: type, loc, msg, then input and ctx when there are any."""
    shown: dict[str, Any] = {
        "type": _text(str(error["type"]), MAX_ECHO_CHARS),
        "loc": [part if isinstance(part, int) else _text(str(part), MAX_ECHO_CHARS) for part in error["loc"]],
        "msg": _text(str(error["msg"]), MAX_MESSAGE_CHARS),
    }
    if "input" in error:
        shown["input"] = echo(error["input"])
    if "ctx" in error:
        # pydantic puts a validator's exception itself in ctx["error"].
        shown["ctx"] = {
            _text(str(key), MAX_ECHO_CHARS): echo(str(value) if isinstance(value, BaseException) else value)
            for key, value in error["ctx"].items()
        }
    return shown


def echo(value: Any) -> Any:
    """`value` as a 422 may give it back: valid JSON and UTF-8 (non-finite numbers as "nan"/"inf", lone surrogates
    and bytes that are not UTF-8 backslash-escaped) and about MAX_ECHO_CHARS long at most. A longer string comes
    back cut, with "…"; a longer structure as the start of its repr."""
    try:
        return _echoed(value, [MAX_ECHO_CHARS])
    except _TooLong:
        if isinstance(value, str | bytes):
            return _text(_decoded(value), MAX_ECHO_CHARS)
        return _text(_BOUNDED_REPR.repr(value), MAX_ECHO_CHARS)


class _TooLong(Exception):
    """The echo ran past its budget of characters."""


def _echoed(value: Any, budget: list[int]) -> Any:
    """`value` made JSON-safe, charging its size to budget[0]; raises _TooLong once the budget is spent."""
    result: Any
    if value is None or isinstance(value, bool):
        result, size = value, 5
    elif isinstance(value, float):
        result = value if math.isfinite(value) else str(value)
        size = 24
    elif isinstance(value, int):
        result, size = value, value.bit_length() // 3 + 1
    elif isinstance(value, str | bytes):
        size = len(value)
        if size > budget[0]:
            raise _TooLong
        result = _escaped(_decoded(value))
    elif isinstance(value, list | tuple):
        result, size = [_echoed(item, budget) for item in value], 2
    elif isinstance(value, dict):
        result = {_echoed(str(key), budget): _echoed(item, budget) for key, item in value.items()}
        size = 2
    else:
        return _echoed(str(value), budget)
    budget[0] -= size
    if budget[0] < 0:
        raise _TooLong
    return result


def _decoded(value: str | bytes) -> str:
    return value.decode("utf-8", "backslashreplace") if isinstance(value, bytes) else value


def _escaped(text: str) -> str:
    """`text` with what UTF-8 cannot carry (lone surrogates) backslash-escaped: "\\ud800" as 6 characters."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _text(text: str, limit: int) -> str:
    """`text` escaped and cut to `limit` characters, ending in "…" when cut."""
    return _escaped(text) if len(text) <= limit else _escaped(text[:limit]) + "…"
