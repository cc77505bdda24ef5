"""devhost's monitor page (GET /admin/devhost/monitor) in a real headless Chromium over a real devhost.

Debian's chromium + chromium-driver, driven by Selenium, as tests/e2e/test_dashboard.py does; the
screenshot goes to test-output/devhost-monitor.png.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from browser import chromium
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

from devhost.testing import DevHostProcess

APP = Path(__file__).resolve().parents[1] / "apps" / "monitor" / "function_app.py"
OUTPUT = Path(__file__).resolve().parents[3] / "test-output"
ROUTE = "/admin/devhost/monitor"
# showHistory's events that the page draws as bars, by the kind of bar (docs/devhost.md, "Monitor page").
BAR_KIND = {"TaskCompleted": "activity", "TaskFailed": "activity", "TaskScheduled": "activity",
            "TimerCreated": "timer", "EventRaised": "event",
            "SubOrchestrationInstanceCompleted": "suborchestration",
            "SubOrchestrationInstanceFailed": "suborchestration",
            "SubOrchestrationInstanceCreated": "suborchestration"}


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Headless Chromium from the distribution (tests/browser.py), its console log kept to see CSP violations."""
    with chromium(tmp_path_factory.mktemp("chromium"), window="1500,1000") as driver:
        yield driver


def _until(what: str, check: Callable[[], Any], timeout: float = 20) -> Any:
    """``check()``'s first truthy answer, polled (bounded); a re-rendered element just means: look again."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return last
        except StaleElementReferenceException:
            pass
        time.sleep(0.1)
    raise AssertionError(f"the page never showed {what}; last seen: {last!r}")


def _rows(driver: Any) -> set[str]:
    return {r.get_attribute("data-instance") for r in driver.find_elements(By.CSS_SELECTOR, "#instances tbody tr")}


def _bars(driver: Any) -> Counter[str]:
    return Counter(b.get_attribute("data-kind") for b in driver.find_elements(By.CSS_SELECTOR, "#timeline .bar"))


def _expected_bars(host: DevHostProcess, instance_id: str) -> Counter[str]:
    history = host.status(instance_id, showHistory="true")["historyEvents"]  # type: ignore[index]
    return Counter(BAR_KIND[e["EventType"]] for e in history if e["EventType"] in BAR_KIND)


def _click(driver: Any, selector: str) -> None:
    def clicked() -> bool:
        driver.find_element(By.CSS_SELECTOR, selector).click()
        return True
    _until(f"a clickable {selector}", clicked)


def _type(driver: Any, element_id: str, text: str) -> None:
    box = driver.find_element(By.ID, element_id)
    box.clear()
    box.send_keys(text)


def _confirm(driver: Any, selector: str) -> str:
    """Click ``selector`` and accept the confirmation it asks for; the question asked."""
    _click(driver, selector)
    alert = WebDriverWait(driver, 10).until(expected_conditions.alert_is_present())
    question = str(alert.text)
    alert.accept()
    return question


def _filter(driver: Any, *, prefix: str = "", name: str = "", statuses: tuple[str, ...] = ()) -> None:
    driver.find_element(By.ID, "clear").click()
    _type(driver, "f-prefix", prefix)
    _type(driver, "f-name", name)
    for status in statuses:
        driver.find_element(By.CSS_SELECTOR, f"#f-status input[value='{status}']").click()
    driver.find_element(By.ID, "apply").click()


def _open(driver: Any, instance_id: str) -> None:
    _click(driver, f"#instances tbody tr[data-instance='{instance_id}']")
    _until(f"the detail of {instance_id}",
           lambda: driver.find_element(By.ID, "detail").get_attribute("data-instance") == instance_id)


def _shows_status(driver: Any, status: str) -> None:
    _until(f"the open instance {status}",
           lambda: driver.find_element(By.ID, "detail").get_attribute("data-status") == status)


def _message(driver: Any, state: str, text: str) -> str:
    """Wait for the message line to say ``text`` as ``state`` (ok / error); what it says."""
    def shown() -> str:
        box = driver.find_element(By.ID, "message")
        said = str(box.text) if box.get_attribute("data-state") == state else ""
        return said if text in said else ""
    return str(_until(f"the {state} message {text!r}", shown))


def test_monitor_lists_filters_draws_the_history_and_acts_on_instances(
        devhost_factory: Callable[..., DevHostProcess], browser: Any) -> None:
    host = devhost_factory(APP)
    driver = browser
    tag = uuid.uuid4().hex[:6]
    approve, stop, done, broken = f"rel-{tag}-approve", f"rel-{tag}-stop", f"hello-{tag}", f"breaks-{tag}"
    markup = "<b>v1</b><img src=x onerror=alert(1)>"
    for iid in (approve, stop):
        host.start_orchestration("release", {"name": markup}, instance_id=iid)
    host.start_orchestration("hello", "ann", instance_id=done)
    host.start_orchestration("breaks", None, instance_id=broken)
    assert host.wait_for(done)["runtimeStatus"] == "Completed"
    assert host.wait_for(broken)["runtimeStatus"] == "Failed"
    for iid in (approve, stop):  # past the activity and the timer, waiting for Approval
        host.wait_for(iid, until=lambda s: (s.get("customStatus") or {}).get("stage") == "waiting for approval")

    driver.get(host.base_url + ROUTE)
    _until("all four instances", lambda: {approve, stop, done, broken} <= _rows(driver))

    _filter(driver, statuses=("Completed", "Failed"))
    assert _until("only the finished ones", lambda: _rows(driver) == {done, broken} and _rows(driver))
    _filter(driver, prefix=f"rel-{tag}-")
    assert _until("only the releases", lambda: _rows(driver) == {approve, stop} and _rows(driver))
    _filter(driver, name="hell")  # the API has no name filter: the page filters on the function name itself
    assert _until("only hello", lambda: _rows(driver) == {done} and _rows(driver))
    _filter(driver)

    _open(driver, approve)
    assert _until("the timeline so far", lambda: _bars(driver)) == _expected_bars(host, approve) == Counter(
        {"activity": 1, "timer": 1})
    shown_input = driver.find_element(By.ID, "d-input").text
    assert "<b>v1</b><img src=x onerror=alert(1)>" in shown_input  # shown as text, not markup
    assert not driver.find_elements(By.CSS_SELECTOR, "#detail b, #detail img")
    assert "waiting for approval" in driver.find_element(By.ID, "d-custom").text

    _type(driver, "a-event", "Approval")
    _type(driver, "a-data", '{"by": "ann"}')
    assert "Approval" in _confirm(driver, "button[data-action='raise']")
    _message(driver, "ok", f'event "Approval" sent to {approve}')
    driver.find_element(By.ID, "auto").click()  # auto-refresh on: the page follows the instance to the end
    _shows_status(driver, "Completed")
    assert host.status(approve)["output"]["approval"] == {"by": "ann"}  # type: ignore[index]
    expected = _expected_bars(host, approve)
    assert expected == Counter({"activity": 2, "timer": 1, "event": 1, "suborchestration": 1})
    assert _until("the whole timeline", lambda: _bars(driver) == expected and _bars(driver))
    bars = driver.find_elements(By.CSS_SELECTOR, "#timeline .bar")
    by_kind = {b.get_attribute("data-kind"): b for b in bars}
    assert by_kind["event"].get_attribute("data-name") == "Approval"
    assert by_kind["suborchestration"].get_attribute("data-name") == "notify"
    child = next(e for e in host.status(approve, showHistory="true")["historyEvents"]  # type: ignore[index]
                 if e["EventType"] == "SubOrchestrationInstanceCompleted")
    assert by_kind["suborchestration"].get_attribute("data-start") == child["ScheduledTime"] != child["Timestamp"]
    assert by_kind["timer"].get_attribute("data-outcome") == "fired"
    assert [b.get_attribute("data-name") for b in bars if b.get_attribute("data-kind") == "activity"] == [
        "prepare", "publish"]
    assert {b.get_attribute("data-outcome") for b in bars} == {"completed", "fired", "received"}
    _until("the list following along", lambda: driver.find_element(
        By.CSS_SELECTOR, f"#instances tbody tr[data-instance='{approve}']").get_attribute("data-status") == "Completed")
    OUTPUT.mkdir(exist_ok=True)
    driver.save_screenshot(str(OUTPUT / "devhost-monitor.png"))

    _open(driver, stop)
    assert "cannot be undone" in _confirm(driver, "button[data-action='purge']")  # still running: refused
    said = _message(driver, "error", "only finished instances can be purged")  # the API's own message
    assert said.startswith(f"purge {stop} failed: HTTP 409")
    assert host.status(stop) is not None
    for action, status in (("suspend", "Suspended"), ("resume", "Running")):
        _confirm(driver, f"button[data-action='{action}']")
        _shows_status(driver, status)
        assert host.status(stop)["runtimeStatus"] == status  # type: ignore[index]
    _type(driver, "a-reason", "stopped from the monitor")
    assert "stopped from the monitor" in _confirm(driver, "button[data-action='terminate']")
    _shows_status(driver, "Terminated")
    assert host.status(stop)["output"] == "stopped from the monitor"  # type: ignore[index]

    _open(driver, broken)
    assert _until("a failed activity bar", lambda: [b.get_attribute("data-outcome") for b in
                                                    driver.find_elements(By.CSS_SELECTOR, "#timeline .bar")]) == [
        "failed"]

    _open(driver, done)
    _confirm(driver, "button[data-action='purge']")
    _message(driver, "ok", f"{done} purged")
    assert host.status(done) is None
    _until("the purged instance gone from the list", lambda: done not in _rows(driver) and approve in _rows(driver))
    assert driver.find_element(By.ID, "detail").get_attribute("hidden") is not None

    blocked = [e["message"] for e in driver.get_log("browser") if "Content Security Policy" in e["message"]]
    assert not blocked, blocked


def test_with_enable_auth_the_page_needs_the_master_key_and_sends_it(
        devhost_factory: Callable[..., DevHostProcess], browser: Any) -> None:
    host = devhost_factory(APP, enable_auth=True)
    url = host.base_url + ROUTE
    assert requests.get(url, timeout=10).status_code == 401
    assert requests.get(url, params={"code": host.system_key}, timeout=10).status_code == 401  # admin: master only
    page = requests.get(url, params={"code": host.master_key}, timeout=10)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    csp = page.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "connect-src 'self'" in csp and "unsafe-inline" not in csp
    assert page.headers["Referrer-Policy"] == "no-referrer"
    iid = host.start_orchestration("hello", "bob", instance_id=f"auth-{uuid.uuid4().hex[:6]}")
    host.wait_for(iid)

    browser.get(f"{url}?code={host.master_key}")  # the page calls the Durable API with the key it was given
    _until("the instance", lambda: iid in _rows(browser))
    _open(browser, iid)
    assert _until("its activity", lambda: _bars(browser)) == Counter({"activity": 1})
