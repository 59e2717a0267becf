"""The toolkit's only entry point: `nox -l` lists what it does; `nox -s render` and `nox -s tests` are the main two."""

from __future__ import annotations

import nox

nox.options.default_venv_backend = "venv"  # pip finds the local CPU torch wheel; uv would fetch a CUDA build
nox.options.reuse_venv = "yes"
nox.options.error_on_missing_interpreters = True

PYPROJECT = nox.project.load_toml("pyproject.toml")
PYTHON = "3.11"


def install(session: nox.Session, group: str) -> None:
    """Install one dependency group of pyproject.toml and the project itself."""
    session.install(*nox.project.dependency_groups(PYPROJECT, group))
    session.install("--no-deps", "-e", ".")


@nox.session(python=PYTHON)
def render(session: nox.Session) -> None:
    """Render deployments/ into rendered/ (`-- --check` lists stale files and writes nothing)."""
    install(session, "render")
    session.run("python", "-m", "render", "render", *session.posargs)


@nox.session(python=PYTHON, default=False)
def schema(session: nox.Session) -> None:
    """Export the spec's JSON Schema to deployments/schema.json for editors."""
    install(session, "render")
    session.run("python", "-m", "render", "schema", *session.posargs)


@nox.session(python=PYTHON, default=False)
def models(session: nox.Session) -> None:
    """Build every model artifact into models/ and print URI, size and sha256."""
    install(session, "serve")
    session.run("python", "-m", "serve_apps.build_models", "--out", "models", *session.posargs)


@nox.session(python=PYTHON, default=False)
def publish_models(session: nox.Session) -> None:
    """Upload the artifacts of models/ to S3 (standard AWS settings): `nox -s publish_models -- <bucket>`."""
    if not session.posargs:
        session.error("Usage: nox -s publish_models -- <bucket> [--prefix P]")
    install(session, "serve")
    session.run("python", "-m", "serve_apps.publish_models", *session.posargs)


@nox.session(python=PYTHON, default=False)
def serve(session: nox.Session) -> None:
    """Run an environment's rendered Serve config on a local Ray until Ctrl-C: `nox -s serve -- <env>`."""
    if not session.posargs:
        session.error("Usage: nox -s serve -- <env> [--port 8000]")
    install(session, "serve")
    session.run("python", "-m", "serve_apps.build_models", "--out", "models")
    session.run("python", "-m", "serve_apps.local", *session.posargs)


@nox.session(python=PYTHON, default=False)
def tests(session: nox.Session) -> None:
    """Run the whole test suite against real services (pass pytest options after --)."""
    install(session, "test")
    session.run("python", "-m", "serve_apps.build_models", "--out", "models")
    session.run("python", "-m", "pytest", *session.posargs)


@nox.session(python=PYTHON, default=False)
def lint(session: nox.Session) -> None:
    """ruff (lint and format check) and mypy."""
    install(session, "lint")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("mypy", "render", "serve_apps", "noxfile.py")


@nox.session(python=PYTHON, default=False)
def update_golden(session: nox.Session) -> None:
    """Regenerate tests/golden/ from tests/fixtures/spec after a deliberate rendering change."""
    install(session, "render")
    session.run("python", "-m", "tests.golden_tree", "update")


@nox.session(python=PYTHON, default=False)
def bench_render(session: nox.Session) -> None:
    """Time each render stage for generated specs of 100 to 500 apps; writes reports/bench/render.json."""
    install(session, "render")
    session.run("python", "-m", "benchmarks.render_scale", *session.posargs)
