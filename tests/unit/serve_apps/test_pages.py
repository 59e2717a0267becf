"""The try-it pages as served, without a browser: every app has one, it loads nothing from elsewhere, its prefix
redirects to it, and the iris and tabular forms carry real rows of their data sets (no Ray needed)."""

import importlib
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sklearn.datasets import load_breast_cancer, load_iris

from serve_apps.common.page import CONTENT_SECURITY_POLICY, PACKAGE_DIR, PAGE_TEMPLATE, add_try_it_page, render_page

APPS = sorted(path.parent.name for path in PACKAGE_DIR.glob("*/app.py"))


class Elements(HTMLParser):
    """Every start tag with its attributes, and the text of each button."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.buttons: list[tuple[str, dict[str, str]]] = []
        self._button: dict[str, str] | None = None
        self._text: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {name: value or "" for name, value in attrs}
        self.tags.append((tag, attributes))
        if tag == "button":
            self._button, self._text = attributes, []

    def handle_data(self, data: str) -> None:
        if self._button is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "button" and self._button is not None:
            self.buttons.append((" ".join("".join(self._text).split()), self._button))
            self._button = None


def served_page(app: str) -> TestClient:
    module = importlib.import_module(f"serve_apps.{app}.app")
    return TestClient(module.api, root_path=f"/{app}", follow_redirects=False)


def page_elements(app: str) -> Elements:
    response = served_page(app).get(f"/{app}/")
    assert response.status_code == 200
    return Elements(response.text)


def feature_inputs(elements: Elements) -> list[dict[str, str]]:
    return [attributes for tag, attributes in elements.tags if tag == "input" and attributes.get("type") == "number"]


def sample_rows(elements: Elements) -> dict[str, list[float]]:
    """Sample button text -> its row."""
    return {
        text: [float(value) for value in attributes["data-sample"].split(",")]
        for text, attributes in elements.buttons
        if "data-sample" in attributes
    }


@pytest.mark.parametrize("app", APPS)
def test_every_app_serves_its_page_at_its_prefix(app: str) -> None:
    assert (PACKAGE_DIR / app / PAGE_TEMPLATE).is_file(), f"{app} is missing serve_apps/{app}/{PAGE_TEMPLATE}"
    response = served_page(app).get(f"/{app}/")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert 'fetch("predict"' in response.text


@pytest.mark.parametrize("app", APPS)
def test_page_loads_nothing_from_elsewhere(app: str) -> None:
    elements = page_elements(app)
    links = [attributes[name] for _, attributes in elements.tags for name in ("src", "href") if name in attributes]
    assert links, "no link found: is the parser broken?"
    elsewhere = [link for link in links if urlsplit(link).scheme not in ("", "data") or urlsplit(link).netloc]
    assert elsewhere == []
    assert [tag for tag, attributes in elements.tags if tag == "script" and "src" in attributes] == []


@pytest.mark.parametrize("app", APPS)
def test_prefix_without_slash_redirects_relatively_to_the_page(app: str) -> None:
    # Relative, so that it holds behind a proxy that terminates TLS or mounts the app under another path.
    response = served_page(app).get(f"/{app}")
    assert response.status_code == 307
    assert response.headers["location"] == f"{app}/"


def test_redirect_keeps_a_nested_prefix() -> None:
    api = FastAPI(title="t", description="d")
    add_try_it_page(api, "doubleit")
    client = TestClient(api, root_path="/models/double", follow_redirects=False)
    assert client.get("/models/double").headers["location"] == "double/"
    assert client.get("/models/double/").status_code == 200


def test_page_is_headed_with_the_app_title_escaped() -> None:
    html = render_page("doubleit", "Double <it>", "Doubles & more.")
    assert "<title>Double &lt;it&gt;: try it</title>" in html
    assert "<h1>Double &lt;it&gt;</h1>" in html
    assert "<p>Doubles &amp; more.</p>" in html


def test_iris_form_is_the_data_set_feature_order_with_real_rows() -> None:
    iris = load_iris()
    elements = page_elements("iris")
    inputs = feature_inputs(elements)
    assert [field["name"] for field in inputs] == list(iris.feature_names)
    assert [float(field["value"]) for field in inputs] == iris.data[0].tolist()
    samples = sample_rows(elements)
    assert samples.keys() == {"setosa (row 0)", "versicolor (row 50)", "virginica (row 100)"}
    for text, row in samples.items():
        species, index = text.removesuffix(")").split(" (row ")
        assert row == iris.data[int(index)].tolist()
        assert iris.target_names[iris.target[int(index)]] == species


def test_tabular_form_is_the_data_set_feature_order_with_real_rows() -> None:
    cancer = load_breast_cancer()
    elements = page_elements("tabular")
    inputs = feature_inputs(elements)
    assert [field["name"] for field in inputs] == list(cancer.feature_names)
    assert [float(field["value"]) for field in inputs] == cancer.data[0].tolist()
    samples = sample_rows(elements)
    assert samples.keys() == {"malignant (row 0)", "benign (row 19)"}
    for text, row in samples.items():
        diagnosis, index = text.removesuffix(")").split(" (row ")
        assert row == cancer.data[int(index)].tolist()
        assert cancer.target_names[cancer.target[int(index)]] == diagnosis


def test_package_data_globs_cover_the_templates() -> None:
    # pyproject ships serve_apps/*/*.html; a template anywhere else would be missing from an installed package.
    templates = sorted(path.relative_to(PACKAGE_DIR) for path in PACKAGE_DIR.rglob("*.html"))
    assert templates and all(len(path.parts) == 2 for path in templates)
    assert Path("common", PAGE_TEMPLATE) in templates
