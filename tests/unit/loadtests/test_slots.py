"""Every serve app has its load test: loadtests/<package>/ with a locustfile and a workload."""

import pytest

from loadtests.spec import LOADTESTS_DIR, LOCUSTFILE, ROOT

APPS = sorted(path.parent.name for path in (ROOT / "serve_apps").glob("*/app.py"))


def test_the_serve_apps_are_found() -> None:
    assert APPS


@pytest.mark.parametrize("package", APPS)
@pytest.mark.parametrize("slot", [LOCUSTFILE, "workload.py"])
def test_every_serve_app_has_its_load_test(package: str, slot: str) -> None:
    assert (ROOT / LOADTESTS_DIR / package / slot).is_file(), f"{package} is missing in {LOADTESTS_DIR}/ ({slot})"
