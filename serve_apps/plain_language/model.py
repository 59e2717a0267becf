"""Text generation with a T5 checkpoint archive, in ONNX Runtime or in transformers; no Ray.

The archive is a tar of a Hugging Face T5 checkpoint directory (config.json, model.safetensors, tokenizer.json,
...), as serve_apps/plain_language/build.py writes it; the artifact layer has fetched it and checked its sha256.
Backends:
- "onnx": the graphs under onnx/ in the archive (export.py), run by ONNX Runtime; needs neither torch nor
  transformers. An archive without them (any T5 checkpoint) is exported when it loads, which needs both.
- "transformers": `T5ForConditionalGeneration` on torch.

Both run the same decoding, written here over numpy logits: greedy (temperature 0, num_beams 1), beam search
(num_beams 2-4, scores normalised by length, done when num_beams hypotheses have ended) and sampling (temperature
> 0, from a generator seeded by the request, so that a request gives the same text alone or in any batch). A batch
is encoded once with padding and decoded together; a request leaves the batch when it ends.

`stream` yields the text one token at a time, each piece the difference between the decoded prefixes, so that the
pieces add up to what `generate` returns for the same request.
"""

import json
import tarfile
import tempfile
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from serve_apps.common.batching import ItemErrors

if TYPE_CHECKING:
    import numpy as np
    from tokenizers import Tokenizer

Backend = Literal["onnx", "transformers"]
FinishReason = Literal["eos", "length"]
BACKENDS: tuple[Backend, ...] = ("onnx", "transformers")
MAX_NEW_TOKENS = 512
MAX_BEAMS = 4
MAX_TEMPERATURE = 5.0
MAX_INPUT_TOKENS = 512
ONNX_DIR = "onnx"


@dataclass(frozen=True)
class GenerationRequest:
    """One text to rewrite and how: greedy by default, beam search with num_beams > 1, sampling with
    temperature > 0 (from `seed`). `max_new_tokens` bounds the generated tokens, the end-of-sequence one included.
    Raises ValueError naming the field when a setting is out of bounds."""

    text: str
    max_new_tokens: int = 64
    num_beams: int = 1
    temperature: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.text, str) or not self.text.strip():
            raise ValueError(f"text: got {self.text!r}; must be a non-blank string")
        _check_int("max_new_tokens", self.max_new_tokens, 1, MAX_NEW_TOKENS)
        _check_int("num_beams", self.num_beams, 1, MAX_BEAMS)
        _check_int("seed", self.seed, 0, 2**63 - 1)
        if not (isinstance(self.temperature, int | float) and 0 <= self.temperature <= MAX_TEMPERATURE):
            raise ValueError(f"temperature: got {self.temperature!r}; must be between 0 (greedy) and {MAX_TEMPERATURE}")
        if self.temperature > 0 and self.num_beams > 1:
            raise ValueError(
                f"temperature: got {self.temperature!r} with num_beams {self.num_beams}; sampling and beam search "
                "do not combine. Hint: set temperature 0 for beam search, or num_beams 1 to sample"
            )


def _check_int(name: str, value: object, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{name}: got {value!r}; must be an integer from {low} to {high}")


@dataclass(frozen=True)
class Generation:
    """The generated text, how many tokens the model generated (the end-of-sequence one included) and why it
    stopped: "eos" when the model ended the text, "length" when it reached max_new_tokens."""

    text: str
    tokens: int
    finish_reason: FinishReason


class PlainLanguageModel:
    """A T5 checkpoint with its tokenizer, generating with one backend."""

    def __init__(self, tokenizer: "Tokenizer", runner: "_Runner", config: dict[str, Any], backend: Backend) -> None:
        self._tokenizer = tokenizer
        self._runner = runner
        self._eos = int(config["eos_token_id"])
        self._pad = int(config.get("pad_token_id", 0))
        self._start = int(config.get("decoder_start_token_id", self._pad))
        self.backend = backend

    @classmethod
    def load(cls, archive: Path, backend: Backend = "onnx", num_threads: int = 1) -> "PlainLanguageModel":
        """Load a checkpoint archive (a tar, see the module docstring) to run on `num_threads` CPU threads.

        Raises ValueError when the file is not such an archive or `backend` is unknown.
        """
        from tokenizers import Tokenizer

        if backend not in BACKENDS:
            raise ValueError(f"backend: got {backend!r}; must be one of {BACKENDS}")
        with tempfile.TemporaryDirectory(prefix="plain-language-") as scratch:
            checkpoint = Path(scratch)
            try:
                with tarfile.open(archive) as tar:
                    tar.extractall(checkpoint, filter="data")
            except (tarfile.TarError, OSError) as error:
                raise ValueError(f"{archive}: cannot read it as a tar archive of a T5 checkpoint ({error})") from error
            missing = [name for name in ("config.json", "tokenizer.json") if not (checkpoint / name).is_file()]
            if missing:
                raise ValueError(f"{archive}: no {', '.join(missing)} in the archive; not a T5 checkpoint archive")
            config = json.loads((checkpoint / "config.json").read_text())
            if config.get("model_type") not in ("t5", "mt5"):
                raise ValueError(f"{archive}: model_type {config.get('model_type')!r} in config.json is not T5's")
            tokenizer = Tokenizer.from_file(str(checkpoint / "tokenizer.json"))
            tokenizer.no_padding()
            tokenizer.no_truncation()
            runner: _Runner
            if backend == "onnx":
                graphs = checkpoint / ONNX_DIR
                if not (graphs / "decoder.onnx").is_file():
                    from serve_apps.plain_language.export import export_onnx

                    export_onnx(checkpoint, graphs)
                runner = _OnnxRunner(graphs, num_threads)
            else:
                runner = _TorchRunner(checkpoint, num_threads)
        return cls(tokenizer, runner, config, backend)

    def generate(self, batch: Sequence[GenerationRequest]) -> list[Generation]:
        """One Generation per request, in order. Raises ItemErrors naming the requests whose text is longer than
        MAX_INPUT_TOKENS tokens (each a ValueError), before any is generated."""
        if not batch:
            return []
        decoding = self._decode(batch, self._encode(batch))
        while True:
            try:
                next(decoding)
            except StopIteration as done:
                return list(done.value)

    def stream(self, request: GenerationRequest) -> Generator[str, None, Generation]:
        """The text of `generate([request])`, one piece per generated token (the end-of-sequence one excepted):
        the text that token adds, "" when it adds none yet (a piece of a character). The generator returns the
        whole Generation (StopIteration.value). Raises ValueError for beam search, which cannot stream, and for a
        text longer than MAX_INPUT_TOKENS tokens."""
        if request.num_beams > 1:
            raise ValueError(
                f"num_beams: got {request.num_beams}; beam search cannot stream (a beam's text changes until the "
                "end). Hint: stream with num_beams 1, or call generate"
            )
        try:
            encoded = self._encode([request])
        except ItemErrors as errors:
            raise errors.errors[0] from None
        decoding = self._decode([request], encoded)
        ids: list[int] = []
        emitted = ""
        while True:
            try:
                steps = next(decoding)
            except StopIteration as done:
                (result,) = done.value
                break
            for _, token in steps:
                if token == self._eos:
                    continue
                ids.append(token)
                # A token can end inside a character (byte-level pieces): hold back the replacement characters.
                text = self._tokenizer.decode(ids, skip_special_tokens=True).rstrip("\ufffd")
                piece = text[len(emitted) :] if text.startswith(emitted) else ""
                emitted += piece
                yield piece
        if result.text.startswith(emitted) and len(result.text) > len(emitted):
            yield result.text[len(emitted) :]
        return result

    def stream_batch(
        self, batch: Sequence[GenerationRequest]
    ) -> Generator[list[tuple[int, str]], None, list[Generation]]:
        """Decode the batch together, as `generate` does, yielding after each step the text each new token adds:
        (request index, piece) for every request that decoded one token in that step, the end-of-sequence token
        excepted; a beam search yields nothing (its text is known at its end). A request's pieces add up to its
        Generation's text; the generator returns the Generations in order (StopIteration.value). Raises ItemErrors
        naming the texts longer than MAX_INPUT_TOKENS tokens, before the first step."""
        if not batch:
            return []
        decoding = self._decode(batch, self._encode(batch))
        ids: dict[int, list[int]] = {}
        emitted: dict[int, str] = {}
        while True:
            try:
                steps = next(decoding)
            except StopIteration as done:
                results: list[Generation] = list(done.value)
                break
            pieces = []
            for index, token in steps:
                if token == self._eos:
                    continue
                ids.setdefault(index, []).append(token)
                # A token can end inside a character (byte-level pieces): hold back the replacement characters.
                text = self._tokenizer.decode(ids[index], skip_special_tokens=True).rstrip("\ufffd")
                before = emitted.get(index, "")
                piece = text[len(before) :] if text.startswith(before) else ""
                emitted[index] = before + piece
                pieces.append((index, piece))
            yield pieces
        tails = [
            (index, result.text[len(emitted[index]) :])
            for index, result in enumerate(results)
            if index in emitted and result.text.startswith(emitted[index]) and len(result.text) > len(emitted[index])
        ]
        if tails:
            yield tails
        return results

    def _encode(self, batch: Sequence[GenerationRequest]) -> list[list[int]]:
        encodings = [encoding.ids for encoding in self._tokenizer.encode_batch([r.text for r in batch])]
        too_long = {
            index: ValueError(f"text: got {len(ids)} tokens; must be at most {MAX_INPUT_TOKENS}. Hint: split the text")
            for index, ids in enumerate(encodings)
            if len(ids) > MAX_INPUT_TOKENS
        }
        if too_long:
            raise ItemErrors(too_long)
        return encodings

    def _decode(
        self, batch: Sequence[GenerationRequest], encodings: list[list[int]]
    ) -> Generator[list[tuple[int, int]], None, list[Generation]]:
        """Decode every request together; yields, after each step, the (request index, token) chosen for the
        requests that decode one sequence; returns the Generations."""
        import numpy as np

        width = max(len(ids) for ids in encodings)
        input_ids = np.full((len(encodings), width), self._pad, dtype=np.int64)
        for row, ids in enumerate(encodings):
            input_ids[row, : len(ids)] = ids
        mask = np.zeros_like(input_ids)
        for row, ids in enumerate(encodings):
            mask[row, : len(ids)] = 1
        state = self._runner.encode(input_ids, mask)
        searches: list[_Search] = [
            _BeamSearch(request, self._eos) if request.num_beams > 1 else _Single(request, self._eos)
            for request in batch
        ]
        # Rows of the decoder batch, in request order: one per sequence a request is decoding.
        rows = [1] * len(batch)
        tokens = np.full(len(batch), self._start, dtype=np.int64)
        while True:
            logits = self._runner.step(state, tokens)
            kept: list[int] = []
            chosen: list[int] = []
            steps: list[tuple[int, int]] = []
            offset = 0
            for index, search in enumerate(searches):
                if rows[index] == 0:
                    continue
                continued = search.advance(logits[offset : offset + rows[index]])
                if isinstance(search, _Single):
                    steps.append((index, search.ids[-1]))
                kept += [offset + parent for parent, _ in continued]
                chosen += [token for _, token in continued]
                offset += rows[index]
                rows[index] = len(continued)
            yield steps
            if not kept:
                break
            if kept != list(range(offset)):
                state = self._runner.select(state, np.array(kept, dtype=np.int64))
            tokens = np.array(chosen, dtype=np.int64)
        return [self._generation(search) for search in searches]

    def _generation(self, search: "_Search") -> Generation:
        ids, reason = search.result()
        text_ids = ids[:-1] if reason == "eos" else ids
        return Generation(self._tokenizer.decode(text_ids, skip_special_tokens=True), len(ids), reason)


class _Search(Protocol):
    def advance(self, logits: "np.ndarray") -> list[tuple[int, int]]:
        """Take the logits of this request's rows; return (row, token) for each sequence that goes on."""

    def result(self) -> tuple[list[int], FinishReason]: ...


class _Single:
    """Greedy decoding or sampling: one sequence."""

    def __init__(self, request: GenerationRequest, eos: int) -> None:
        import numpy as np

        self.ids: list[int] = []
        self._request = request
        self._eos = eos
        self._rng = np.random.default_rng(request.seed) if request.temperature > 0 else None
        self._reason: FinishReason = "length"

    def advance(self, logits: "np.ndarray") -> list[tuple[int, int]]:
        import numpy as np

        row = logits[0]
        if self._rng is None:
            token = int(np.argmax(row))
        else:
            scaled = row.astype(np.float64) / self._request.temperature
            cumulative = np.cumsum(np.exp(scaled - scaled.max()))
            token = min(
                int(np.searchsorted(cumulative, self._rng.random() * cumulative[-1], side="right")), len(row) - 1
            )
        self.ids.append(token)
        if token == self._eos:
            self._reason = "eos"
            return []
        if len(self.ids) >= self._request.max_new_tokens:
            return []
        return [(0, token)]

    def result(self) -> tuple[list[int], FinishReason]:
        return self.ids, self._reason


@dataclass(order=True)
class _Hypothesis:
    score: float
    ids: list[int] = field(compare=False)


class _BeamSearch:
    """Beam search: the num_beams best sequences by summed log-probability; an ended one scores its sum divided by
    its length, and the num_beams best ended ones are kept. Done when the best running beam, scored as if it ended
    now, scores no more than the worst kept (transformers' rule without early stopping: stopping as soon as
    num_beams have ended returns improbable sequences that ended early), or at max_new_tokens, where the running
    beams count as ended."""

    def __init__(self, request: GenerationRequest, eos: int) -> None:
        self._width = request.num_beams
        self._max = request.max_new_tokens
        self._eos = eos
        self._beams: list[_Hypothesis] = [_Hypothesis(0.0, [])]
        self._ended: list[_Hypothesis] = []

    def advance(self, logits: "np.ndarray") -> list[tuple[int, int]]:
        import numpy as np

        shifted = logits.astype(np.float64) - logits.max(axis=1, keepdims=True)
        log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        scores = log_probs + np.array([beam.score for beam in self._beams])[:, None]
        vocabulary = scores.shape[1]
        # 2 * width candidates: enough to keep width beams going however many of them end here.
        candidates = np.argsort(-scores, axis=None, kind="stable")[: 2 * self._width]
        beams: list[_Hypothesis] = []
        continued: list[tuple[int, int]] = []
        for rank, flat in enumerate(candidates):
            parent, token = divmod(int(flat), vocabulary)
            hypothesis = _Hypothesis(float(scores[parent, token]), [*self._beams[parent].ids, token])
            if token == self._eos:
                if rank < self._width:
                    self._end(hypothesis)
            elif len(beams) < self._width:
                beams.append(hypothesis)
                continued.append((parent, token))
        self._beams = beams
        if len(beams[0].ids) >= self._max:
            for beam in beams:
                self._end(beam)
            return []
        best_running = beams[0].score / len(beams[0].ids)
        if len(self._ended) >= self._width and self._ended[-1].score >= best_running:
            return []
        return continued

    def _end(self, hypothesis: _Hypothesis) -> None:
        ended = _Hypothesis(hypothesis.score / len(hypothesis.ids), hypothesis.ids)
        self._ended = sorted([*self._ended, ended], reverse=True)[: self._width]

    def result(self) -> tuple[list[int], FinishReason]:
        best = self._ended[0]
        return best.ids, "eos" if best.ids[-1] == self._eos else "length"


class _Runner(Protocol):
    """A backend's forward passes: encode a padded batch once, then decode one token per row per step."""

    def encode(self, input_ids: "np.ndarray", attention_mask: "np.ndarray") -> Any: ...

    def step(self, state: Any, tokens: "np.ndarray") -> "np.ndarray":
        """Logits [rows, vocabulary] of the next token after `tokens` [rows]; the state keeps the cache."""

    def select(self, state: Any, rows: "np.ndarray") -> Any:
        """The state of the given rows of `state`, in that order (beams reordered, ended sequences dropped)."""


@dataclass
class _OnnxState:
    cross_kv: "np.ndarray"
    mask: "np.ndarray"
    past_kv: "np.ndarray"
    sources: "np.ndarray"  # the batch row each decoder row reads


class _OnnxRunner:
    def __init__(self, graphs: Path, num_threads: int) -> None:
        from serve_apps.common.onnx_session import onnx_session

        self._encoder = onnx_session(graphs / "encoder.onnx", num_threads)
        self._decoder = onnx_session(graphs / "decoder.onnx", num_threads)

    def encode(self, input_ids: "np.ndarray", attention_mask: "np.ndarray") -> _OnnxState:
        import numpy as np

        (cross_kv,) = self._encoder.run(["cross_kv"], {"input_ids": input_ids, "attention_mask": attention_mask})
        layers, _, batch, heads, _, d_kv = cross_kv.shape
        past = np.zeros((layers, 2, batch, heads, 0, d_kv), dtype=np.float32)
        return _OnnxState(cross_kv, attention_mask, past, np.arange(batch))

    def step(self, state: _OnnxState, tokens: "np.ndarray") -> "np.ndarray":
        logits, state.past_kv = self._decoder.run(
            ["logits", "present_kv"],
            {
                "input_ids": tokens[:, None],
                "encoder_attention_mask": state.mask,
                "cross_kv": state.cross_kv,
                "past_kv": state.past_kv,
            },
        )
        return logits

    def select(self, state: _OnnxState, rows: "np.ndarray") -> _OnnxState:
        import numpy as np

        sources = state.sources[rows]
        if np.array_equal(sources, state.sources):  # beams reordered within their request: same encoder rows
            return _OnnxState(state.cross_kv, state.mask, state.past_kv[:, :, rows], sources)
        return _OnnxState(state.cross_kv[:, :, rows], state.mask[rows], state.past_kv[:, :, rows], sources)


class _TorchRunner:
    def __init__(self, checkpoint: Path, num_threads: int) -> None:
        import torch
        from transformers import T5ForConditionalGeneration
        from transformers.utils import logging as transformers_logging

        transformers_logging.set_verbosity_error()
        transformers_logging.disable_progress_bar()
        torch.set_num_threads(num_threads)
        self._model = T5ForConditionalGeneration.from_pretrained(str(checkpoint)).eval()

    def encode(self, input_ids: "np.ndarray", attention_mask: "np.ndarray") -> Any:
        import torch
        from transformers import DynamicCache, EncoderDecoderCache

        mask = torch.from_numpy(attention_mask)
        with torch.inference_mode():
            hidden = self._model.encoder(input_ids=torch.from_numpy(input_ids), attention_mask=mask).last_hidden_state
        return hidden, mask, EncoderDecoderCache(DynamicCache(), DynamicCache())

    def step(self, state: Any, tokens: "np.ndarray") -> "np.ndarray":
        import torch

        hidden, mask, cache = state
        with torch.inference_mode():
            output = self._model(
                encoder_outputs=(hidden,),
                attention_mask=mask,
                decoder_input_ids=torch.from_numpy(tokens[:, None]),
                past_key_values=cache,
                use_cache=True,
            )
        return output.logits[:, -1].float().numpy()

    def select(self, state: Any, rows: "np.ndarray") -> Any:
        import torch

        hidden, mask, cache = state
        index = torch.from_numpy(rows)
        cache.reorder_cache(index)
        return hidden[index], mask[index], cache
