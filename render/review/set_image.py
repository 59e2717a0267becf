"""Giving an environment a pushed image: `python -m render set-image dev <repository>@sha256:<digest>`, the step
between `nox -s image -- --push` (which runs it with `--set-image dev`) and `nox -s promote -- dev staging`.

Only a digest reference is taken: what an environment runs is then the bytes that were pushed, and promote can
carry the digest on. It is written where the environment states its image, the last of its own files that
states `env.image` (later files override earlier ones), else its env.yaml, where it overrides the image the
environment inherits. The file keeps its comments and layout (a ruamel round trip, as promote edits). Every
environment is loaded and held against deployments/promotion.yaml with the new file before it is written, so an
environment that extends this one is checked too, and nothing is written on error.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from render.errors import Problem, SpecError
from render.review.promotion import (
    OVERLAY_FILE,
    History,
    dump_round_trip,
    load_policy,
    promotion_problems,
    round_trip_yaml,
)
from render.spec.load import DEPLOYMENTS_DIR, known_envs, load_specs, read_yaml

# The grammar of distribution's reference package (reference/regexp.go), digest part required and sha256 only.
_DOMAIN_PART = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_DOMAIN = rf"{_DOMAIN_PART}(?:\.{_DOMAIN_PART})*(?::[0-9]+)?"
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
DIGEST_REFERENCE = re.compile(
    rf"^(?:{_DOMAIN}/)?{_COMPONENT}(?:/{_COMPONENT})*(?::[A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}})?@sha256:[0-9a-f]{{64}}$"
)


@dataclass(frozen=True)
class ImageChange:
    """What `set_image` did: the file it edited (relative to the root), the image before and after."""

    file: str
    old: str
    new: str


def image_file(root: Path, env: str) -> Path:
    """The file of `env` that states its image: the last of its own that does, else its env.yaml."""
    directory = root / DEPLOYMENTS_DIR / env
    files = sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")])
    stating = [
        file
        for file in files
        if isinstance(section := read_yaml(file, str(file.relative_to(root))).get("env"), dict) and "image" in section
    ]
    return stating[-1] if stating else directory / OVERLAY_FILE


def set_image(root: Path, env: str, reference: str) -> ImageChange:
    """Write `reference` as `env`'s env.image and return the change; SpecError naming the file and key path when
    the reference is not a digest reference, `env` is unknown, or the specs with it do not load or break the
    promotion policy. The spec is unchanged on error, and when `env` already runs `reference`."""
    known = known_envs(root)
    file = image_file(root, env) if env in known else root / DEPLOYMENTS_DIR / env / OVERLAY_FILE
    display = str(file.relative_to(root))
    problems = []
    if env not in known:
        problems.append(
            Problem(DEPLOYMENTS_DIR, "", repr(env), "no such environment", f"known environments: {', '.join(known)}")
        )
    if not DIGEST_REFERENCE.match(reference):
        problems.append(
            Problem(
                display,
                "env.image",
                repr(reference),
                "set-image takes a digest reference, <repository>[:<tag>]@sha256:<64 lowercase hex digits>",
                "pass the reference `nox -s image -- --push <registry>` prints after `pushed:`",
            )
        )
    if problems:
        raise SpecError(problems)
    old = load_specs(root, [env])[env].env.image
    if old == reference:
        return ImageChange(display, old, reference)
    handler = round_trip_yaml()
    original = file.read_text(encoding="utf-8") if file.exists() else ""
    document = handler.load(original) if original.strip() else handler.map()
    if "env" not in document:
        document["env"] = handler.map()
    document["env"]["image"] = reference
    text = dump_round_trip(handler, document)
    with tempfile.TemporaryDirectory(prefix="render-set-image-") as directory:
        scratch = Path(directory)
        shutil.copytree(root / DEPLOYMENTS_DIR, scratch / DEPLOYMENTS_DIR)
        shutil.copytree(root / "clusters", scratch / "clusters")
        (scratch / display).write_text(text, encoding="utf-8")
        specs = load_specs(scratch)
        policy = load_policy(scratch)
        if policy is not None and (problems := promotion_problems(scratch, specs, policy, History(root))):
            raise SpecError(problems)
    file.write_text(text, encoding="utf-8")
    return ImageChange(display, old, reference)
