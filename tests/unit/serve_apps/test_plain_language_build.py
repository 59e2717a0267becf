"""The plain-language build: byte-deterministic, and a checkpoint archive that transformers loads as it is.

Determinism is tested on the tiny recipe trained for a few steps (seconds); the served recipe is the same code
with other sizes (two builds of it on this machine gave the same sha256: docs/plain-language-model.md), which
test_build_models.py rebuilds on the tiny recipe so that a test run trains it once.
"""

import json
import tarfile
from pathlib import Path

import pytest

from serve_apps.common.artifact import sha256_of
from serve_apps.plain_language.build import build

STEPS = 20


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    archive = tmp_path_factory.mktemp("tiny") / "tiny.tar"
    build(archive, size="tiny", steps=STEPS)
    return archive


def test_two_builds_are_byte_identical(trained: Path, tmp_path: Path) -> None:
    again = tmp_path / "again.tar"
    build(again, size="tiny", steps=STEPS)
    assert sha256_of(again) == sha256_of(trained)


def test_the_callers_cpu_settings_do_not_change_the_bytes(
    trained: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Stand-ins for a build on another CPU or another machine's defaults: other kernels, other thread counts.
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "default")
    monkeypatch.setenv("MKL_CBWR", "AVX2")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    elsewhere = tmp_path / "elsewhere.tar"
    build(elsewhere, size="tiny", steps=STEPS)
    assert sha256_of(elsewhere) == sha256_of(trained)


def test_the_archive_has_sorted_entries_without_time_or_owner(trained: Path) -> None:
    with tarfile.open(trained) as archive:
        members = archive.getmembers()
    names = [member.name for member in members]
    assert names == sorted(names)
    assert set(names) >= {
        "config.json",
        "generation_config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
        "onnx/encoder.onnx",
        "onnx/decoder.onnx",
    }
    assert {(member.mtime, member.uid, member.gid, member.uname, member.gname) for member in members} == {
        (0, 0, 0, "", "")
    }


def test_transformers_loads_the_extracted_checkpoint(trained: Path, tmp_path: Path) -> None:
    from transformers import AutoTokenizer, T5ForConditionalGeneration

    with tarfile.open(trained) as archive:
        archive.extractall(tmp_path, filter="data")
    tokenizer = AutoTokenizer.from_pretrained(tmp_path)
    model = T5ForConditionalGeneration.from_pretrained(tmp_path)
    assert (tokenizer.pad_token_id, tokenizer.eos_token_id, tokenizer.unk_token_id) == (0, 1, 2)
    assert model.config.decoder_start_token_id == tokenizer.pad_token_id
    encoded = tokenizer("Pt c/o SOB x3d, hx of HTN.")
    assert encoded.input_ids[-1] == tokenizer.eos_token_id
    assert tokenizer.decode(encoded.input_ids, skip_special_tokens=True) == "Pt c/o SOB x3d, hx of HTN."
    assert json.loads((tmp_path / "training.json").read_text())["steps"] == STEPS
