"""Held-out scores and speed of a plain-language archive, per backend.

`python -m serve_apps.plain_language.evaluate <archive> [--speed]` prints, for each backend, the exact match and
the chrF (sacrebleu's CHRF, 0-100) of greedy decoding on the held-out split of dataset.py, and with --speed the
time to the first streamed token and the tokens/s of generate at batch 1 and 8.
"""

import argparse
import os
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from serve_apps.plain_language import dataset
from serve_apps.plain_language.model import BACKENDS, Backend, Generation, GenerationRequest, PlainLanguageModel

MAX_NEW_TOKENS = 64  # the longest held-out rewrite is 43 tokens
EVAL_BATCH_SIZE = 32


@dataclass(frozen=True)
class Score:
    """Greedy decoding of one backend on the held-out pairs."""

    backend: Backend
    pairs: int
    exact_match: float
    chrf: float
    unseen_pairs: int  # held-out pairs that put a term in a template training never put it in
    exact_match_unseen: float


@dataclass(frozen=True)
class Speed:
    """Decoding speed of one backend: median time to the first streamed token (batch 1) and generated tokens
    per second of wall time at batch 1 and batch 8."""

    backend: Backend
    ttft_ms: float
    tokens_per_s_batch_1: float
    tokens_per_s_batch_8: float


def held_out() -> list[dataset.Pair]:
    """The held-out split of the generated pairs."""
    return dataset.split(dataset.generate())[1]


def training_combinations() -> set[str]:
    """The template-term combinations of the training split."""
    return {combination for pair in dataset.split(dataset.generate())[0] for combination in pair.combinations}


def rewrite(model: PlainLanguageModel, sources: Sequence[str], batch_size: int = EVAL_BATCH_SIZE) -> list[Generation]:
    """Greedy rewrites of `sources`, `batch_size` at a time."""
    requests = [GenerationRequest(source, max_new_tokens=MAX_NEW_TOKENS) for source in sources]
    return [
        generation
        for start in range(0, len(requests), batch_size)
        for generation in model.generate(requests[start : start + batch_size])
    ]


def score(model: PlainLanguageModel, pairs: Sequence[dataset.Pair]) -> Score:
    """Exact match (share of rewrites equal to the reference) and corpus chrF of greedy rewrites of `pairs`, and
    the exact match of those among them that use a template-term combination training did not."""
    from sacrebleu.metrics import CHRF

    outputs = [generation.text for generation in rewrite(model, [pair.source for pair in pairs])]
    references = [pair.target for pair in pairs]
    hits = [output == reference for output, reference in zip(outputs, references, strict=True)]
    seen = training_combinations()
    unseen = [hit for hit, pair in zip(hits, pairs, strict=True) if set(pair.combinations) - seen]
    return Score(
        backend=model.backend,
        pairs=len(pairs),
        exact_match=sum(hits) / len(pairs),
        chrf=CHRF().corpus_score(outputs, [references]).score,
        unseen_pairs=len(unseen),
        exact_match_unseen=sum(unseen) / len(unseen) if unseen else float("nan"),
    )


def measure_speed(model: PlainLanguageModel, pairs: Sequence[dataset.Pair], requests: int = 32) -> Speed:
    """Time to first token over `requests` streamed rewrites, and tokens/s of greedy generate at batch 1 and 8."""
    sources = [pair.source for pair in pairs[:requests]]
    rewrite(model, sources[:8], batch_size=8)  # warm-up: first runs allocate
    first_token_s = []
    for source in sources:
        started = time.perf_counter()
        next(model.stream(GenerationRequest(source, max_new_tokens=MAX_NEW_TOKENS)))
        first_token_s.append(time.perf_counter() - started)
    rates = []
    for batch_size in (1, 8):
        started = time.perf_counter()
        generated = sum(generation.tokens for generation in rewrite(model, sources, batch_size))
        rates.append(generated / (time.perf_counter() - started))
    return Speed(model.backend, statistics.median(first_token_s) * 1000, rates[0], rates[1])


def evaluate(archive: Path, num_threads: int | None = None) -> list[Score]:
    """The held-out Score of `archive` on each backend."""
    threads = num_threads or os.cpu_count() or 1
    pairs = held_out()
    return [score(PlainLanguageModel.load(archive, backend, threads), pairs) for backend in BACKENDS]


def main(argv: Sequence[str] | None = None) -> None:
    """CLI entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("archive", type=Path, help="a plain-language archive (models/plain_language/plain-t5.tar)")
    parser.add_argument("--speed", action="store_true", help="also measure time to first token and tokens/s")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads per backend (default 1)")
    args = parser.parse_args(argv)
    pairs = held_out()
    for backend in BACKENDS:
        model = PlainLanguageModel.load(args.archive, backend, args.threads)
        result = score(model, pairs)
        line = (
            f"{backend}: exact match {result.exact_match:.1%}, chrF {result.chrf:.1f} ({result.pairs} held-out pairs;"
            f" exact match {result.exact_match_unseen:.1%} on the {result.unseen_pairs} with a new template-term pair)"
        )
        if args.speed:
            speed = measure_speed(model, pairs)
            line += (
                f"; TTFT {speed.ttft_ms:.1f} ms, {speed.tokens_per_s_batch_1:.0f} tokens/s at batch 1, "
                f"{speed.tokens_per_s_batch_8:.0f} at batch 8"
            )
        print(line)


if __name__ == "__main__":
    main()
