"""Command line: `python -m render {render,schema}`. User mistakes exit 1 with messages, never a traceback."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from render.errors import ServingError, SpecError, StaleRenderError
from render.pipeline import render_repo
from render.spec.schema import SCHEMA_FILE, spec_json_schema
from render.validate.crd import crd_dir_from_env
from render.write import stale_files, write_tree


def _render(args: argparse.Namespace) -> None:
    root = Path(args.root).resolve()
    out = root / args.out
    crd_dir = crd_dir_from_env(args.crd_dir)
    rendered = render_repo(root, crd_dir)
    for stage, seconds in rendered.seconds_by_stage.items():
        print(f"  {stage:<10} {seconds * 1000:8.1f} ms")
    for note in rendered.notes:
        print(f"note: {note}")
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
    return top


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return the process exit code."""
    args = parser().parse_args(argv)
    try:
        args.run(args)
    except SpecError as error:
        for problem in error.problems:
            print(problem, file=sys.stderr)
        print(f"{len(error.problems)} problem(s) in the spec; nothing was written.", file=sys.stderr)
        return 1
    except ServingError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0
