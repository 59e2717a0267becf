"""The try-it pages in headless Chromium: each form filled and submitted, the answer shown checked, a screenshot
saved under reports/try-it/<app>.png.

The dev environment's Serve config runs on the session's Ray (`ray_cluster`), as `nox -s serve` runs it, with the
artifacts in models/ (`python -m serve_apps.build_models --out models`). Chromium and its driver are Debian's
(`apt-get install -y chromium chromium-driver`), driven through Selenium; nothing is downloaded.
"""

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ray import serve
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.wait import WebDriverWait

from localrun.serve import deploy, env_serve_config
from serve_apps.common.manifest import manifest_matches
from tests.unit.serve_apps.tcp_proxy import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO_ROOT / "reports" / "try-it"
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
# No sandbox: CI runs as root. The --disable-* flags keep Chromium off the network but for the pages (no updates,
# sync or QUIC probes); a fixed window without scrollbars gives screenshots of the same width.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--window-size=1100,900",
    "--hide-scrollbars",
)
# The first answer of a replica (zero-shot: tokenizer and ONNX session warm-up) may take seconds on 2 cores.
ANSWER_TIMEOUT_S = 60
FINAL_STATES = ("done", "refused", "failed")


@pytest.fixture(scope="module")
def app_urls(ray_cluster: Any) -> Iterator[dict[str, str]]:
    """The URL of each dev app's route prefix (no trailing slash), once every app runs; Serve is shut down after."""
    if not manifest_matches(REPO_ROOT / "models"):
        pytest.fail("models/ does not match its manifest. Hint: python -m serve_apps.build_models --out models")
    config = env_serve_config(REPO_ROOT, "dev")
    served = deploy(config, free_port())
    try:
        yield {app["name"]: served.url + app["route_prefix"] for app in config["applications"]}
    finally:
        serve.shutdown()


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    """Headless Chromium with a fresh profile, its console log kept (the tests fail on a script error)."""
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.is_file()]
    if missing:
        pytest.fail(f"{', '.join(missing)} not found. Hint: apt-get install -y chromium chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # A driver path given: Selenium Manager, which would download one, is not used.
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def open_page(browser: WebDriver, prefix_url: str) -> None:
    """Load the page the way a person types its address (no trailing slash), which redirects to `<prefix>/`."""
    browser.get(prefix_url)
    assert browser.current_url == prefix_url + "/"
    assert browser.find_element(By.TAG_NAME, "body").get_attribute("data-state") == "idle"


def set_value(browser: WebDriver, element_id: str, text: str) -> None:
    field = browser.find_element(By.ID, element_id)
    field.clear()
    field.send_keys(text)


def submit(browser: WebDriver) -> str:
    """Click Predict and wait for the page to show an answer; returns the page state (done, refused, failed)."""
    browser.find_element(By.ID, "predict").click()
    body = browser.find_element(By.TAG_NAME, "body")
    WebDriverWait(browser, ANSWER_TIMEOUT_S).until(lambda _: body.get_attribute("data-state") in FINAL_STATES)
    return str(body.get_attribute("data-state"))


def click(browser: WebDriver, button_text: str) -> None:
    browser.find_element(By.XPATH, f"//button[normalize-space()='{button_text}']").click()


def texts(browser: WebDriver, selector: str) -> list[str]:
    return [element.text for element in browser.find_elements(By.CSS_SELECTOR, selector)]


def problems(browser: WebDriver) -> list[str]:
    return texts(browser, "#problem-list li")


def assert_offline_and_clean(browser: WebDriver, prefix_url: str) -> None:
    """Everything the page loaded came from the app, and no script error or blocked load reached the console.

    Network entries are left out: a 422 answer is logged as a failed load, and is what some tests ask for.
    """
    loaded = browser.execute_script("return performance.getEntriesByType('resource').map((entry) => entry.name)")
    assert [url for url in loaded if not url.startswith(prefix_url + "/")] == []
    errors = [
        entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE" and entry["source"] != "network"
    ]
    assert errors == []


def screenshot(browser: WebDriver, app: str) -> None:
    """The whole page as shown, below the fold too, into reports/try-it/<app>.png."""
    # WebDriver's screenshot stops at the window, and headless Chromium caps the window at its screen size.
    size = browser.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    clip = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
    shot = browser.execute_cdp_cmd(
        "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True, "clip": clip}
    )
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    (SCREENSHOTS / f"{app}.png").write_bytes(base64.b64decode(shot["data"]))


def test_zero_shot_page_ranks_the_labels(browser: WebDriver, app_urls: dict[str, str]) -> None:
    open_page(browser, app_urls["zero-shot"])
    set_value(browser, "text", "The senate passed the budget bill after weeks of negotiation between the parties.")
    set_value(browser, "labels", "sports, cooking, politics, technology")
    assert submit(browser) == "done"
    labels = texts(browser, "#result .bars .label")
    assert labels[0] == "politics"
    assert sorted(labels) == ["cooking", "politics", "sports", "technology"]
    assert all(score.endswith("%") for score in texts(browser, "#result .bars .score"))
    assert_offline_and_clean(browser, app_urls["zero-shot"])
    screenshot(browser, "zero-shot")


def refusal(browser: WebDriver, prefix_url: str, field_id: str, value: str) -> str:
    """The one problem the page shows once `value` in field `field_id` got a 422, the field marked invalid."""
    open_page(browser, prefix_url)
    set_value(browser, field_id, value)
    assert submit(browser) == "refused"
    [problem] = problems(browser)
    assert browser.find_element(By.ID, field_id).get_attribute("aria-invalid") == "true"
    assert_offline_and_clean(browser, prefix_url)
    return problem


def test_zero_shot_page_shows_the_field_of_a_422(browser: WebDriver, app_urls: dict[str, str]) -> None:
    problem = refusal(browser, app_urls["zero-shot"], "labels", "sports, cooking, sports")
    assert problem.startswith("Candidate labels: ")
    assert "labels must be unique; repeated: ['sports']" in problem


def test_iris_page_names_the_species(browser: WebDriver, app_urls: dict[str, str]) -> None:
    open_page(browser, app_urls["iris"])
    click(browser, "virginica (row 100)")
    assert submit(browser) == "done"
    assert browser.find_element(By.ID, "predicted").text == "virginica"
    assert sorted(texts(browser, "#result .bars .label")) == ["setosa", "versicolor", "virginica"]
    assert_offline_and_clean(browser, app_urls["iris"])
    screenshot(browser, "iris")


def test_iris_page_names_the_feature_of_a_422(browser: WebDriver, app_urls: dict[str, str]) -> None:
    open_page(browser, app_urls["iris"])
    browser.find_element(By.ID, "f2").clear()
    assert submit(browser) == "refused"
    assert problems(browser) == ["petal length (cm): Input should be a valid number"]
    assert browser.find_element(By.ID, "f2").get_attribute("aria-invalid") == "true"
    assert_offline_and_clean(browser, app_urls["iris"])


def test_tabular_page_names_the_class(browser: WebDriver, app_urls: dict[str, str]) -> None:
    open_page(browser, app_urls["tabular"])
    click(browser, "benign (row 19)")
    assert submit(browser) == "done"
    assert browser.find_element(By.ID, "predicted").text == "benign"
    malignant = browser.find_element(By.XPATH, "//button[normalize-space()='malignant (row 0)']")
    set_value(browser, "paste", (malignant.get_attribute("data-sample") or "").replace(",", "; "))
    browser.find_element(By.ID, "paste-fill").click()
    assert browser.find_element(By.ID, "f0").get_attribute("value") == "17.99"
    assert submit(browser) == "done"
    assert browser.find_element(By.ID, "predicted").text == "malignant"
    assert_offline_and_clean(browser, app_urls["tabular"])
    screenshot(browser, "tabular")


def test_doubleit_page_doubles_exactly(browser: WebDriver, app_urls: dict[str, str]) -> None:
    open_page(browser, app_urls["doubleit"])
    set_value(browser, "values", "1, 2.5 -3; 0.1, 1e300, 123456789.123")
    assert submit(browser) == "done"
    assert texts(browser, "#result td.doubled") == ["2", "5", "-6", "0.2", "2e+300", "246913578.246"]
    assert_offline_and_clean(browser, app_urls["doubleit"])
    screenshot(browser, "doubleit")


def test_doubleit_page_names_the_number_of_a_422(browser: WebDriver, app_urls: dict[str, str]) -> None:
    open_page(browser, app_urls["doubleit"])
    set_value(browser, "values", "1, two, 3")
    assert submit(browser) == "refused"
    assert problems(browser) == ['Number 2: Input should be a valid number (got "two")']
    assert_offline_and_clean(browser, app_urls["doubleit"])


def test_plain_language_page_shows_tokens_as_they_stream(browser: WebDriver, app_urls: dict[str, str]) -> None:
    open_page(browser, app_urls["plain-language"])
    click(browser, "shortness of breath")
    # Each change of the output before the done event is a token shown as it arrived, not the whole text at once.
    browser.execute_script(
        """window.shown = [];
        new MutationObserver(() => {
          const output = document.getElementById("generated");
          if (output && document.body.dataset.state === "busy") window.shown.push(output.textContent);
        }).observe(document.getElementById("result"), {childList: true, subtree: true, characterData: true});"""
    )
    assert submit(browser) == "done"
    text = browser.find_element(By.ID, "generated").text
    assert text == "The patient complains of shortness of breath for 3 days, with a history of high blood pressure."
    shown = [piece for piece in browser.execute_script("return window.shown") if piece]
    assert len(shown) > 1, shown
    assert all(text.startswith(piece.strip()) for piece in shown)
    assert "first after" in browser.find_element(By.ID, "generation-summary").text
    assert_offline_and_clean(browser, app_urls["plain-language"])
    screenshot(browser, "plain-language")


def test_plain_language_page_names_the_field_of_a_422(browser: WebDriver, app_urls: dict[str, str]) -> None:
    problem = refusal(browser, app_urls["plain-language"], "temperature", "5")
    assert problem.startswith("Temperature: ")
    assert "less than or equal to 2" in problem
