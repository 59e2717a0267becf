"""Server-sent events read as they arrive (loadtests/sse.py), whatever the chunks' boundaries: the parsing rules of
the WHATWG standard that a stream of the plain-language app, or any other, may use."""

import pytest

from loadtests.sse import Event, EventStream

STREAM = (
    b'event: token\ndata: {"index": 0, "text": "The"}\n\n'
    b'event: token\ndata: {"index": 1, "text": " patient"}\n\n'
    b'event: done\ndata: {"text": "The patient", "tokens": 2}\n\n'
)
EVENTS = [
    Event("token", '{"index": 0, "text": "The"}'),
    Event("token", '{"index": 1, "text": " patient"}'),
    Event("done", '{"text": "The patient", "tokens": 2}'),
]


def parse(*chunks: bytes) -> list[Event]:
    stream = EventStream()
    return [event for chunk in chunks for event in stream.feed(chunk)] + stream.end()


def test_a_stream_in_one_chunk() -> None:
    assert parse(STREAM) == EVENTS


@pytest.mark.parametrize("size", [1, 2, 3, 7])
def test_a_stream_cut_anywhere_gives_the_same_events(size: int) -> None:
    assert parse(*(STREAM[i : i + size] for i in range(0, len(STREAM), size))) == EVENTS


def test_an_event_is_dispatched_by_the_chunk_that_completes_it() -> None:
    stream = EventStream()
    assert stream.feed(b"event: token\ndata: a\n") == []
    assert stream.feed(b"\nevent: tok") == [Event("token", "a")]


@pytest.mark.parametrize("end", [b"\r\n", b"\r", b"\n"])
def test_every_line_ending_ends_a_line(end: bytes) -> None:
    assert parse(b"event: done" + end + b"data: x" + end + end) == [Event("done", "x")]


def test_a_cr_last_in_a_chunk_waits_for_the_next_one_or_the_end() -> None:
    stream = EventStream()
    assert stream.feed(b"data: a\r\r") == []
    assert stream.end() == [Event("message", "a")]


def test_a_crlf_split_between_chunks_is_one_line_ending() -> None:
    assert parse(b"data: a\r", b"\n\r", b"\n") == [Event("message", "a")]


def test_a_character_split_between_chunks_is_decoded_whole() -> None:
    text = "data: caf\u00e9 \u26bd\n\n".encode()
    assert parse(*(text[i : i + 1] for i in range(len(text)))) == [Event("message", "caf\u00e9 \u26bd")]


def test_bytes_that_are_not_utf8_are_replaced() -> None:
    assert parse(b"data: a\xffb\n\n") == [Event("message", "a\ufffdb")]


def test_data_lines_are_joined_by_line_feeds_and_one_space_is_dropped() -> None:
    assert parse(b"data:one\ndata:  two\ndata\n\n") == [Event("message", "one\n two\n")]


def test_comments_ids_retries_and_unknown_fields_are_ignored() -> None:
    assert parse(b": keep-alive\nid: 7\nretry: 100\nfoo: bar\ndata: x\n\n") == [Event("message", "x")]


def test_an_event_without_data_is_not_dispatched_and_its_name_does_not_leak() -> None:
    assert parse(b"event: token\n\ndata: x\n\n") == [Event("message", "x")]


def test_a_byte_order_mark_first_is_skipped() -> None:
    assert parse(b"\xef\xbb", b"\xbfevent: done\ndata: x\n\n") == [Event("done", "x")]


def test_an_event_the_stream_did_not_finish_is_dropped() -> None:
    assert parse(b"data: a\n\ndata: b\n") == [Event("message", "a")]
