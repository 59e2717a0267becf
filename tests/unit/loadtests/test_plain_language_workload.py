"""Plain-language traffic: requests the app's API accepts, and every answer and stream held to its contract."""

import json
import random
import re
from typing import Any

import pytest

from loadtests.plain_language.workload import NOTES, PlainLanguageWorkload
from loadtests.sse import Event, EventStream
from loadtests.workload import InvalidResponse, stream_problem
from serve_apps.plain_language.api import GenerateRequest, Generation, TokenEvent, sse_event, streamable

WORKLOAD = PlainLanguageWorkload()
REQUEST = {"text": "Pt c/o SOB x3d.", "max_new_tokens": 4}
PIECES = ["The", " patient", " is", " short"]


def answer(**changes: Any) -> dict[str, Any]:
    """A correct whole answer to REQUEST, with `changes` applied."""
    return {"text": "".join(PIECES), "tokens": 4, "finish_reason": "length", "ttft_ms": 12.5} | changes


def events(pieces: list[str] = PIECES, **done: Any) -> list[Event]:
    """The stream the app sends for `pieces`: token events, then done (its Generation changed by `done`)."""
    tokens = [Event("token", TokenEvent(index=i, text=p).model_dump_json()) for i, p in enumerate(pieces)]
    body = {"text": "".join(pieces), "tokens": len(pieces), "finish_reason": "length", "ttft_ms": 12.5} | done
    return [*tokens, Event("done", json.dumps(body))]


def reason(events: list[Event], request: dict[str, Any] = REQUEST) -> str:
    with pytest.raises(InvalidResponse) as caught:
        WORKLOAD.check_stream(request, events)
    return str(caught.value)


def test_requests_are_valid_for_the_api_and_streams_never_search_with_beams() -> None:
    rng = random.Random(25)
    for _ in range(200):
        GenerateRequest.model_validate(WORKLOAD.request(rng))
        streamed = WORKLOAD.stream_request(rng)
        streamable(GenerateRequest.model_validate(streamed))
        assert streamed["text"] in NOTES


def test_requests_mix_greedy_sampled_and_beam_search() -> None:
    rng = random.Random(25)
    requests = [WORKLOAD.request(rng) for _ in range(200)]
    assert {r.get("num_beams", 1) > 1 for r in requests} == {False, True}
    assert {"seed" in r for r in requests} == {False, True}


def test_a_correct_answer_passes() -> None:
    WORKLOAD.check(REQUEST, answer())
    WORKLOAD.check(REQUEST, answer(tokens=2, finish_reason="eos", text="The patient"))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"tokens": 5}, "tokens 5 outside 0..4 (max_new_tokens)"),
        ({"finish_reason": "stop"}, "finish_reason 'stop' not in"),
        ({"tokens": 3}, "finish_reason length after 3 of 4 tokens"),
        ({"ttft_ms": -1}, "ttft_ms -1 is not a duration"),
        ({"text": None}, "text is NoneType, not str"),
    ],
)
def test_an_answer_that_breaks_the_contract_is_named(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidResponse, match=re.escape(message)):
        WORKLOAD.check(REQUEST, answer(**changes))


def test_the_app_s_own_events_make_a_correct_stream() -> None:
    generation = Generation(text="The patient", tokens=2, finish_reason="eos", ttft_ms=3.0)
    sent = [sse_event("token", TokenEvent(index=i, text=p)) for i, p in enumerate(["The", " patient"])]
    sent.append(sse_event("done", generation))
    parsed = EventStream().feed("".join(sent).encode())
    WORKLOAD.check_stream(REQUEST, parsed)
    assert stream_problem(WORKLOAD, REQUEST, parsed) is None


def test_the_done_text_must_be_the_tokens_joined() -> None:
    assert reason(events(text="The patient is short of breath")).startswith("done text 'The patient is short of")


def test_the_done_count_must_be_the_token_events() -> None:
    assert reason(events(PIECES[:3], tokens=2, finish_reason="eos")) == "done counts 2 tokens, the stream had 3"


def test_tokens_are_numbered_from_zero_without_gaps() -> None:
    stream = events()
    stream[1] = Event("token", TokenEvent(index=2, text=" patient").model_dump_json())
    assert reason(stream) == "token 1 has index 2"


def test_a_stream_cut_before_done_fails() -> None:
    assert reason(events()[:-1]) == "stream ended after 4 tokens without a done event"
    assert reason([]) == "stream ended after 0 tokens without a done event"


def test_an_error_event_fails_with_its_detail() -> None:
    stream = [*events()[:2], Event("error", '{"detail": "model failed"}')]
    assert reason(stream) == "error event after 2 tokens: 'model failed'"
    assert stream_problem(WORKLOAD, REQUEST, stream) == "invalid stream: error event after 2 tokens: 'model failed'"


@pytest.mark.parametrize(
    ("stream", "message"),
    [
        ([*events(), Event("token", '{"index": 4, "text": "x"}')], "1 event(s) after done"),
        ([Event("progress", "{}"), *events()], "unexpected event 'progress'"),
        ([Event("token", "not json"), *events()], "token event data is not JSON: 'not json'"),
        ([Event("token", "[1]"), *events()], "token event data is list, not an object"),
    ],
)
def test_a_stream_out_of_shape_fails(stream: list[Event], message: str) -> None:
    assert reason(stream) == message
