"""set-image: only a digest reference, written where the environment states its image with its comments kept,
every environment checked before anything is written, and the CLI re-renders and says what changed."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from render.cli import main
from render.errors import SpecError
from render.review.promotion import promote
from render.review.set_image import DIGEST_REFERENCE, set_image
from render.spec.load import load_specs

DIGEST = "sha256:" + "b" * 64
REFERENCE = f"registry.example.com/serving@{DIGEST}"
PROD_DIGEST = "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
COMMENTED_DEV = """\
# dev: the fixture's dev, with comments that set-image must keep.
env:
  tier: dev  # tags allowed here
  target:
    kind: kuberay
    cluster: eks-test
    namespace: serving-dev
    service_account: {iam_role_arn: "arn:aws:iam::111111111111:role/serving-dev"}
  # The image CI writes: `nox -s image -- --push <registry> --set-image dev`.
  image: registry.example.com/serving:dev
apps:
  - name: echo
    args: {repeat: 2}  # flow style stays
"""
# dev → prod where prod's image may differ only in its repository: its digest must be one dev ran.
POLICY = """\
order: [dev, prod]
may_differ:
  - env.name
  - env.tier
  - env.target
  - env.secrets
  - env.serve
  - env.image.repository
  - head_group
  - worker_groups
  - apps[*].args
  - apps[*].deployments
promote: [env.image.digest]
"""


def problems_of(repo: Path, env: str, reference: str) -> list[str]:
    with pytest.raises(SpecError) as caught:
        set_image(repo, env, reference)
    return [str(p) for p in caught.value.problems]


def test_a_tag_reference_is_refused_naming_the_file_and_key(repo: Path) -> None:
    assert problems_of(repo, "dev", "registry.example.com/serving:1.2") == [
        "deployments/dev/env.yaml: env.image: got 'registry.example.com/serving:1.2'; set-image takes a digest"
        " reference, <repository>[:<tag>]@sha256:<64 lowercase hex digits>. Hint: pass the reference `nox -s image --"
        " --push <registry>` prints after `pushed:`"
    ]


@pytest.mark.parametrize(
    "reference",
    [
        f"registry.example.com/serving@sha256:{'b' * 63}",
        f"registry.example.com/serving@sha256:{'B' * 64}",
        f"registry.example.com/serving@sha512:{'b' * 128}",
        f"registry.example.com/Serving@{DIGEST}",
        f"@{DIGEST}",
        f"registry.example.com/serving@{DIGEST} ",
        DIGEST,
    ],
)
def test_what_is_not_a_digest_reference(reference: str) -> None:
    assert not DIGEST_REFERENCE.match(reference)


@pytest.mark.parametrize(
    "reference",
    [
        REFERENCE,
        f"127.0.0.1:5000/serving@{DIGEST}",
        f"123456789012.dkr.ecr.eu-west-1.amazonaws.com/serving:3f2a9c1d0b7e@{DIGEST}",
        f"europe-docker.pkg.dev/acme/serving/serving@{DIGEST}",
        f"serving@{DIGEST}",
    ],
)
def test_what_is_a_digest_reference(reference: str) -> None:
    assert DIGEST_REFERENCE.match(reference)


def test_an_unknown_env_is_named_with_the_known_ones(repo: Path) -> None:
    assert problems_of(repo, "qa", REFERENCE) == [
        "deployments: got 'qa'; no such environment. Hint: known environments: dev, prod"
    ]


def test_the_image_line_changes_and_nothing_else(repo: Path) -> None:
    overlay = repo / "deployments/dev/env.yaml"
    overlay.write_text(COMMENTED_DEV)
    change = set_image(repo, "dev", REFERENCE)
    assert (change.file, change.old, change.new) == (
        "deployments/dev/env.yaml",
        "registry.example.com/serving:dev",
        REFERENCE,
    )
    assert overlay.read_text() == COMMENTED_DEV.replace("serving:dev", f"serving@{DIGEST}")


def test_an_inherited_image_is_overridden_in_the_envs_env_yaml(repo: Path) -> None:
    dev = repo / "deployments/dev/env.yaml"
    dev.write_text(dev.read_text().replace("  image: registry.example.com/serving:dev\n", ""))
    base = repo / "deployments/base/env.yaml"
    base.write_text(base.read_text().replace("env:\n", "env:\n  image: registry.example.com/serving:dev\n", 1))
    base_before = base.read_text()
    set_image(repo, "dev", REFERENCE)
    assert yaml.safe_load(dev.read_text())["env"]["image"] == REFERENCE
    assert base.read_text() == base_before


def test_the_last_file_of_the_env_stating_the_image_is_edited(repo: Path) -> None:
    later = repo / "deployments/dev/image.yaml"
    later.write_text("env:\n  image: registry.example.com/serving:dev2\n")
    dev_before = (repo / "deployments/dev/env.yaml").read_text()
    change = set_image(repo, "dev", REFERENCE)
    assert (change.file, change.old) == ("deployments/dev/image.yaml", "registry.example.com/serving:dev2")
    assert later.read_text() == f"env:\n  image: {REFERENCE}\n"
    assert (repo / "deployments/dev/env.yaml").read_text() == dev_before


def test_a_digest_the_policy_refuses_is_not_written(repo: Path) -> None:
    (repo / "deployments/promotion.yaml").write_text(POLICY)
    set_image(repo, "dev", f"registry.example.com/serving@{PROD_DIGEST}")
    prod = repo / "deployments/prod/env.yaml"
    before = prod.read_text()
    assert problems_of(repo, "prod", REFERENCE) == [
        f"deployments/prod/env.yaml: env.image.digest: got '{DIGEST}' in prod, '{PROD_DIGEST}' in dev; prod may only"
        " run what dev ran, and dev never had this value (its spec now and in 0 commit(s) of deployments/ history)."
        " Hint: promote with `nox -s promote -- dev prod`, make them equal, or let the key differ in"
        " deployments/promotion.yaml (may_differ)"
    ]
    assert prod.read_text() == before


def test_promote_carries_the_digest_set_image_wrote(repo: Path) -> None:
    (repo / "deployments/promotion.yaml").write_text(POLICY)
    set_image(repo, "dev", f"registry.example.com/serving@{PROD_DIGEST}")
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@e", "commit", "-qm", "dev = prod"], cwd=repo, check=True
    )
    set_image(repo, "dev", REFERENCE)  # prod still runs what dev ran in the commit before
    [promotion] = promote(repo, "dev", "prod")
    assert promotion.changes == (f"env.image: 'registry.example.com/serving@{PROD_DIGEST}' → '{REFERENCE}'",)
    assert load_specs(repo, ["prod"])["prod"].env.image == REFERENCE


def test_the_cli_says_what_changed_and_renders_it(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--root", str(repo), "set-image", "dev", REFERENCE]) == 0
    out = capsys.readouterr().out
    assert f"deployments/dev/env.yaml: env.image: 'registry.example.com/serving:dev' → '{REFERENCE}'" in out
    assert "  rendered/dev/ray.io.RayService-serving.yaml\n" in out
    assert REFERENCE in (repo / "rendered/dev/ray.io.RayService-serving.yaml").read_text()
    assert main(["--root", str(repo), "set-image", "dev", REFERENCE]) == 0
    out = capsys.readouterr().out
    assert f"env.image is already '{REFERENCE}': nothing to set" in out
    assert "wrote rendered/: " in out and " files, 0 changed" in out


def test_the_cli_refuses_without_a_traceback(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--root", str(repo), "set-image", "dev", "registry.example.com/serving:latest"]) == 1
    err = capsys.readouterr().err
    assert "deployments/dev/env.yaml: env.image: got 'registry.example.com/serving:latest'" in err
    assert "nothing was written" in err
    assert not (repo / "rendered").exists()
