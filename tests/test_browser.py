"""Headless Chromium walks the demo as a new user, at 1400 px and at 420 px: it clicks the first memorized example,
waits for both images, both plots and the summary, checks that each verdict sits under its own image and names the
scorer's τ, and switches the method. Screenshots go to $MEMDEMO_SCREENSHOT_DIR (assets/ refreshes the README's
pictures) or a temporary folder."""

from __future__ import annotations

import json
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

from memdemo.guidance import method_spec

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


RESULTS = ["Baseline (plain CFG)", "Mitigated (same seed)", "d_t = ‖ε_c − ε_u‖ per step", "guide signal σ_t vs λ_t"]
WIDTHS = {"wide": 1400, "narrow": 420}


def run_finished(driver) -> bool:
    """Both result images and both plots show an <img> with a source, and the run summary is in the page."""
    try:
        for label in RESULTS:
            images = driver.find_elements(By.XPATH, block(label) + "//img[@src]")
            if not any(image.get_attribute("src") for image in images):
                return False
        return any("steps in" in text for text in markdown_texts(driver))
    except StaleElementReferenceException:  # the page re-renders while frames stream in
        return False


def markdown_texts(driver) -> list[str]:
    return [element.text for element in driver.find_elements(By.CSS_SELECTOR, "[data-testid='markdown']")]


def first_memorized_example() -> tuple[str, str]:
    """The first memorized example's prompt and the label of the method it was measured with."""
    card = json.loads((REPO / "assets" / "examples.json").read_text(encoding="utf-8"))
    example = next(e for e in card["examples"] if e["group"] == "memorized")
    return example["prompt"], method_spec(example.get("method", card["method"])).label


CHECKED_RADIOS = "return [...document.querySelectorAll('input[type=radio]:checked')].map(i => i.parentNode.innerText)"


def save_page(browser, width: int, name: str, tmp_path: Path) -> Path:
    """Grow the window to the page's height and capture the whole page from the top."""
    page_height = "return Math.max(document.body.scrollHeight, document.documentElement.scrollHeight)"
    browser.set_window_size(width, max(int(browser.execute_script(page_height)) + 100, 800))
    browser.execute_script("window.scrollTo(0, 0);")
    folder = Path(os.environ.get("MEMDEMO_SCREENSHOT_DIR", tmp_path))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    assert browser.save_screenshot(str(path))
    assert path.stat().st_size > 30_000 and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return path


def verdict_below_its_image(browser, label: str) -> bool:
    """The verdict text sits under the image it judges: below it, and horizontally inside its column."""
    image = browser.find_element(By.XPATH, block(label))
    verdict = image.find_element(By.XPATH, "following::*[@data-testid='markdown'][1]")
    a, b = image.rect, verdict.rect
    return b["y"] >= a["y"] + a["height"] - 2 and a["x"] - 2 <= b["x"] <= a["x"] + a["width"]


@pytest.mark.parametrize("layout", list(WIDTHS))
def test_a_memorized_example_shows_the_copy_and_its_verdicts(server, browser, tmp_path, layout):
    width = WIDTHS[layout]
    browser.set_window_size(width, 2200)
    browser.get(server)
    expected, method = first_memorized_example()  # the first example of the first group: "PROMPT · seed N · …"
    first_example = (By.XPATH, f"//button[starts-with(normalize-space(.), '{expected} · seed')]")
    first = WebDriverWait(browser, 60).until(expected_conditions.element_to_be_clickable(first_example))
    assert "Measured:" in first.text
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'});", first)
    first.click()
    WebDriverWait(browser, RUN_TIMEOUT, poll_frequency=0.5).until(
        run_finished, message=f"no images, plots and summary {RUN_TIMEOUT} s after clicking the first example"
    )
    prompt = browser.find_element(By.XPATH, "//textarea[@data-testid='textbox']")
    assert expected in prompt.get_attribute("value")
    assert method in [text.strip() for text in browser.execute_script(CHECKED_RADIOS)]  # the example set it
    texts = markdown_texts(browser)
    assert sum("copydet" in text and "τ =" in text for text in texts) >= 2, texts
    assert any("prompt's own training image" in text for text in texts)
    for label in RESULTS[:2]:
        assert verdict_below_its_image(browser, label), f"the verdict is not under “{label}” at {width} px"
    name = "screenshot.png" if layout == "wide" else "screenshot-narrow.png"
    save_page(browser, width, name, tmp_path)


def test_choosing_another_method_shows_only_its_options(server, browser):
    browser.set_window_size(WIDTHS["wide"], 2200)
    browser.get(server)
    preset = (By.XPATH, "//*[normalize-space(text())='AMG preset']")
    WebDriverWait(browser, 60).until(expected_conditions.visibility_of_element_located(preset))
    dynamic = browser.find_element(By.XPATH, "//label[normalize-space()='Dynamic transition point']")
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'});", dynamic)
    dynamic.click()
    WebDriverWait(browser, 20).until(expected_conditions.invisibility_of_element_located(preset))
    switch = browser.find_elements(By.XPATH, "//*[normalize-space(text())='switch t']")
    assert any(element.is_displayed() for element in switch)
