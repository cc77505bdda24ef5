"""The dashboard in a real headless Chromium (Debian's chromium + chromium-driver, driven by Selenium).

A stack with a signed-in local operator (as `mlops up` runs it) serves the page; the test
watches a run move through its stages, sees the traffic bar change, clicks Approve (with its
confirmation), and saves a screenshot under test-output/.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from stacklab import Lab

from cli.sampledata import generate, to_csv_bytes
from cli.stack import LOCAL_OPERATOR, Stack

POLICIES = Path(__file__).parent / "policies"
OUTPUT = Path(__file__).resolve().parents[2] / "test-output"
CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")


@pytest.fixture(scope="module")
def operator_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """A stack where devhost signs API calls in as a local operator (no App Service auth locally)."""
    stack = Stack(tmp_path_factory.mktemp("ui-stack"), virtual_clock=True, policy_dir=POLICIES,
                  extra_env=LOCAL_OPERATOR, die_with_parent=True)
    info = stack.up()
    try:
        yield Lab(info)
    finally:
        stack.down()


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """Headless Chromium from the distribution, never a downloaded browser."""
    if not (CHROMIUM and DRIVER):
        pytest.fail("chromium and chromedriver are required (./dev setup installs Debian's chromium and "
                    "chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1400,900", f"--user-data-dir={tmp_path_factory.mktemp('chromium')}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=DRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def click_when_fresh(driver: object, selector: str, attempts: int = 20) -> None:
    """Click the element `selector` names, looking it up again if a refresh replaced it meanwhile."""
    for _ in range(attempts):
        try:
            driver.find_element(By.CSS_SELECTOR, selector).click()  # type: ignore[attr-defined]
            return
        except StaleElementReferenceException:
            time.sleep(0.1)
    raise AssertionError(f"{selector} kept being replaced; could not click it")


def test_dashboard_shows_live_stages_and_traffic_and_approves_a_run(operator_lab: Lab, browser: object) -> None:
    driver = browser  # type: ignore[assignment]
    lab = operator_lab
    driver.get(f"{lab.info.devhost_url}/api/dashboard?code={lab.info.function_key}")  # type: ignore[attr-defined]
    lab.land("gated", "ui.csv", to_csv_bytes(generate(400, seed=5)))
    stages_seen: set[str] = set()
    approvable = False
    deadline = time.monotonic() + 180  # bounded; training on a busy 2-core machine can take a minute or more
    while time.monotonic() < deadline:
        try:
            rows = driver.find_elements(By.CSS_SELECTOR, "tr[data-run^='retrain-gated-']")  # type: ignore[attr-defined]
            if rows:
                stages_seen.add(rows[0].get_attribute("data-stage"))
                if rows[0].find_elements(By.CSS_SELECTOR, "button[data-act='approve']"):
                    approvable = True
                    break
        except StaleElementReferenceException:
            pass  # the page re-rendered the row between two calls; look again
        time.sleep(0.25)
    assert approvable, f"no Approve button appeared; stages seen {stages_seen}"
    assert len(stages_seen - {""}) >= 2, f"the stage did not update live: {stages_seen}"
    OUTPUT.mkdir(exist_ok=True)
    driver.save_screenshot(str(OUTPUT / "dashboard-waiting-for-approval.png"))  # type: ignore[attr-defined]
    click_when_fresh(driver, "tr[data-run^='retrain-gated-'] button[data-act='approve']")
    driver.switch_to.alert.accept()  # type: ignore[attr-defined]  # "approve run …?"
    prompt = driver.switch_to.alert  # type: ignore[attr-defined]
    prompt.send_keys("checked in the browser test")
    prompt.accept()
    run = lab.finished("retrain-gated-")[0]
    assert run["runtimeStatus"] == "Completed"
    audit = json.loads(lab.http.get(f"{lab.info.devhost_url}/api/audit",
                                    headers={"x-functions-key": lab.info.function_key}, timeout=30).text)["audit"]
    assert audit[0]["who"] == "local-operator" and audit[0]["why"] == "checked in the browser test"

    def bar_shows_gated() -> bool:
        lab.advance_bakes("gated")  # the release's bake is on the virtual clock
        try:
            bars = driver.find_elements(By.CSS_SELECTOR, "div[data-model='gated'] .bar")  # type: ignore[attr-defined]
            return bool(bars) and "gated-v1" in (bars[0].get_attribute("data-split") or "")
        except StaleElementReferenceException:
            return False  # re-rendered between the two calls; the next poll looks again

    lab.wait(bar_shows_gated, timeout=120, what="the traffic bar to show gated-v1")
    driver.save_screenshot(str(OUTPUT / "dashboard-after-release.png"))  # type: ignore[attr-defined]
