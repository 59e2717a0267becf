"""Train the plain-language T5 from scratch on the project's own pairs and write it as one tar archive.

The archive holds a Hugging Face checkpoint (config.json, generation_config.json, model.safetensors,
tokenizer.json, tokenizer_config.json) that `T5ForConditionalGeneration.from_pretrained` and `AutoTokenizer` load
once extracted, and its two ONNX graphs under onnx/ (serve_apps/plain_language/export.py), so that serving needs
neither torch nor transformers.

The bytes are the same on every build: the tokenizer and the model are trained from a fixed seed on the pairs of
dataset.py, in a fixed order, with deterministic kernels, and the archive's entries are sorted and carry no time,
owner or extended header. Training is a long chain of float operations in which one ulp changes every later
weight, so it runs in a child process whose numerics are pinned before torch loads: a fixed thread count, the
AVX2 code paths of ATen and oneDNN whatever the CPU has, and MKL's COMPATIBLE code path (conditional numerical
reproducibility), the one mode Intel documents as giving the same results on Intel and non-Intel processors. A
caller that already loaded torch (the zero-shot export does, in the same build) cannot pin them any more. Dropout
draws its masks from ATen's own generator (dropout_from_aten_generator): ATen's does not on Intel CPUs. AdamW is
the fused one, whose square root does not go through MKL (_train).
"""

import argparse
import io
import json
import os
import string
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from serve_apps.plain_language import dataset, export

if TYPE_CHECKING:
    import random

    import torch
    from tokenizers import Tokenizer
    from transformers import T5Config, T5ForConditionalGeneration

Size = Literal["small", "tiny"]
SEED = 25
TRAIN_THREADS = 2
PAD, EOS, UNK = "<pad>", "</s>", "<unk>"  # ids 0, 1, 2, as T5 has them
NUMERICS_ENV = {
    "OMP_NUM_THREADS": str(TRAIN_THREADS),
    "MKL_NUM_THREADS": str(TRAIN_THREADS),
    "MKL_CBWR": "COMPATIBLE",
    "ATEN_CPU_CAPABILITY": "avx2",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
}


@dataclass(frozen=True)
class Recipe:
    """The tokenizer's and the model's sizes and how long the model trains."""

    vocab_size: int
    d_model: int
    d_ff: int
    num_heads: int
    num_layers: int  # each side
    steps: int
    batch_size: int
    learning_rate: float
    warmup_steps: int


RECIPES: dict[Size, Recipe] = {
    # The served model. Sizes and steps measured on 2 cores against held-out exact match and build time
    # (docs/plain-language-model.md).
    "small": Recipe(
        vocab_size=1024,
        d_model=128,
        d_ff=512,
        num_heads=4,
        num_layers=2,
        steps=2400,
        batch_size=32,
        learning_rate=3e-3,
        warmup_steps=200,
    ),
    # A stand-in for tests of the code around the model: built in seconds, untrained unless given steps.
    "tiny": Recipe(
        vocab_size=256,
        d_model=16,
        d_ff=32,
        num_heads=2,
        num_layers=1,
        steps=0,
        batch_size=16,
        learning_rate=3e-3,
        warmup_steps=10,
    ),
}


def build(out_path: Path, size: Size = "small", steps: int | None = None, launcher: Sequence[str] = ()) -> None:
    """Write the archive of a T5 trained by `RECIPES[size]` (for `steps` steps if given) to `out_path`.

    Runs the training in a child process with NUMERICS_ENV (module docstring), started through `launcher` when given
    (e.g. `qemu-x86_64 -cpu EPYC-Milan-v1`, to train as on another CPU).
    """
    # Imported here too so that build-inputs.json (serve_apps/build_models.py) records the versions the child
    # trains and exports with; the child's own imports are not seen from this process.
    import onnx  # noqa: F401
    import tokenizers  # noqa: F401
    import transformers  # noqa: F401

    package_root = Path(__file__).resolve().parents[2]
    env = {**os.environ, **NUMERICS_ENV}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(package_root), env.get("PYTHONPATH")]))
    command = [*launcher, sys.executable, "-m", "serve_apps.plain_language.build", str(out_path)]
    command += ["--size", size, "--pinned"]
    if steps is not None:
        command += ["--steps", str(steps)]
    subprocess.run(command, env=env, check=True)


def train_tokenizer(texts: Sequence[str], vocab_size: int) -> "Tokenizer":
    """A BPE tokenizer over `texts` with T5's special tokens and conventions.

    Words keep their leading space as '▁' (so decoding a prefix of the tokens gives a prefix of the text),
    punctuation and every digit are tokens of their own (numbers are copied digit by digit, whatever their
    value), the printable ASCII characters are always in the vocabulary, and an encoded text ends with '</s>'.
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    tokenizer = Tokenizer(models.BPE(unk_token=UNK))
    tokenizer.normalizer = normalizers.NFKC()
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True),
            pre_tokenizers.Punctuation(behavior="isolated"),
            pre_tokenizers.Digits(individual_digits=True),
        ]
    )
    tokenizer.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[PAD, EOS, UNK],
        initial_alphabet=[*string.printable.strip(), "▁"],
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer)
    tokenizer.post_processor = processors.TemplateProcessing(single=f"$A {EOS}", special_tokens=[(EOS, 1)])
    return tokenizer


def tokenizer_config() -> dict[str, object]:
    """tokenizer_config.json: what transformers' AutoTokenizer needs beside tokenizer.json."""
    return {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "pad_token": PAD,
        "eos_token": EOS,
        "unk_token": UNK,
        "model_max_length": 512,
    }


def write_archive(files: dict[str, bytes], target: Path) -> None:
    """A tar of `files` (name → bytes) in name order, with no time, owner or extended header."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as archive:
        for name in sorted(files):
            info = tarfile.TarInfo(name)
            info.size = len(files[name])
            info.mode = 0o644
            info.mtime = 0
            archive.addfile(info, io.BytesIO(files[name]))
    target.write_bytes(buffer.getvalue())


def _train_and_write(out_path: Path, recipe: Recipe) -> None:
    """Train the tokenizer and the model, export the graphs and write the archive (in the pinned child)."""
    import random

    import torch
    from transformers import GenerationConfig, T5ForConditionalGeneration
    from transformers.utils import logging as transformers_logging

    transformers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()
    torch.set_num_threads(TRAIN_THREADS)
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(SEED)

    training, _ = dataset.split(dataset.generate())
    tokenizer = train_tokenizer([text for pair in training for text in (pair.source, pair.target)], recipe.vocab_size)
    model = T5ForConditionalGeneration(t5_config(tokenizer.get_vocab_size(), recipe))
    sources = [tokenizer.encode(pair.source).ids for pair in training]
    targets = [tokenizer.encode(pair.target).ids for pair in training]
    with dropout_from_aten_generator():
        _train(model, sources, targets, recipe, random.Random(SEED))  # noqa: S311 (a batch order, not secrets)
    model.eval()
    model.generation_config = GenerationConfig(decoder_start_token_id=0, pad_token_id=0, eos_token_id=1)

    with tempfile.TemporaryDirectory() as scratch:
        checkpoint = Path(scratch)
        model.save_pretrained(checkpoint)
        (checkpoint / "tokenizer.json").write_text(tokenizer.to_str())
        (checkpoint / "tokenizer_config.json").write_text(json.dumps(tokenizer_config(), indent=2) + "\n")
        (checkpoint / "training.json").write_text(json.dumps(asdict(recipe), indent=2, sort_keys=True) + "\n")
        export.export_onnx(checkpoint, checkpoint / "onnx")
        files = {
            path.relative_to(checkpoint).as_posix(): path.read_bytes()
            for path in checkpoint.rglob("*")
            if path.is_file()
        }
    write_archive(files, out_path)


def t5_config(vocab_size: int, recipe: Recipe) -> "T5Config":
    """The model's configuration: `recipe`'s sizes, T5's special ids, dropout 0.1.

    Eager attention: scaled_dot_product_attention draws its dropout inside ATen, where
    dropout_from_aten_generator cannot reach it.
    """
    from transformers import T5Config

    return T5Config(
        vocab_size=vocab_size,
        d_model=recipe.d_model,
        d_kv=recipe.d_model // recipe.num_heads,
        d_ff=recipe.d_ff,
        num_layers=recipe.num_layers,
        num_decoder_layers=recipe.num_layers,
        num_heads=recipe.num_heads,
        dropout_rate=0.1,
        feed_forward_proj="relu",
        pad_token_id=0,
        eos_token_id=1,
        decoder_start_token_id=0,
        attn_implementation="eager",
    )


@contextmanager
def dropout_from_aten_generator() -> Iterator[None]:
    """Within it, torch.nn.functional.dropout (hence nn.Dropout) keeps the units whose uniform draw is at least p.

    ATen's dropout draws its mask with bernoulli_(p), which in an MKL build takes MKL's VSL stream on an Intel CPU and
    ATen's own generator on any other (pytorch/pytorch, aten/src/ATen/native/cpu/DistributionKernels.cpp,
    bernoulli_scalar_kernel): from the same seed an Intel Xeon and an AMD EPYC dropped other units and trained
    different models (07319d4c and 1d9322fb, 85 % and 75 % held-out exact). uniform_ draws from ATen's generator on
    every CPU, one value after another.
    """
    import torch
    import torch.nn.functional as functional

    def dropout(input: torch.Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> torch.Tensor:
        if not training or p == 0:
            return input
        keep = torch.empty_like(input).uniform_() >= p
        scale = 1 / (1 - p) if p < 1 else 0.0
        return input.mul_(keep).mul_(scale) if inplace else input * keep * scale

    original = functional.dropout
    functional.dropout = dropout
    try:
        yield
    finally:
        functional.dropout = original


def adamw(model: "torch.nn.Module", recipe: Recipe) -> "torch.optim.AdamW":
    """The training's optimizer: AdamW, fused.

    Fused: ATen's own kernel, whose square root is the CPU's (correctly rounded). The unfused step takes it with
    torch.sqrt, which in an MKL build is MKL VML's vsSqrt (pytorch/pytorch aten/src/ATen/cpu/vml.h): within an ulp,
    but not the same ulp on every CPU, MKL_CBWR=COMPATIBLE or not. An Intel Xeon with AVX-512 and the same machine
    emulating an AMD EPYC or an Intel Haswell (qemu-user) ran the same first forward and backward pass and parted
    at that square root (docs/plain-language-model.md).
    """
    import torch

    return torch.optim.AdamW(
        model.parameters(), lr=recipe.learning_rate, betas=(0.9, 0.98), weight_decay=0.01, fused=True
    )


def _train(
    model: "T5ForConditionalGeneration",
    sources: list[list[int]],
    targets: list[list[int]],
    recipe: Recipe,
    rng: "random.Random",
) -> None:
    """AdamW with linear warm-up and decay to 0 over `recipe.steps` batches drawn from shuffled epochs."""
    import torch

    if recipe.steps == 0:
        return
    model.train()
    optimizer = adamw(model, recipe)

    def rate(step: int) -> float:
        if step < recipe.warmup_steps:
            return (step + 1) / recipe.warmup_steps
        return max(0.0, (recipe.steps - step) / (recipe.steps - recipe.warmup_steps))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, rate)
    order: list[int] = []
    for _ in range(recipe.steps):
        if len(order) < recipe.batch_size:
            epoch = list(range(len(sources)))
            rng.shuffle(epoch)
            order += epoch
        batch, order = order[: recipe.batch_size], order[recipe.batch_size :]
        input_ids = _padded([sources[i] for i in batch], 0)
        labels = _padded([targets[i] for i in batch], -100)
        loss = model(input_ids=input_ids, attention_mask=(input_ids != 0).long(), labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()


def _padded(rows: list[list[int]], pad: int) -> "torch.Tensor":
    import torch

    width = max(len(row) for row in rows)
    return torch.tensor([row + [pad] * (width - len(row)) for row in rows], dtype=torch.int64)


def main(argv: Sequence[str] | None = None) -> None:
    """CLI entry point: `python -m serve_apps.plain_language.build <out.tar> [--size tiny] [--steps N]`."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="the archive to write")
    parser.add_argument("--size", choices=sorted(RECIPES), default="small", help="the recipe (default: small)")
    parser.add_argument("--steps", type=int, help="training steps instead of the recipe's")
    parser.add_argument("--pinned", action="store_true", help="train here: build() started this process, pinned")
    args = parser.parse_args(argv)
    if not args.pinned:
        build(args.out, args.size, args.steps)
        return
    recipe = RECIPES[args.size]
    if args.steps is not None:
        recipe = Recipe(**{**asdict(recipe), "steps": args.steps})
    _train_and_write(args.out, recipe)


if __name__ == "__main__":
    main()
