"""Which app a locustfile drives: found through the spec's import_path, one app per serve_apps package."""

from pathlib import Path
from typing import Any

import pytest

from loadtests.errors import LoadTestError
from loadtests.spec import ROOT, app_of_package, locustfile_of, package_of, select_apps
from render.spec.load import load_specs
from render.spec.models import App, Spec

DEV = load_specs(ROOT, ["dev"])["dev"]


def minimal_app(**changes: Any) -> App:
    """The dev spec's iris app, with `changes` applied."""
    iris = next(app for app in DEV.apps if app.name == "iris")
    return iris.model_copy(update=changes)


def spec_with(*apps: App) -> Spec:
    return DEV.model_copy(update={"apps": list(apps)})


def test_the_package_comes_from_the_import_path() -> None:
    assert package_of(minimal_app(import_path="serve_apps.zero_shot.app:app_builder")) == "zero_shot"


@pytest.mark.parametrize("import_path", ["tests.fixtures.echo_app:app_builder", "serve_apps.iris.other:build"])
def test_an_import_path_outside_serve_apps_has_no_package(import_path: str) -> None:
    assert package_of(minimal_app(import_path=import_path)) is None


def test_every_dev_app_has_a_locustfile() -> None:
    assert {app.name: locustfile_of(ROOT, app).relative_to(ROOT).as_posix() for app in DEV.apps} == {
        "zero-shot": "loadtests/zero_shot/locustfile.py",
        "iris": "loadtests/iris/locustfile.py",
        "tabular": "loadtests/tabular/locustfile.py",
        "doubleit": "loadtests/doubleit/locustfile.py",
        "plain-language": "loadtests/plain_language/locustfile.py",
    }


def test_a_missing_locustfile_says_where_to_add_it(tmp_path: Path) -> None:
    with pytest.raises(LoadTestError, match=r"iris: no load test\. Hint: add loadtests/iris/locustfile\.py"):
        locustfile_of(tmp_path, minimal_app())


def test_an_app_outside_serve_apps_has_no_load_test() -> None:
    with pytest.raises(LoadTestError, match="is not a serve app"):
        locustfile_of(ROOT, minimal_app(import_path="tests.fixtures.echo_app:app_builder"))


def test_the_app_of_a_package_is_found_by_import_path_not_name() -> None:
    assert app_of_package(spec_with(minimal_app(name="flowers")), "iris").name == "flowers"


def test_two_apps_of_one_package_are_ambiguous() -> None:
    spec = spec_with(minimal_app(), minimal_app(name="iris-canary", route_prefix="/iris-canary"))
    with pytest.raises(LoadTestError, match=r"exactly one app built by serve_apps\.iris\.app; found iris, iris-canary"):
        app_of_package(spec, "iris")


def test_select_apps_keeps_spec_order_and_names_unknown_apps() -> None:
    assert [app.name for app in select_apps(DEV, None)] == [app.name for app in DEV.apps]
    assert [app.name for app in select_apps(DEV, ["iris"])] == ["iris"]
    with pytest.raises(
        LoadTestError, match=r"dev has no app 'zero_shot'\. Hint: apps of dev: doubleit, iris, plain-language, tabular"
    ):
        select_apps(DEV, ["zero_shot"])
