"""Build every model artifact from installed packages: `python -m serve_apps.build_models --out models/`.

Writes `<out>/<app>/<file>` and `<out>/manifest.json`, and prints the artifacts (app, uri, size, sha256) and
the zero-shot evaluation (accuracy, cosine agreement with fp32). Builds are byte-deterministic: the same
package versions give the same sha256, which is what the deployment spec pins.
"""

import argparse
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from serve_apps.common.artifact import sha256_of
from serve_apps.common.manifest import ManifestEntry, write_manifest
from serve_apps.doubleit import build as doubleit_build
from serve_apps.iris import build as iris_build
from serve_apps.tabular import build as tabular_build
from serve_apps.zero_shot import build as zero_shot_build


@dataclass(frozen=True)
class Artifact:
    """One file to build: its manifest name, where it goes under the output dir, and how it is made."""

    name: str
    relative_path: str
    build: Callable[[Path], None]


ZERO_SHOT_FP32 = "zero_shot/minilm-l6-v2-fp32.onnx"
ZERO_SHOT_INT8 = "zero_shot/minilm-l6-v2-int8.onnx"


def artifacts(out: Path) -> list[Artifact]:
    """What the build writes, in build order (the int8 encoder is quantized from the fp32 one)."""
    return [
        # The served zero-shot artifact is the int8 one; fp32 is the reference it is measured against.
        Artifact("zero_shot_fp32", ZERO_SHOT_FP32, zero_shot_build.export_fp32),
        Artifact(
            "zero_shot", ZERO_SHOT_INT8, partial(zero_shot_build.quantize_int8, out / ZERO_SHOT_FP32, per_channel=True)
        ),
        Artifact("iris", "iris/iris-logreg.onnx", iris_build.build),
        Artifact("tabular", "tabular/breast-cancer-xgb.joblib", tabular_build.build),
        Artifact("doubleit", "doubleit/doubleit.pt", doubleit_build.build),
    ]


def file_uri(path: Path) -> str:
    """file://<path relative to the cwd> when the file is under the cwd, else file://<absolute path>."""
    absolute = path.resolve()
    try:
        return f"file://{absolute.relative_to(Path.cwd().resolve()).as_posix()}"
    except ValueError:
        return f"file://{absolute.as_posix()}"


def build_all(out: Path) -> dict[str, ManifestEntry]:
    """Build every artifact into `out` and write its manifest; returns the manifest entries."""
    entries = {}
    for artifact in artifacts(out):
        target = out / artifact.relative_path
        target.parent.mkdir(parents=True, exist_ok=True)
        artifact.build(target)
        entries[artifact.name] = ManifestEntry(
            path=artifact.relative_path,
            uri=file_uri(target),
            sha256=sha256_of(target),
            size_bytes=target.stat().st_size,
        )
    write_manifest(out, entries)
    return entries


@dataclass(frozen=True)
class EncoderScore:
    """Evaluation of one zero-shot encoder variant."""

    variant: str
    accuracy: float
    cosine_vs_fp32: float


def evaluate_zero_shot(out: Path) -> list[EncoderScore]:
    """Accuracy on the evaluation set and mean cosine vs fp32 for fp32, int8 per-channel and int8 per-tensor.

    Per-tensor int8 is built in a scratch dir for the record only: it is not an artifact.
    """
    from serve_apps.zero_shot.app import ZeroShotArgs
    from serve_apps.zero_shot.evaluate import accuracy, load_eval_set, mean_cosine
    from serve_apps.zero_shot.model import Scoring, ZeroShotModel

    defaults = ZeroShotArgs.model_fields
    template = defaults["hypothesis_template"].get_default()
    scoring = Scoring(
        temperature=defaults["temperature"].get_default(),
        multi_label_threshold=defaults["multi_label_threshold"].get_default(),
    )
    eval_set = load_eval_set()
    threads = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as scratch:
        per_tensor = Path(scratch) / "minilm-l6-v2-int8-per-tensor.onnx"
        zero_shot_build.quantize_int8(out / ZERO_SHOT_FP32, per_tensor, per_channel=False)
        variants = {
            "fp32": out / ZERO_SHOT_FP32,
            "int8 per-channel (served)": out / ZERO_SHOT_INT8,
            "int8 per-tensor (not shipped)": per_tensor,
        }
        models = {name: ZeroShotModel(path, scoring, num_threads=threads) for name, path in variants.items()}
        reference = models["fp32"]
        return [
            EncoderScore(name, accuracy(model, eval_set, template), mean_cosine(model, reference, eval_set))
            for name, model in models.items()
        ]


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=True)]
    lines = [header, ["-" * width for width in widths], *rows]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)) for line in lines)


def main(argv: Sequence[str] | None = None) -> None:
    """CLI entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("models"), help="output directory (default: models)")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    entries = build_all(args.out)
    print(
        _table(
            ["app", "uri", "size", "sha256"],
            [[name, e.uri, f"{e.size_bytes:,} B", e.sha256] for name, e in entries.items()],
        )
    )
    scores = evaluate_zero_shot(args.out)
    print()
    print(
        _table(
            ["zero-shot encoder", "accuracy", "mean cosine vs fp32"],
            [[s.variant, f"{s.accuracy:.1%}", f"{s.cosine_vs_fp32:.4f}"] for s in scores],
        )
    )


if __name__ == "__main__":
    main()
