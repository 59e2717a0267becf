"""The load tests' view of the spec: which app a locustfile drives, where it listens and what its SLOs are.

A locustfile lives in `loadtests/<package>/`, named after the serve_apps package whose `app.py` the spec's
`import_path` points at (`serve_apps.zero_shot.app:app_builder` -> `loadtests/zero_shot/`), so the spec's app
names (`zero-shot`) never need a second table here.
"""

from pathlib import Path

from loadtests.errors import LoadTestError
from render.spec.models import App, Spec

ROOT = Path(__file__).resolve().parents[1]
LOADTESTS_DIR = "loadtests"
LOCUSTFILE = "locustfile.py"
APPS_PACKAGE = "serve_apps"


def package_of(app: App) -> str | None:
    """The serve_apps package that builds `app` (`zero_shot` for `serve_apps.zero_shot.app:...`), else None."""
    parts = app.import_path.partition(":")[0].split(".")
    if len(parts) == 3 and parts[0] == APPS_PACKAGE and parts[2] == "app":
        return parts[1]
    return None


def locustfile_of(root: Path, app: App) -> Path:
    """The locustfile of `app` under `root`; raises LoadTestError when there is none."""
    package = package_of(app)
    if package is None:
        raise LoadTestError(
            f"{app.name}: import_path {app.import_path!r} is not a serve app; "
            f"load tests exist for `{APPS_PACKAGE}.<package>.app:...` only"
        )
    path = root / LOADTESTS_DIR / package / LOCUSTFILE
    if not path.is_file():
        raise LoadTestError(f"{app.name}: no load test. Hint: add {path.relative_to(root)}")
    return path


def app_of_package(spec: Spec, package: str) -> App:
    """The one app of `spec` that `serve_apps.<package>.app` builds; raises LoadTestError for none or several."""
    apps = [app for app in spec.apps if package_of(app) == package]
    if len(apps) != 1:
        found = ", ".join(app.name for app in apps) or "none"
        raise LoadTestError(
            f"{spec.env.name}: a load test drives exactly one app built by {APPS_PACKAGE}.{package}.app; found {found}"
        )
    return apps[0]


def select_apps(spec: Spec, names: list[str] | None) -> list[App]:
    """The apps of `spec` called `names` (all of them when None), in spec order; raises LoadTestError for others."""
    known = [app.name for app in spec.apps]
    unknown = sorted(set(names or []) - set(known))
    if unknown:
        raise LoadTestError(
            f"{spec.env.name} has no app {', '.join(map(repr, unknown))}. Hint: apps of {spec.env.name}: "
            f"{', '.join(sorted(known))}"
        )
    return [app for app in spec.apps if names is None or app.name in names]
