"""The plain-language build: byte-deterministic, and a checkpoint archive that transformers loads as it is.

Determinism is tested on the tiny recipe trained for a few steps (seconds), here and under qemu-user emulating a
CPU of the other vendor (about 2 minutes: the dev spec pins the served archive's sha256, so a build on any CPU
must give it); the served recipe is the same code with other sizes (two builds of it on this machine gave the same
sha256: docs/plain-language-model.md), which test_build_models.py rebuilds on the tiny recipe so that a test run
trains it once.
"""

import json
import platform
import shutil
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

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


def test_a_build_on_another_vendors_cpu_gives_the_same_bytes(trained: Path, tmp_path: Path) -> None:
    """The same recipe trained under qemu-user, emulating a CPU of the other vendor with AVX2 and no AVX-512."""
    qemu = shutil.which("qemu-x86_64")
    if platform.machine() != "x86_64" or qemu is None:
        pytest.skip("needs qemu-user on an x86_64 machine (apt-get install qemu-user): other CPUs not checked")
    vendor = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("vendor_id"))
    other_cpu = "EPYC-Milan-v1" if "GenuineIntel" in vendor else "Haswell-noTSX"
    emulated = tmp_path / "emulated.tar"
    build(emulated, size="tiny", steps=STEPS, launcher=(qemu, "-cpu", other_cpu))
    assert sha256_of(emulated) == sha256_of(trained)


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


def _op_recorder() -> Any:
    """A TorchDispatchMode that records the name of every ATen op run within it, in `ops`."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Recorded(TorchDispatchMode):
        def __init__(self) -> None:
            super().__init__()
            self.ops: set[str] = set()

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
            self.ops.add(str(func.overloadpacket))
            return func(*args, **(kwargs or {}))

    return Recorded()


def _ops_of_a_training_step(vendor_free: bool) -> set[str]:
    """The ATen ops one forward and backward pass of the tiny T5 runs in training mode."""
    import contextlib

    import torch
    from transformers import T5ForConditionalGeneration

    from serve_apps.plain_language.build import RECIPES, dropout_from_aten_generator, t5_config

    model = T5ForConditionalGeneration(t5_config(64, RECIPES["tiny"]))
    model.train()
    ids = torch.tensor([[5, 6, 7, 1], [8, 9, 1, 0]])
    recorded = _op_recorder()
    with dropout_from_aten_generator() if vendor_free else contextlib.nullcontext(), recorded:
        model(input_ids=ids, attention_mask=(ids != 0).long(), labels=ids).loss.backward()
    return recorded.ops


def test_training_draws_no_bernoulli_whose_generator_depends_on_the_cpu_vendor() -> None:
    # The same step without it draws ATen's dropout masks: the check sees them.
    assert {"aten.native_dropout", "aten.bernoulli_"} & _ops_of_a_training_step(vendor_free=False)
    ops = _ops_of_a_training_step(vendor_free=True)
    assert not {op for op in ops if "bernoulli" in op or "dropout" in op}
    assert "aten.uniform_" in ops


# The ATen ops that an MKL build of torch computes with MKL VML (pytorch/pytorch aten/src/ATen/cpu/vml.h,
# IMPLEMENT_VML_MKL), whose last bit differs between CPUs (docs/plain-language-model.md).
MKL_VML_OPS = {"aten.sqrt", "aten._foreach_sqrt", "aten.exp", "aten._foreach_exp", "aten.log", "aten.tanh", "aten.erf"}


def _ops_of_an_optimizer_step(make_optimizer: Callable[[Any, Any], Any]) -> set[str]:
    """The ATen ops two steps of `make_optimizer(model, recipe)`'s optimizer on the tiny T5 run (the second with the
    moments the first left)."""
    import torch
    from transformers import T5ForConditionalGeneration

    from serve_apps.plain_language.build import RECIPES, t5_config

    model = T5ForConditionalGeneration(t5_config(64, RECIPES["tiny"]))
    optimizer = make_optimizer(model, RECIPES["tiny"])
    ids = torch.tensor([[5, 6, 7, 1], [8, 9, 1, 0]])
    recorded = _op_recorder()
    for _ in range(2):
        model(input_ids=ids, attention_mask=(ids != 0).long(), labels=ids).loss.backward()
        with recorded:
            optimizer.step()
        optimizer.zero_grad()
    return recorded.ops


def test_the_optimizer_takes_no_square_root_from_mkl() -> None:
    import torch

    from serve_apps.plain_language.build import adamw

    def unfused(model: torch.nn.Module, recipe: object) -> torch.optim.AdamW:
        return torch.optim.AdamW(model.parameters(), lr=1e-3, foreach=False)

    # torch's default AdamW step takes MKL's square root: the check sees it.
    assert "aten.sqrt" in _ops_of_an_optimizer_step(unfused)
    ops = _ops_of_an_optimizer_step(adamw)
    assert "aten._fused_adamw_" in ops
    assert not ops & MKL_VML_OPS


def test_dropout_keeps_the_units_whose_uniform_draw_reaches_p() -> None:
    import torch

    from serve_apps.plain_language.build import dropout_from_aten_generator

    values = torch.arange(1.0, 10_001.0)
    torch.manual_seed(3)
    expected_keep = torch.empty_like(values).uniform_() >= 0.25
    torch.manual_seed(3)
    with dropout_from_aten_generator():
        dropped = torch.nn.functional.dropout(values, p=0.25, training=True)
        assert torch.equal(torch.nn.functional.dropout(values, p=0.25, training=False), values)
    assert torch.equal(dropped, torch.where(expected_keep, values * (1 / 0.75), torch.zeros_like(values)))
    assert 0.7 < expected_keep.float().mean().item() < 0.8
    assert torch.nn.functional.dropout.__module__ == "torch.nn.functional"  # put back on leaving
