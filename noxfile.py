"""The toolkit's only entry point: `nox -l` lists what it does; `nox -s render` and `nox -s tests` are the main two."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import nox

nox.options.default_venv_backend = "venv"  # pip finds the local CPU torch wheel; uv would fetch a CUDA build
nox.options.reuse_venv = "yes"
nox.options.error_on_missing_interpreters = True

PYPROJECT = nox.project.load_toml("pyproject.toml")
PYTHON = "3.11"
# Dependency group → (its lock's path without ".lock", lines before its pins, with hashes). `nox -s lock` writes them.
# The serving image's locks carry hashes (the Dockerfile installs with --require-hashes); the GPU lock is constrained
# to the CPU lock's versions. The test lock holds the versions, direct and transitive, of every session that installs
# the test group or a part of it (render, serve), as pip constraints: a new release on PyPI changes neither what the
# tests run nor the model build's inputs, so CI's kept models stay valid (serve_apps/build_models.py stamps the
# version of every distribution the build imports).
LOCKS = {
    "image": ("image/requirements", [], True),
    "image-gpu": ("image/requirements-gpu", ["-c requirements.lock"], True),
    "test": ("tests/requirements", [], False),
}
TEST_LOCK = f"{LOCKS['test'][0]}.lock"
# On Ctrl-C the runners of serve, loadtest, bench and reliability shut Serve and Ray down, which takes up to
# localrun.stop.STOP_TIMEOUT_S. nox's defaults (SIGTERM 0.3 s after the interrupt, SIGKILL 0.2 s later)
# killed the driver mid-shutdown and left Ray's agents running; this is how long each step waits instead.
STOP_TIMEOUT_S = 60.0


def render_env(session: nox.Session) -> str:
    """Make (once) and update the venv the render-side sessions share: the render group and the project; its python.

    They would each build the same venv (540 MB, 40-50 s on 2 cores); nox 2026.10.20 has no venv location per session
    (wntrblm/nox#785 proposes one), so they run without one of their own (venv_backend="none") in this one, made by
    nox's VirtualEnv beside the others and always reused: delete .nox/render-env to rebuild it.
    """
    venv = nox.virtualenv.VirtualEnv(
        str(session.env_dir.with_name("render-env")), interpreter=PYTHON, reuse_existing=True, venv_backend="venv"
    )
    venv.create()
    python = str(Path(venv.bin, "python"))
    pip = (python, "-m", "pip", "install")
    session.run_install(*pip, *locked("render"), *nox.project.dependency_groups(PYPROJECT, "render"), silent=True)
    session.run_install(*pip, "--no-deps", "-e", ".", silent=True)
    return python


def locked(group: str) -> tuple[str, ...]:
    """pip's options that hold a group to the test lock's versions, if the test group holds all of its pins."""
    pins, test_pins = (set(nox.project.dependency_groups(PYPROJECT, name)) for name in (group, "test"))
    return ("-c", TEST_LOCK) if pins <= test_pins else ()


def install(session: nox.Session, group: str) -> None:
    """Install one dependency group of pyproject.toml and the project itself."""
    session.install(*locked(group), *nox.project.dependency_groups(PYPROJECT, group))
    session.install("--no-deps", "-e", ".")


@nox.session(venv_backend="none")
def render(session: nox.Session) -> None:
    """Render deployments/ into rendered/ (`-- --check` lists stale files and writes nothing)."""
    python = render_env(session)
    session.run(python, "-m", "render", "render", *session.posargs)


@nox.session(venv_backend="none", default=False)
def schema(session: nox.Session) -> None:
    """Export the spec's JSON Schema to deployments/schema.json for editors."""
    python = render_env(session)
    session.run(python, "-m", "render", "schema", *session.posargs)


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
    session.run(
        "python",
        "-m",
        "localrun.serve",
        *session.posargs,
        interrupt_timeout=STOP_TIMEOUT_S,
        terminate_timeout=STOP_TIMEOUT_S,
    )


@nox.session(python=PYTHON, default=False)
def tests(session: nox.Session) -> None:
    """Run the whole test suite against real services (pass pytest options after --; a test path runs just those).

    With no test path given, the unit tests run beside the integration tests, in a second pytest at a lower
    priority: the integration tests spend much of their time waiting on servers, and on two cores that idle CPU runs
    the unit tests (a third of the suite's time) meanwhile; their report follows the integration tests'. The tests
    marked `alone` (a load test against the SLOs) run last, when nothing runs beside them.
    """
    install(session, "test")
    if session.run("python", "-m", "serve_apps.build_models", "--out", "models") is None:
        return  # --install-only: session.run ran nothing, and neither may the pytests started below without it
    if any(Path(arg.split("::")[0]).exists() for arg in session.posargs if not arg.startswith("-")):
        session.run("python", "-m", "pytest", *session.posargs)
        return
    pytest = [str(Path(session.bin, "python")), "-m", "pytest"]
    env = session_env(session)
    first, second = ["tests/integration", "--alone=skip", *session.posargs], ["tests/unit", *session.posargs]
    codes = side_by_side(session, pytest, env, first, second)
    last = ["tests/integration", "--alone=only", *session.posargs]
    session.log(f"pytest {' '.join(last)}")
    codes[" ".join(last)] = subprocess.run([*pytest, *last], env=env, check=False).returncode
    failed = [f"pytest {args} exited {code}" for args, code in codes.items() if code not in (0, NO_TESTS_COLLECTED)]
    if failed:
        session.error("; ".join(failed))
    if set(codes.values()) == {NO_TESTS_COLLECTED}:
        session.error("no test selected")


# How much the second pytest of `nox -s tests` yields to the first: at nice 5 it gets about a quarter of a core the
# first keeps busy (CFS weights 335 and 1024), and all of an idle one.
BESIDE_NICENESS = 5
# pytest's exit code when it selected no test (a -k that matches only another run's tests).
NO_TESTS_COLLECTED = 5


def session_env(session: nox.Session) -> dict[str, str]:
    """The environment session.run gives a command: this process's, the session's variables, the venv first on PATH."""
    env = {**os.environ, **{name: value for name, value in session.env.items() if value is not None}}
    env["PATH"] = os.pathsep.join([session.bin, env.get("PATH", "")])
    env["VIRTUAL_ENV"] = str(Path(session.bin).parent)
    return env


def side_by_side(
    session: nox.Session, pytest: list[str], env: dict[str, str], first: list[str], second: list[str]
) -> dict[str, int]:
    """`pytest` `first` with its output shown as it runs and `second` beside it (niced, its output in a file, shown
    after); the exit code of each, by its arguments."""
    # Not in session.create_tmp(): it points TMPDIR into the venv, where Ray's workers refuse their temp dir ("temp_dir
    # must not be child directory of virtualenv root", ray-project/ray python/ray/_private/parameter.py _check_usage,
    # Ray 2.60) and ray.init waits for them without end.
    log = Path("build", "tests-beside.log")
    log.parent.mkdir(exist_ok=True)
    session.log(f"pytest {' '.join(second)}: runs beside at nice {BESIDE_NICENESS}, its output in {log}")
    session.log(f"pytest {' '.join(first)}")
    with log.open("wb") as output:
        beside = subprocess.Popen(
            [*pytest, *second],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            preexec_fn=_beside_priority,
        )
        try:
            first_code = subprocess.run([*pytest, *first], env=env, check=False).returncode
            if beside.poll() is None:
                session.log(f"waiting for pytest {' '.join(second)}")
            second_code = beside.wait()
        except BaseException:  # Ctrl-C reached both pytests from the terminal: wait until the second has stopped
            beside.terminate()
            beside.wait()
            raise
    session.log(f"pytest {' '.join(second)}, which ran beside:")
    sys.stdout.write(log.read_text(encoding="utf-8", errors="replace"))
    sys.stdout.flush()
    return {" ".join(first): first_code, " ".join(second): second_code}


def _beside_priority() -> None:
    os.nice(BESIDE_NICENESS)


@nox.session(python=PYTHON, default=False)
def lint(session: nox.Session) -> None:
    """ruff, mypy, hadolint and shellcheck, actionlint and the schema of the workflows, pip-audit of the pins."""
    install(session, "lint")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run(
        "mypy",
        "render",
        "serve_apps",
        "localrun",
        "tools/image.py",
        "tools/docs_pages.py",
        "tools/docs_hooks.py",
        "noxfile.py",
    )
    session.run(
        "hadolint", *(str(path) for path in sorted(Path(".").glob("**/Dockerfile")) if ".nox" not in path.parts)
    )
    session.run("shellcheck", ".ci/run", *(str(path) for path in sorted(Path("tests").glob("**/*.sh"))))
    workflows = sorted(str(path) for path in Path(".github/workflows").glob("*.yml"))
    # actionlint checks run: scripts with the shellcheck of the lint group, found on the venv's PATH (without one
    # it would skip them without a word).
    session.run("actionlint", *workflows)
    session.run("check-jsonschema", "--builtin-schema", "vendor.github-workflows", *workflows)
    audit(session)


def audit(session: nox.Session) -> None:
    """pip-audit of every pinned dependency; prints its findings, and says so when no advisory service answers."""
    pins = session.create_tmp() + "/pins.txt"
    with open(pins, "w", encoding="utf-8") as file:
        file.write("\n".join(nox.project.dependency_groups(PYPROJECT, "test", "lint")) + "\n")
    report = session.create_tmp() + "/pip-audit.json"
    session.run(
        "pip-audit",
        "--requirement",
        pins,
        "--no-deps",
        "--disable-pip",
        "--progress-spinner",
        "off",
        "--format",
        "json",
        "--output",
        report,
        success_codes=[0, 1],
    )
    session.run("python", "tools/audit_report.py", report)


@nox.session(python=PYTHON, default=False)
def lock(session: nox.Session) -> None:
    """Lock the image's dependency groups with hashes into image/requirements*.lock, the test group into TEST_LOCK."""
    session.install(*nox.project.dependency_groups(PYPROJECT, "lock"))
    for group, (stem, lines, hashed) in LOCKS.items():
        pins = list(nox.project.dependency_groups(PYPROJECT, group))
        header = f"# Generated from pyproject.toml's {group} group by `nox -s lock`; edit the group, not this file."
        Path(f"{stem}.in").write_text("\n".join([header, *lines, *pins]) + "\n", encoding="utf-8")
        lock = Path(f"{stem}.lock")
        with session.chdir(lock.parent):  # paths in the locks' comments stay relative to the lock
            session.run(
                *("pip-compile", "--quiet", "--allow-unsafe", "--strip-extras"),
                *(("--generate-hashes",) if hashed else ()),
                *("--no-emit-find-links", "--no-emit-index-url", "--output-file", lock.name),
                f"{Path(stem).name}.in",
            )
        if not hashed:
            # Without its local label (torch 2.13.0+cpu here) a constraint admits that build where it lies on disk
            # and PyPI's elsewhere, as pyproject.toml's pin does.
            lock.write_text(re.sub(r"^([\w.-]+==[^\s+]+)\+\S+", r"\1", lock.read_text(), flags=re.MULTILINE))


@nox.session(python=PYTHON, default=False)
def image(session: nox.Session) -> None:
    """Build the serving image with a running Docker engine; prints ID, size, build time (`-- --help`)."""
    if any(arg.startswith("--set-image") for arg in session.posargs):
        install(session, "render")  # the build needs nothing installed; writing a spec and rendering do
    session.run("python", "-m", "tools.image", *session.posargs)


@nox.session(python=PYTHON, default=False)
def docs(session: nox.Session) -> None:
    """Build the documentation site into build/site in strict mode (a broken link or a missing page fails)."""
    install(session, "docs")
    # python -m puts the repository on sys.path, where mkdocs.yml's hooks import tools.docs_pages from. Material's
    # banner about MkDocs 2.0 is silenced: the pins above are what this site builds with, and a notice on every
    # build is one users learn to skip.
    session.run("python", "-m", "mkdocs", "build", "--strict", *session.posargs, env={"NO_MKDOCS_2_WARNING": "1"})


@nox.session(venv_backend="none", default=False)
def update_golden(session: nox.Session) -> None:
    """Regenerate tests/golden/ from tests/fixtures/spec after a deliberate rendering change."""
    python = render_env(session)
    session.run(python, "-m", "tests.golden_tree", "update")


@nox.session(venv_backend="none", default=False)
def bench_render(session: nox.Session) -> None:
    """Time each render stage for generated specs of 100 to 500 apps; writes reports/bench/render.json."""
    python = render_env(session)
    session.run(python, "-m", "benchmarks.render_scale", *session.posargs)


@nox.session(venv_backend="none", default=False)
def diff(session: nox.Session) -> None:
    """Markdown report of what changes in rendered/ since a git ref, with impact and cost delta."""
    if len(session.posargs) != 1:
        session.error("Usage: nox -s diff -- <git-ref>")
    python = render_env(session)
    session.run(python, "-m", "render", "diff", *session.posargs)


@nox.session(venv_backend="none", default=False)
def promote(session: nox.Session) -> None:
    """Copy models, args and image digest from one environment into the next, render, show the diff."""
    if len(session.posargs) != 2:
        session.error("Usage: nox -s promote -- <from-env> <to-env>")
    python = render_env(session)
    session.run(python, "-m", "render", "promote", *session.posargs)


@nox.session(venv_backend="none", default=False)
def cost(session: nox.Session) -> None:
    """Monthly cost of an environment at min and max scale, at its region's prices in clusters/prices.yaml."""
    if not session.posargs or session.posargs[0].startswith("-"):
        session.error("Usage: nox -s cost -- <env> [--max-price-age-days DAYS]")
    python = render_env(session)
    session.run(python, "-m", "render", "cost", *session.posargs)


@nox.session(python=PYTHON, default=False)
def loadtest(session: nox.Session) -> None:
    """Load-test an environment's apps against its SLOs; Locust reports in reports/loadtest/<env>/<app>/."""
    if not session.posargs:
        session.error(
            "Usage: nox -s loadtest -- <env> [<app>] [--host URL] [--users N] [--duration S] [--spawn-rate R]"
        )
    install(session, "test")
    if not any(arg.startswith("--host") for arg in session.posargs):  # a local Serve loads models/
        session.run("python", "-m", "serve_apps.build_models", "--out", "models")
    session.run(
        "python",
        "-m",
        "loadtests",
        *session.posargs,
        interrupt_timeout=STOP_TIMEOUT_S,
        terminate_timeout=STOP_TIMEOUT_S,
    )


@nox.session(python=PYTHON, default=False)
def bench(session: nox.Session) -> None:
    """Zero-shot vs BentoML, tuned and naive FastAPI, raw model; load curve; cold start; generation (`-- --quick`)."""
    install(session, "test")
    session.run("python", "-m", "serve_apps.build_models", "--out", "models")
    session.run(
        "python",
        "-m",
        "benchmarks.serving",
        *session.posargs,
        interrupt_timeout=STOP_TIMEOUT_S,
        terminate_timeout=STOP_TIMEOUT_S,
    )


@nox.session(python=PYTHON, default=False)
def reliability(session: nox.Session) -> None:
    """Faults under load (replica, worker node, GCS-FT head lost) and CI fault tests; reports/reliability/<stamp>.md."""
    install(session, "test")
    session.run("python", "-m", "serve_apps.build_models", "--out", "models")
    session.run(
        "python",
        "-m",
        "benchmarks.reliability",
        *session.posargs,
        interrupt_timeout=STOP_TIMEOUT_S,
        terminate_timeout=STOP_TIMEOUT_S,
    )
