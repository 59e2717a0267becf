"""Plain-language traffic: clinical notes in shorthand, rewritten greedily most of the time, sampled (with a seed)
or searched with beams now and then; the answers and the streams held to the contract of
serve_apps/plain_language/api.py."""

import json
import random
from collections.abc import Sequence
from typing import Any

from loadtests.sse import Event
from loadtests.workload import InvalidResponse, field, require
from serve_apps.plain_language.api import DONE_EVENT, ERROR_EVENT, TOKEN_EVENT

# Written for this load test, in the shorthand the model is trained to rewrite; none is a training pair.
NOTES = (
    "Pt c/o SOB x3d, hx of HTN.",
    "BP 150/95, HR 102, afebrile.",
    "Start metformin 500 mg PO BID.",
    "Pt NPO after midnight for colonoscopy.",
    "F/u w/ cardiology in 2 wks.",
    "CXR neg for PNA.",
    "Hold lisinopril if SBP < 100.",
    "Pt ambulating w/o assistance, tolerating PO.",
    "Dx: T2DM, CKD stage 3.",
    "Give APAP 650 mg PO q6h PRN pain.",
    "Pt c/o N/V since yesterday, no abd pain.",
    "Labs: WBC 14, Hgb 9.8, plt nl.",
)
MAX_NEW_TOKENS = (32, 64)
# A client samples now and then (with a seed, to be able to repeat the answer); whole answers are sometimes searched
# with beams, which a stream cannot do (api.streamable).
SAMPLED_SHARE = 0.2
BEAMS_SHARE = 0.25
BEAMS = 2
TEMPERATURE = 0.7
FINISH_REASONS = ("eos", "length")


class PlainLanguageWorkload:
    """One note per request; the checks follow what a request asked for (its max_new_tokens)."""

    def __init__(self, notes: Sequence[str] = NOTES) -> None:
        self._notes = list(notes)

    def stream_request(self, rng: random.Random) -> dict[str, Any]:
        """A note to stream: greedy, or sampled with a seed for SAMPLED_SHARE of the requests."""
        request: dict[str, Any] = {"text": rng.choice(self._notes), "max_new_tokens": rng.choice(MAX_NEW_TOKENS)}
        if rng.random() < SAMPLED_SHARE:
            request |= {"temperature": TEMPERATURE, "seed": rng.randrange(2**32)}
        return request

    def request(self, rng: random.Random) -> dict[str, Any]:
        """A note to answer whole: a stream's request, or a beam search for BEAMS_SHARE of them."""
        if rng.random() < BEAMS_SHARE:
            return {"text": rng.choice(self._notes), "max_new_tokens": rng.choice(MAX_NEW_TOKENS), "num_beams": BEAMS}
        return self.stream_request(rng)

    def check(self, request: dict[str, Any], body: Any) -> None:
        """A Generation: text, tokens within max_new_tokens (all of them when it stopped for length), a known
        finish_reason and a time to first token."""
        field(body, "text", str)
        tokens = field(body, "tokens", int)
        limit = request["max_new_tokens"]
        require(0 <= tokens <= limit, f"tokens {tokens} outside 0..{limit} (max_new_tokens)")
        reason = field(body, "finish_reason", str)
        require(reason in FINISH_REASONS, f"finish_reason {reason!r} not in {FINISH_REASONS}")
        require(reason != "length" or tokens == limit, f"finish_reason length after {tokens} of {limit} tokens")
        ttft_ms = field(body, "ttft_ms", (int, float))
        require(not isinstance(ttft_ms, bool) and ttft_ms >= 0, f"ttft_ms {ttft_ms!r} is not a duration")

    def check_stream(self, request: dict[str, Any], events: Sequence[Event]) -> None:
        """`token` events numbered from 0, then one `done` event, last, whose Generation is their text joined and
        their count (and passes `check`); an `error` event or a stream without `done` fails."""
        pieces: list[str] = []
        for position, event in enumerate(events):
            data = _json(event)
            if event.name == TOKEN_EVENT:
                require(field(data, "index", int) == len(pieces), f"token {len(pieces)} has index {data['index']}")
                pieces.append(field(data, "text", str))
            elif event.name == ERROR_EVENT:
                raise InvalidResponse(f"error event after {len(pieces)} tokens: {data.get('detail')!r}"[:200])
            elif event.name == DONE_EVENT:
                require(position == len(events) - 1, f"{len(events) - 1 - position} event(s) after done")
                self.check(request, data)
                text = "".join(pieces)
                require(data["text"] == text, f"done text {data['text'][:60]!r} is not the tokens' {text[:60]!r}")
                count = len(pieces)
                require(data["tokens"] == count, f"done counts {data['tokens']} tokens, the stream had {count}")
                return
            else:
                raise InvalidResponse(f"unexpected event {event.name!r}")
        raise InvalidResponse(f"stream ended after {len(pieces)} tokens without a done event")


def _json(event: Event) -> Any:
    try:
        data = json.loads(event.data)
    except ValueError:
        raise InvalidResponse(f"{event.name} event data is not JSON: {event.data[:80]!r}") from None
    require(isinstance(data, dict), f"{event.name} event data is {type(data).__name__}, not an object")
    return data
