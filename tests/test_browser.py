"""Headless Chromium clicks the first example and waits for both images, both plots and the run summary; the
screenshot goes to $MEMDEMO_SCREENSHOT (assets/screenshot.png refreshes the README's picture) or a temporary folder."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
START_TIMEOUT = 120  # seconds for the server to load the model and answer
RUN_TIMEOUT = 120  # seconds for one 50-step example run on a CPU
CHROMIUM_FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--window-size=1400,2200",
]
WIDTH = 1400

webdriver = pytest.importorskip("selenium.webdriver", reason="needs selenium (pip install -r requirements-dev.txt)")
from selenium.common.exceptions import StaleElementReferenceException  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

CHROMIUM = next(filter(None, map(shutil.which, ["chromium", "chromium-browser", "google-chrome"])), None)
CHROMEDRIVER = shutil.which("chromedriver")
if CHROMIUM is None or CHROMEDRIVER is None:
    pytest.skip(
        "needs Chromium and chromedriver (Debian: apt-get install chromium chromium-driver; CI installs them)",
        allow_module_level=True,
    )

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> str:
    """`python app.py --port PORT` in the repo root; yields its URL once the page answers, stops it afterwards."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    env = {key: value for key, value in os.environ.items() if key != "MEMDEMO_CONCURRENCY"}
    env["GRADIO_ANALYTICS_ENABLED"] = "False"
    log_path = tmp_path_factory.mktemp("app") / "app.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "app.py", "--port", str(port)], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if process.poll() is not None:
                pytest.fail(f"app.py exited with {process.returncode}:\n{log_path.read_text(errors='replace')}")
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"app.py did not answer in {START_TIMEOUT} s:\n{log_path.read_text(errors='replace')}")
            time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def browser():
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    yield driver
    driver.quit()


def block(label: str) -> str:
    """XPath of the Gradio component block whose label reads `label`."""
    return (
        f"//label[@data-testid='block-label'][normalize-space()='{label}']"
        "/ancestor::div[contains(concat(' ', normalize-space(@class), ' '), ' block ')][1]"
    )


RESULTS = ["Baseline (CFG)", "Mitigated (same seed)", "‖ε_c − ε_u‖ per step", "σ_t per step"]


def run_finished(driver) -> bool:
    """Both result images and both plots show an <img> with a source, and the run summary is in the page."""
    try:
        for label in RESULTS:
            images = driver.find_elements(By.XPATH, block(label) + "//img[@src]")
            if not any(image.get_attribute("src") for image in images):
                return False
        summaries = driver.find_elements(By.CSS_SELECTOR, "[data-testid='markdown']")
        return any("steps in" in summary.text for summary in summaries)
    except StaleElementReferenceException:  # the page re-renders while frames stream in
        return False


def test_clicking_an_example_runs_the_demo_and_shows_images_and_plots(server, browser, tmp_path):
    browser.get(server)
    first_example = (By.CSS_SELECTOR, "[data-testid='dataset-cell-0-0']")  # the examples table's row 0, column 0
    first = WebDriverWait(browser, 60).until(expected_conditions.element_to_be_clickable(first_example))
    assert "rescue worker" in first.text
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'});", first)
    first.click()

    WebDriverWait(browser, RUN_TIMEOUT, poll_frequency=0.5).until(
        run_finished, message=f"no images, plots and summary {RUN_TIMEOUT} s after clicking the first example"
    )
    prompt = browser.find_element(By.XPATH, "//textarea[@data-testid='textbox']")
    assert "rescue worker" in prompt.get_attribute("value")

    # Grow the window to the page's height so the screenshot holds the whole page, then capture it from the top.
    page_height = "return Math.max(document.body.scrollHeight, document.documentElement.scrollHeight)"
    height = browser.execute_script(page_height)
    browser.set_window_size(WIDTH, max(int(height) + 100, 800))
    browser.execute_script("window.scrollTo(0, 0);")
    screenshot = Path(os.environ.get("MEMDEMO_SCREENSHOT", tmp_path / "screenshot.png"))
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    assert browser.save_screenshot(str(screenshot))
    assert screenshot.stat().st_size > 50_000
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
