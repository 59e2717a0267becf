"""The plain-language API (serve_apps/plain_language/api.py): what a request may ask, what the Args allow, what the
stream refuses, and the events it is made of (no Ray, no model)."""

import json
from typing import Any

import pytest
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from serve_apps.plain_language.api import (
    BEAMS_CEILING,
    DEFAULT_MAX_NEW_TOKENS,
    MAX_NEW_TOKENS_CEILING,
    GenerateRequest,
    Generation,
    PlainLanguageArgs,
    TokenEvent,
    max_new_tokens,
    sse_event,
    streamable,
    within_limits,
)

MODEL = {"uri": "file://models/plain_language/t5.onnx", "sha256": "0" * 64}


def request(**changes: Any) -> GenerateRequest:
    return GenerateRequest.model_validate({"text": "pt c/o SOB x3d", **changes})


def args(**changes: Any) -> PlainLanguageArgs:
    return PlainLanguageArgs.model_validate({"model": MODEL, **changes})


def rejected_at(check: Any, *values: Any) -> tuple[str | int, ...] | None:
    """Where `check(*values)` answers 422; None when it passes."""
    try:
        check(*values)
    except RequestValidationError as error:
        (item,) = error.errors()
        return tuple(item["loc"])
    return None


def test_the_args_declare_that_the_app_streams_tokens_and_keep_it_out_of_the_spec() -> None:
    assert PlainLanguageArgs.streams_tokens is True
    assert "streams_tokens" not in PlainLanguageArgs.model_json_schema()["properties"]
    with pytest.raises(ValidationError):
        PlainLanguageArgs.model_validate({"model": MODEL, "streams_tokens": False})


@pytest.mark.parametrize(
    ("body", "location"),
    [
        ({"text": ""}, ("text",)),
        ({"text": " \n"}, ("text",)),
        ({"max_new_tokens": 0}, ("max_new_tokens",)),
        ({"max_new_tokens": MAX_NEW_TOKENS_CEILING + 1}, ("max_new_tokens",)),
        ({"max_new_tokens": "64"}, ("max_new_tokens",)),
        ({"num_beams": BEAMS_CEILING + 1}, ("num_beams",)),
        ({"temperature": -0.1}, ("temperature",)),
        ({"temperature": 2.5}, ("temperature",)),
        ({"seed": -1}, ("seed",)),
        ({"top_k": 5}, ("top_k",)),
    ],
)
def test_a_request_out_of_bounds_is_refused_naming_its_field(body: dict[str, Any], location: tuple[str, ...]) -> None:
    with pytest.raises(ValidationError) as error:
        request(**body)
    assert [tuple(e["loc"]) for e in error.value.errors()] == [location]


def test_beam_search_and_sampling_are_not_combined() -> None:
    with pytest.raises(ValidationError, match="num_beams must be 1 when temperature is above 0"):
        request(num_beams=2, temperature=0.7)
    assert request(num_beams=4).num_beams == 4
    assert request(temperature=0.7, seed=3).seed == 3


@pytest.mark.parametrize(
    ("limits", "body", "location"),
    [
        ({}, {"text": "x" * 2001}, ("body", "text")),
        ({"max_input_chars": 10}, {"text": "x" * 10}, None),
        ({}, {"max_new_tokens": 129}, ("body", "max_new_tokens")),
        ({"max_new_tokens_limit": 256}, {"max_new_tokens": 256}, None),
        ({}, {"num_beams": 5}, ("body", "num_beams")),
        ({"max_beams": 1}, {"num_beams": 2}, ("body", "num_beams")),
    ],
)
def test_the_args_limits_are_applied_past_the_request_model_s_ceilings(
    limits: dict[str, Any], body: dict[str, Any], location: tuple[str, ...] | None
) -> None:
    assert rejected_at(within_limits, request(**body), args(**limits)) == location


def test_an_unstated_max_new_tokens_is_the_default_within_the_limit() -> None:
    assert max_new_tokens(request(), args()) == DEFAULT_MAX_NEW_TOKENS
    assert max_new_tokens(request(), args(max_new_tokens_limit=16)) == 16
    assert max_new_tokens(request(max_new_tokens=100), args()) == 100
    assert rejected_at(within_limits, request(), args(max_new_tokens_limit=16)) is None


def test_the_stream_refuses_beam_search() -> None:
    assert rejected_at(streamable, request(num_beams=2)) == ("body", "num_beams")
    assert rejected_at(streamable, request()) is None


def test_an_event_is_its_name_and_one_line_of_json() -> None:
    text = sse_event("token", TokenEvent(index=0, text="short\nof breath"))
    assert text == 'event: token\ndata: {"index":0,"text":"short\\nof breath"}\n\n'
    done = sse_event("done", Generation(text="a b", tokens=2, finish_reason="eos", ttft_ms=12.5))
    assert json.loads(done.splitlines()[1].removeprefix("data: "))["finish_reason"] == "eos"
