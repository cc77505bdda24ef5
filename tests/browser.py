"""Pages in a real headless Chromium (Debian's chromium + chromium-driver, driven by Selenium): starting it, and
reading what a page drew. The e2e ``browser`` fixture (tests/e2e/conftest.py) and devhost's monitor-page test
are built on ``chromium``."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By

OUTPUT = Path(__file__).resolve().parents[1] / "test-output"
CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")


@contextmanager
def chromium(user_data_dir: Path, window: str = "1400,900") -> Iterator[Any]:
    """Headless Chromium from the distribution, never a downloaded browser, keeping the page's console log (to see
    CSP violations); quit when the block ends."""
    if not (CHROMIUM and DRIVER):
        pytest.fail("chromium and chromedriver are required (./dev setup installs Debian's chromium and "
                    "chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--window-size={window}", f"--user-data-dir={user_data_dir}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=DRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def click_when_fresh(driver: Any, selector: str, attempts: int = 20) -> None:
    """Click the element `selector` names, looking it up again if a refresh replaced it meanwhile."""
    for _ in range(attempts):
        try:
            driver.find_element(By.CSS_SELECTOR, selector).click()
            return
        except StaleElementReferenceException:
            time.sleep(0.1)
    raise AssertionError(f"{selector} kept being replaced; could not click it")


def chart_config(driver: Any, selector: str) -> dict[str, Any]:
    """What the page gave the chart library for the chart at ``selector`` (it keeps it on the element)."""
    raw = driver.find_element(By.CSS_SELECTOR, selector).get_attribute("data-drawn")
    return json.loads(raw) if raw else {}


def bar_heights(driver: Any, selector: str) -> list[tuple[float, float]]:
    """(height attribute, height drawn on screen) of each SVG rect ``selector`` names. A stylesheet can override the
    attribute (a CSS ``height`` on a rect wins over its own), so a check of what people see reads both."""
    script = ("return [...document.querySelectorAll(arguments[0])]"
              ".map(r => [Number(r.getAttribute('height')), r.getBoundingClientRect().height])")
    return [(float(a), float(b)) for a, b in driver.execute_script(script, selector)]


def shows(driver: Any, selector: str, minimum: int = 1) -> Any:
    """The elements ``selector`` names once there are at least ``minimum`` of them (the page refreshes every 2 s)."""
    def found() -> Any:
        try:
            items = driver.find_elements(By.CSS_SELECTOR, selector)
            return items if len(items) >= minimum else None
        except StaleElementReferenceException:
            return None
    for _ in range(120):  # bounded: about 30 s
        items = found()
        if items:
            return items
        time.sleep(0.25)
    raise AssertionError(f"the page never showed {minimum} of {selector}")


def screenshot(driver: Any, selector: str, name: str) -> None:
    """A screenshot of the view ``selector`` names (docs/operator.md shows them), the whole view in a tall window."""
    driver.set_window_size(1400, 1900)
    driver.execute_script("document.querySelector(arguments[0]).scrollIntoView({block: 'start'})", selector)
    time.sleep(0.3)  # the scroll settles before the capture
    OUTPUT.mkdir(exist_ok=True)
    driver.save_screenshot(str(OUTPUT / name))
    driver.set_window_size(1400, 900)
