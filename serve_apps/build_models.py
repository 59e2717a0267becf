"""Build every model artifact from installed packages: `python -m serve_apps.build_models --out models/`.

Writes `<out>/<app>/<file>` and `<out>/manifest.json`, and prints the artifacts (app, uri, size, sha256), the
zero-shot evaluation (accuracy, cosine agreement with fp32) and the plain-language one (held-out exact match and
chrF per backend). Builds are byte-deterministic: the same package versions give the same sha256, which is what
the deployment spec pins.

A build also writes `<out>/build-inputs.json`, what it was made from: the source of every serve_apps module the
build imported, the version of every distribution it imported from (the data sets and the MiniLM weights ship in
them), the Python and the machine. While those and the built files are unchanged, the build is skipped.
"""

import argparse
import importlib.metadata
import json
import os
import platform
import sys
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from serve_apps.common.artifact import sha256_of
from serve_apps.common.manifest import ManifestEntry, manifest_matches, write_manifest
from serve_apps.doubleit import build as doubleit_build
from serve_apps.iris import build as iris_build
from serve_apps.plain_language import build as plain_language_build
from serve_apps.tabular import build as tabular_build
from serve_apps.zero_shot import build as zero_shot_build

if TYPE_CHECKING:
    from serve_apps.plain_language.evaluate import Score as PlainLanguageScore


@dataclass(frozen=True)
class Artifact:
    """One file to build: its manifest name, where it goes under the output dir, and how it is made."""

    name: str
    relative_path: str
    build: Callable[[Path], None]


ZERO_SHOT_FP32 = "zero_shot/minilm-l6-v2-fp32.onnx"
STAMP_NAME = "build-inputs.json"
REPO_ROOT = Path(__file__).resolve().parents[1]
ZERO_SHOT_INT8 = "zero_shot/minilm-l6-v2-int8.onnx"
PLAIN_LANGUAGE = "plain_language/plain-t5.tar"


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
        Artifact("plain_language", PLAIN_LANGUAGE, plain_language_build.build),
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
    files, distributions = imported_inputs()
    (out / STAMP_NAME).write_text(json.dumps(build_inputs(out, files, distributions), indent=2, sort_keys=True) + "\n")
    return entries


def imported_inputs() -> tuple[list[str], list[str]]:
    """The serve_apps source files (repository-relative) and the distributions of the modules imported so far.

    Called after a build, that is what the build was made from: its builders import their libraries lazily.
    """
    package = REPO_ROOT / "serve_apps"
    loaded = {
        Path(file).resolve() for module in list(sys.modules.values()) if (file := getattr(module, "__file__", None))
    }
    # By path, not by name: run as `python -m`, this module is __main__.
    files = sorted(path.relative_to(REPO_ROOT).as_posix() for path in loaded if path.is_relative_to(package))
    by_package = importlib.metadata.packages_distributions()
    top_level = {name.partition(".")[0] for name in list(sys.modules)}
    distributions = sorted({dist for name in top_level for dist in by_package.get(name, [])})
    return files, distributions


def build_inputs(out: Path, files: Iterable[str], distributions: Iterable[str]) -> dict[str, Any]:
    """What a build into `out` depends on, as now: sha256 of each file, version of each distribution (None when
    gone), the Python, the machine, and `out` as the manifest's URIs name it (relative to the cwd)."""
    versions: dict[str, str | None] = {}
    for name in distributions:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "python": sys.version,
        "machine": platform.machine(),
        "out_uri": file_uri(out),
        "files": {path: sha256_of(REPO_ROOT / path) if (REPO_ROOT / path).is_file() else None for path in files},
        "distributions": versions,
    }


def up_to_date(out: Path) -> bool:
    """Whether `out` holds every artifact its manifest lists and was built from the inputs there are now."""
    stamp = out / STAMP_NAME
    if not stamp.is_file() or not manifest_matches(out):
        return False
    try:
        recorded = json.loads(stamp.read_text())
        return bool(recorded == build_inputs(out, recorded["files"], recorded["distributions"]))
    except (ValueError, KeyError, TypeError):
        return False


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


def evaluate_plain_language(out: Path) -> list["PlainLanguageScore"]:
    """Held-out exact match and chrF of the plain-language model's greedy rewrites, on each backend (exact match
    also on the held-out notes that put a term in a template training never put it in)."""
    from serve_apps.plain_language.evaluate import evaluate

    return evaluate(out / PLAIN_LANGUAGE)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=True)]
    lines = [header, ["-" * width for width in widths], *rows]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)) for line in lines)


def main(argv: Sequence[str] | None = None) -> None:
    """CLI entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("models"), help="output directory (default: models)")
    args = parser.parse_args(argv)
    if up_to_date(args.out):
        print(f"models up to date in {args.out} (inputs unchanged since {args.out / STAMP_NAME}; delete it to rebuild)")
        return
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
    print()
    print(
        _table(
            ["plain-language backend", "held-out exact match", "chrF", "exact match, new template-term pairs"],
            [
                [
                    s.backend,
                    f"{s.exact_match:.1%} of {s.pairs}",
                    f"{s.chrf:.1f}",
                    f"{s.exact_match_unseen:.1%} of {s.unseen_pairs}",
                ]
                for s in evaluate_plain_language(args.out)
            ],
        )
    )


if __name__ == "__main__":
    main()
