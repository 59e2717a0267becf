"""Command line: `python -m render {render,schema,diff,promote,set-image,cost}`. User mistakes exit 1 with messages,
never a traceback."""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path

from render.errors import ServingError, SpecError, StaleRenderError
from render.pipeline import Rendered, render_repo
from render.review.cost import DEFAULT_MAX_PRICE_AGE_DAYS, PRICES_FILE, cost_markdown, env_cost, load_price_book
from render.review.diff import compare, diff_markdown
from render.review.promotion import check_promotion, promote
from render.review.resources import applied_manifests
from render.review.set_image import set_image
from render.review.snapshot import GitError, snapshot
from render.spec.load import load_specs
from render.spec.schema import SCHEMA_FILE, spec_json_schema
from render.validate.crd import crd_dir_from_env
from render.write import stale_files, write_tree

# What a spec error stops in every environment, beyond what the spec loader says it could not check.
AFTER_THE_SPEC = (
    "every environment: rendering, the validation of the rendered manifests against their schemas, and the"
    " promotion guard (deployments/promotion.yaml)"
)


def _guarded_render(root: Path, crd_dir: Path | None) -> Rendered:
    """Render every environment, then hold the specs against deployments/promotion.yaml (raises SpecError)."""
    try:
        rendered = render_repo(root, crd_dir)
    except SpecError as error:
        raise SpecError(error.problems, [*error.not_run, AFTER_THE_SPEC]) from None
    note = check_promotion(root, load_specs(root))
    if note:
        rendered.notes.append(note)
    return rendered


def _render(args: argparse.Namespace) -> None:
    root = Path(args.root).resolve()
    out = root / args.out
    crd_dir = crd_dir_from_env(args.crd_dir)
    rendered = _guarded_render(root, crd_dir)
    for stage, seconds in rendered.seconds_by_stage.items():
        print(f"  {stage:<10} {seconds * 1000:8.1f} ms")
    for note in rendered.notes:
        print(f"note: {note}")
    for line in rendered.parity:
        print(line)
    if crd_dir is not None:
        print(f"validated against the CRDs in {crd_dir}")
    stale = stale_files(rendered.files, out)
    if args.check:
        if stale:
            raise StaleRenderError(
                f"{args.out}/ is out of date; run `nox -s render` and commit:\n"
                + "\n".join(f"  {args.out}/{path}" for path in stale)
            )
        print(f"{args.out}/ is up to date ({len(rendered.files)} files)")
        return
    if stale:
        write_tree(rendered.files, out)
    print(f"wrote {args.out}/: {len(rendered.files)} files, {len(stale)} changed")


def _schema(args: argparse.Namespace) -> None:
    path = Path(args.root).resolve() / SCHEMA_FILE
    text = json.dumps(spec_json_schema(), indent=2, sort_keys=True) + "\n"
    current = path.read_text(encoding="utf-8") if path.exists() else None
    if args.check:
        if current != text:
            raise StaleRenderError(f"{SCHEMA_FILE} is out of date; run `nox -s schema` and commit it")
        print(f"{SCHEMA_FILE} is up to date")
        return
    if current != text:
        path.write_text(text, encoding="utf-8")
    print(f"wrote {SCHEMA_FILE}")


def _diff_report(root: Path, ref: str, crd_dir: Path | None) -> str:
    rendered = _guarded_render(root, crd_dir)
    old = snapshot(root, ref)
    book = load_price_book(root) if (root / PRICES_FILE).is_file() else None
    return diff_markdown(old, compare(old.files, rendered.files, book))


def _diff(args: argparse.Namespace) -> None:
    print(_diff_report(Path(args.root).resolve(), args.ref, crd_dir_from_env(args.crd_dir)), end="")


def _promote(args: argparse.Namespace) -> None:
    root = Path(args.root).resolve()
    promotions = promote(root, args.source, args.target)
    followers = [p.env for p in promotions[1:]]
    if followers:
        print(
            f"promoting {args.source} into {args.target} and into {', '.join(followers)}, which follow it"
            " (deployments/promotion.yaml)",
            file=sys.stderr,
        )
    for promotion in promotions:
        where = promotion.file if promotion.rewrites else f"{promotion.env}, through the environment it extends"
        for change in promotion.changes:
            print(f"{where}: {change}", file=sys.stderr)
    # A note that holds for several environments (dev's image has no digest) is printed once, naming them all.
    noted: dict[str, list[str]] = {}
    for promotion in promotions:
        for note in promotion.notes:
            noted.setdefault(note, []).append(promotion.env)
    for note, envs in noted.items():
        print(f"not promoted into {', '.join(envs)}: {note}", file=sys.stderr)
    for promotion in promotions:
        if not promotion.changes:
            print(f"{promotion.env} already runs what {args.source} runs: nothing to promote", file=sys.stderr)
    crd_dir = crd_dir_from_env(args.crd_dir)
    rendered = _guarded_render(root, crd_dir)
    out = root / "rendered"
    stale = stale_files(rendered.files, out)
    if stale:
        write_tree(rendered.files, out)
    print(f"wrote rendered/: {len(rendered.files)} files, {len(stale)} changed", file=sys.stderr)
    try:
        old = snapshot(root, "HEAD")
    except GitError as error:
        # The promotion is written either way; only the report is missing.
        print(f"note: no diff against HEAD: {error}", file=sys.stderr)
        return
    book = load_price_book(root) if (root / PRICES_FILE).is_file() else None
    print(diff_markdown(old, compare(old.files, rendered.files, book)), end="")


def _set_image(args: argparse.Namespace) -> None:
    root = Path(args.root).resolve()
    change = set_image(root, args.env, args.reference)
    if change.old == change.new:
        print(f"{change.file}: env.image is already {change.new!r}: nothing to set")
    else:
        print(f"{change.file}: env.image: {change.old!r} → {change.new!r}")
    rendered = _guarded_render(root, crd_dir_from_env(args.crd_dir))
    out = root / "rendered"
    stale = stale_files(rendered.files, out)
    if stale:
        write_tree(rendered.files, out)
    for path in stale:
        print(f"  rendered/{path}")
    print(f"wrote rendered/: {len(rendered.files)} files, {len(stale)} changed")


def _cost(args: argparse.Namespace) -> None:
    root = Path(args.root).resolve()
    pricing = load_price_book(root, [args.env]).pricing(args.env)
    rendered = render_repo(root, None, [args.env])
    cost = env_cost(args.env, applied_manifests(rendered.files, args.env), pricing)
    print(cost_markdown(cost, pricing, datetime.date.today(), args.max_price_age_days), end="")


def _days(text: str) -> int:
    """A `--max-price-age-days` value: a whole number of days, at least 1; argparse reports anything else."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"got {text!r}; a whole number of days, at least 1, e.g. 180")
    return int(text)


def parser() -> argparse.ArgumentParser:
    """The argument parser of `python -m render`."""
    top = argparse.ArgumentParser(prog="python -m render", description=__doc__)
    top.add_argument("--root", default=".", help="repository root (default: current directory)")
    commands = top.add_subparsers(dest="command", required=True)
    render = commands.add_parser("render", help="render deployments/ into rendered/")
    render.add_argument("--check", action="store_true", help="write nothing; exit 1 listing stale files")
    render.add_argument("--out", default="rendered", help="output directory relative to the root")
    render.add_argument(
        "--crd-dir", help="directory of CRDs to validate against (default: $SERVING_CRD_DIR, ../shared/crds)"
    )
    render.set_defaults(run=_render)
    schema = commands.add_parser("schema", help="export the spec's JSON Schema to deployments/schema.json")
    schema.add_argument("--check", action="store_true", help="write nothing; exit 1 when the file is stale")
    schema.set_defaults(run=_schema)
    crd_help = "directory of CRDs to validate the new side against (default: $SERVING_CRD_DIR, ../shared/crds)"
    diff = commands.add_parser("diff", help="Markdown report of what changes in rendered/ since a git ref, with impact")
    diff.add_argument("ref", help="git ref to compare with, e.g. origin/main")
    diff.add_argument("--crd-dir", help=crd_help)
    diff.set_defaults(run=_diff)
    promotion = commands.add_parser(
        "promote", help="copy models, args and image digest from one environment into the next; render; show the diff"
    )
    promotion.add_argument("source", help="environment to promote from, e.g. dev")
    promotion.add_argument("target", help="the environment after it, e.g. staging")
    promotion.add_argument("--crd-dir", help=crd_help)
    promotion.set_defaults(run=_promote)
    setting = commands.add_parser(
        "set-image", help="write a pushed image's digest reference into an environment's spec; render"
    )
    setting.add_argument("env", help="environment to run the image, e.g. dev")
    setting.add_argument("reference", help="digest reference, <repository>@sha256:<64 hex digits>")
    setting.add_argument("--crd-dir", help=crd_help)
    setting.set_defaults(run=_set_image)
    cost = commands.add_parser(
        "cost", help="monthly cost of an environment at min and max scale (clusters/prices.yaml)"
    )
    cost.add_argument("env", help="environment name, e.g. prod")
    cost.add_argument(
        "--max-price-age-days",
        type=_days,
        default=DEFAULT_MAX_PRICE_AGE_DAYS,
        metavar="DAYS",
        help=f"warn about prices whose as_of is older than this (default: {DEFAULT_MAX_PRICE_AGE_DAYS})",
    )
    cost.set_defaults(run=_cost)
    return top


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return the process exit code."""
    args = parser().parse_args(argv)
    try:
        args.run(args)
    except SpecError as error:
        for problem in error.problems:
            print(problem, file=sys.stderr)
        if error.not_run:
            print("fix these first; these checks did not run:", file=sys.stderr)
            for check in error.not_run:
                print(f"  {check}", file=sys.stderr)
        print(f"{len(error.problems)} problem(s) in the spec; nothing was written.", file=sys.stderr)
        return 1
    except ServingError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0
