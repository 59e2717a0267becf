"""Generation with plain-language archives: the built model's held-out quality on both backends, the ONNX graphs
against transformers, and the decoding's contracts (streaming, batching, limits, errors) on a tiny model."""

import tarfile
from pathlib import Path

import numpy as np
import pytest

from serve_apps.common.batching import ItemErrors
from serve_apps.plain_language.build import build
from serve_apps.plain_language.evaluate import held_out, rewrite, score
from serve_apps.plain_language.model import (
    MAX_INPUT_TOKENS,
    Backend,
    Generation,
    GenerationRequest,
    PlainLanguageModel,
)

NOTE = "Pt c/o SOB x3d, hx of HTN."
PLAIN = "The patient complains of shortness of breath for 3 days, with a history of high blood pressure."


@pytest.fixture(scope="module")
def trained_archive(built_models: dict[str, Path]) -> Path:
    """The served recipe's archive, as `nox -s models` builds it."""
    return built_models["plain_language"]


@pytest.fixture(scope="module", params=["onnx", "transformers"])
def served(request: pytest.FixtureRequest, trained_archive: Path) -> PlainLanguageModel:
    backend: Backend = request.param
    return PlainLanguageModel.load(trained_archive, backend, num_threads=2)


@pytest.fixture(scope="module")
def tiny_archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-init tiny T5: it writes nonsense, the same nonsense on every backend and in every batch."""
    archive = tmp_path_factory.mktemp("tiny") / "tiny.tar"
    build(archive, size="tiny", steps=0)
    return archive


@pytest.fixture(scope="module", params=["onnx", "transformers"])
def tiny(request: pytest.FixtureRequest, tiny_archive: Path) -> PlainLanguageModel:
    backend: Backend = request.param
    return PlainLanguageModel.load(tiny_archive, backend)


def streamed(model: PlainLanguageModel, request: GenerationRequest) -> tuple[list[str], Generation]:
    pieces = []
    stream = model.stream(request)
    while True:
        try:
            pieces.append(next(stream))
        except StopIteration as done:
            return pieces, done.value


def test_the_built_model_rewrites_the_issues_example(served: PlainLanguageModel) -> None:
    (generation,) = served.generate([GenerationRequest(NOTE)])
    assert generation == Generation(PLAIN, generation.tokens, "eos")


def test_the_built_model_scores_high_on_held_out_pairs(served: PlainLanguageModel) -> None:
    # The build prints these figures; docs/plain-language-model.md records them. The floors catch a regression.
    result = score(served, held_out())
    assert result.exact_match >= 0.78
    assert result.chrf >= 94
    assert result.exact_match_unseen >= 0.65


def test_both_backends_write_the_same_held_out_rewrites(trained_archive: Path) -> None:
    sources = [pair.source for pair in held_out()[:200]]
    onnx, torch = (PlainLanguageModel.load(trained_archive, b, 2) for b in ("onnx", "transformers"))
    assert rewrite(onnx, sources) == rewrite(torch, sources)


def test_onnx_greedy_is_transformers_generate(trained_archive: Path, tmp_path: Path) -> None:
    from transformers import AutoTokenizer, T5ForConditionalGeneration

    with tarfile.open(trained_archive) as archive:
        archive.extractall(tmp_path, filter="data")
    tokenizer = AutoTokenizer.from_pretrained(tmp_path)
    reference = T5ForConditionalGeneration.from_pretrained(tmp_path).eval()
    sources = [pair.source for pair in held_out()[:16]]
    inputs = tokenizer(sources, return_tensors="pt", padding=True)
    output = reference.generate(**inputs, do_sample=False, num_beams=1, max_new_tokens=64)
    expected = tokenizer.batch_decode(output, skip_special_tokens=True)
    onnx = PlainLanguageModel.load(trained_archive, "onnx")
    assert [generation.text for generation in rewrite(onnx, sources)] == expected


def test_beam_search_rewrites_as_well_as_greedy(served: PlainLanguageModel) -> None:
    pairs = held_out()[:32]
    beams = served.generate([GenerationRequest(pair.source, num_beams=4) for pair in pairs])
    greedy = rewrite(served, [pair.source for pair in pairs])
    hits = sum(generation.text == pair.target for generation, pair in zip(beams, pairs, strict=True))
    assert hits >= sum(generation.text == pair.target for generation, pair in zip(greedy, pairs, strict=True)) - 1


def test_max_new_tokens_cuts_the_text_with_reason_length(served: PlainLanguageModel) -> None:
    (cut,) = served.generate([GenerationRequest(NOTE, max_new_tokens=3)])
    assert (cut.tokens, cut.finish_reason) == (3, "length")
    assert PLAIN.startswith(cut.text)


def test_the_built_models_stream_adds_up_to_its_text(served: PlainLanguageModel) -> None:
    pieces, generation = streamed(served, GenerationRequest(NOTE))
    assert "".join(pieces) == PLAIN == generation.text
    assert len(pieces) == generation.tokens - 1  # one piece per token, the end-of-sequence one excepted


def test_both_backends_give_the_tiny_model_the_same_logits(tiny_archive: Path) -> None:
    onnx = PlainLanguageModel.load(tiny_archive, "onnx")._runner
    torch = PlainLanguageModel.load(tiny_archive, "transformers")._runner
    input_ids = np.array([[5, 6, 7, 1], [8, 1, 0, 0]], dtype=np.int64)
    mask = (input_ids != 0).astype(np.int64)
    states = onnx.encode(input_ids, mask), torch.encode(input_ids, mask)
    for tokens in ([0, 0], [9, 10], [11, 12], [13, 14]):
        logits = [runner.step(state, np.array(tokens)) for runner, state in zip((onnx, torch), states, strict=True)]
        np.testing.assert_allclose(logits[0], logits[1], atol=1e-4)


def test_a_checkpoint_without_graphs_is_exported_when_it_loads(tiny_archive: Path, tmp_path: Path) -> None:
    # T5 v1.1 and flan-t5 differ from the built model: gated-gelu feed-forward, untied output layer.
    from transformers import T5Config, T5ForConditionalGeneration

    checkpoint = tmp_path / "checkpoint"
    with tarfile.open(tiny_archive) as archive:
        archive.extractall(checkpoint, filter="data", members=[m for m in archive if m.name.startswith("tokenizer")])
    config = T5Config(
        vocab_size=256, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_decoder_layers=1, num_heads=4,
        feed_forward_proj="gated-gelu", tie_word_embeddings=False, decoder_start_token_id=0,
    )  # fmt: skip
    T5ForConditionalGeneration(config).save_pretrained(checkpoint)
    archive_path = tmp_path / "v1_1.tar"
    with tarfile.open(archive_path, "w") as archive:
        for path in checkpoint.iterdir():
            archive.add(path, arcname=path.name)
    requests = [GenerationRequest(NOTE, max_new_tokens=12), GenerationRequest("Denies CP.", max_new_tokens=12)]
    onnx = PlainLanguageModel.load(archive_path, "onnx").generate(requests)
    assert onnx == PlainLanguageModel.load(archive_path, "transformers").generate(requests)


@pytest.mark.parametrize(
    "request_",
    [
        GenerationRequest(NOTE, max_new_tokens=20),
        GenerationRequest(NOTE, max_new_tokens=20, temperature=1.0, seed=7),
        GenerationRequest("Denies CP or N/V. Ünïcødé ✓ text", max_new_tokens=30, temperature=0.7, seed=1),
    ],
    ids=["greedy", "sampling", "characters outside the vocabulary"],
)
def test_stream_pieces_add_up_to_generate(tiny: PlainLanguageModel, request_: GenerationRequest) -> None:
    pieces, generation = streamed(tiny, request_)
    assert "".join(pieces) == generation.text
    assert [generation] == tiny.generate([request_])


def test_a_batch_gives_what_each_request_gives_alone(tiny: PlainLanguageModel) -> None:
    batch = [
        GenerationRequest(NOTE, max_new_tokens=9),
        GenerationRequest("Denies CP.", max_new_tokens=4, num_beams=3),
        GenerationRequest("VS: BP 150/95, HR 102, T 38.2.", max_new_tokens=14, temperature=0.9, seed=3),
        GenerationRequest("F/u w/ cards in 2 wks.", max_new_tokens=6, num_beams=2),
    ]
    assert tiny.generate(batch) == [tiny.generate([request])[0] for request in batch]


def test_sampling_depends_on_the_seed_only(tiny: PlainLanguageModel) -> None:
    def sample(seed: int) -> str:
        return tiny.generate([GenerationRequest(NOTE, max_new_tokens=20, temperature=1.0, seed=seed)])[0].text

    assert sample(1) == sample(1)
    assert sample(1) != sample(2)


def test_max_new_tokens_bounds_every_decoding(tiny: PlainLanguageModel) -> None:
    batch = [
        GenerationRequest(NOTE, max_new_tokens=5),
        GenerationRequest(NOTE, max_new_tokens=5, num_beams=4),
        GenerationRequest(NOTE, max_new_tokens=5, temperature=1.0),
    ]
    for generation in tiny.generate(batch):
        assert generation.tokens <= 5
        assert generation.finish_reason == ("length" if generation.tokens == 5 else "eos")


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"text": "  "}, r"text: got '  '; must be a non-blank string"),
        ({"max_new_tokens": 0}, r"max_new_tokens: got 0; must be an integer from 1 to 512"),
        ({"max_new_tokens": 513}, r"max_new_tokens: got 513; must be an integer from 1 to 512"),
        ({"num_beams": 5}, r"num_beams: got 5; must be an integer from 1 to 4"),
        ({"temperature": -0.1}, r"temperature: got -0.1; must be between 0 \(greedy\) and 5.0"),
        ({"temperature": float("nan")}, r"temperature: got nan; must be between 0"),
        ({"temperature": 0.8, "num_beams": 2}, r"sampling and beam search do not combine"),
        ({"seed": -1}, r"seed: got -1; must be an integer from 0"),
    ],
)
def test_a_bad_setting_is_refused_naming_it(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        GenerationRequest(**{"text": NOTE, **fields})  # type: ignore[arg-type]


def test_stream_refuses_beam_search(tiny: PlainLanguageModel) -> None:
    with pytest.raises(ValueError, match=r"num_beams: got 2; beam search cannot stream"):
        next(tiny.stream(GenerationRequest(NOTE, num_beams=2)))


def test_a_text_too_long_is_refused_alone(tiny: PlainLanguageModel) -> None:
    long_text = "SOB " * MAX_INPUT_TOKENS
    with pytest.raises(ItemErrors) as refused:
        tiny.generate([GenerationRequest(NOTE), GenerationRequest(long_text)])
    assert list(refused.value.errors) == [1]
    assert isinstance(refused.value.errors[1], ValueError)
    assert "must be at most 512" in str(refused.value.errors[1])
    with pytest.raises(ValueError, match=r"text: got \d+ tokens; must be at most 512"):
        next(tiny.stream(GenerationRequest(long_text)))


def test_a_file_that_is_not_an_archive_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "model.tar"
    path.write_bytes(b"not a tar archive")
    with pytest.raises(ValueError, match=r"cannot read it as a tar archive of a T5 checkpoint"):
        PlainLanguageModel.load(path)


def test_an_unknown_backend_is_refused(tiny_archive: Path) -> None:
    with pytest.raises(ValueError, match=r"backend: got 'tensorrt'; must be one of \('onnx', 'transformers'\)"):
        PlainLanguageModel.load(tiny_archive, "tensorrt")  # type: ignore[arg-type]
