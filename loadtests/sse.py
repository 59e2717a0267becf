"""Server-sent events read as their bytes arrive, the way a browser's EventSource reads them; pure, so unit tests
need no server.

Follows the WHATWG HTML standard, "Server-sent events", 9.2.6 "Interpreting an event stream": UTF-8 with bad bytes
replaced, an optional byte order mark first, lines ended by CRLF, LF or CR, `field: value` lines (one space after the
colon dropped), `:` comments, `data` lines joined by LF, and an event dispatched at a blank line when it has data
(named `message` when no `event` line named it). `id` and `retry` are read and ignored: a load test does not
reconnect. What follows the last blank line is an incomplete event, and is dropped as the standard drops it.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass

DEFAULT_EVENT = "message"


@dataclass(frozen=True)
class Event:
    """One dispatched event: its name and its data."""

    name: str
    data: str


class EventStream:
    """Turns the chunks of a text/event-stream body into events, whatever the chunks' boundaries."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._pending = ""
        self._started = False
        self._name = ""
        self._data: list[str] = []

    def feed(self, chunk: bytes) -> list[Event]:
        """The events that `chunk` completes, in order."""
        return self._lines(self._decoder.decode(chunk), final=False)

    def end(self) -> list[Event]:
        """The events the end of the stream completes: a CR left last by the final chunk ends its line."""
        return self._lines(self._decoder.decode(b"", final=True), final=True)

    def _lines(self, text: str, *, final: bool) -> list[Event]:
        if not self._started and text:
            self._started = True
            text = text.removeprefix("\ufeff")
        self._pending += text
        events = []
        start = 0
        while True:
            ends = [i for i in (self._pending.find("\r", start), self._pending.find("\n", start)) if i >= 0]
            if not ends:
                break
            end = min(ends)
            if self._pending[end] == "\r" and end == len(self._pending) - 1 and not final:
                break  # a CR last in the chunk may be the first half of a CRLF
            line = self._pending[start:end]
            start = end + (2 if self._pending.startswith("\r\n", end) else 1)
            event = self._line(line)
            if event is not None:
                events.append(event)
        self._pending = self._pending[start:]
        return events

    def _line(self, line: str) -> Event | None:
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None
        field, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if field == "event":
            self._name = value
        elif field == "data":
            self._data.append(value)
        return None

    def _dispatch(self) -> Event | None:
        name, data = self._name or DEFAULT_EVENT, self._data
        self._name, self._data = "", []
        return Event(name, "\n".join(data)) if data else None
