"""The dashboard in a real headless Chromium (Debian's chromium + chromium-driver, driven by Selenium).

A stack with a signed-in local operator (as `mlops up` runs it) serves the page; the test
watches a run move through its stages, sees the traffic bar change, clicks Approve (with its
confirmation), and saves a screenshot under test-output/.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser import OUTPUT, bar_heights, chart_config, click_when_fresh, screenshot, shows
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from stacklab import Lab, running_stack

from cli.sampledata import generate, scoring_rows, to_csv_bytes
from cli.stack import LOCAL_OPERATOR

POLICIES = Path(__file__).parent / "policies"


@pytest.fixture(scope="module")
def operator_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """A stack where devhost signs API calls in as a local operator (no App Service auth locally)."""
    with running_stack(tmp_path_factory.mktemp("ui-stack"), POLICIES, extra_env=LOCAL_OPERATOR) as lab:
        yield lab


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


# -- the pictures, from a real release -------------------------------------------------------------------
CANARY = "canary"  # tests/e2e/policies/canary.yaml: shadow 20 %, then 10 -> 50 -> 100 %
JUDGE = "judge"  # tests/e2e/policies/judge.yaml: performance on ground truth
VIEWER = base64.b64encode(json.dumps({"auth_typ": "aad", "name_typ": "name", "role_typ": "roles", "claims": [
    {"typ": "name", "val": "viewer"}]}).encode()).decode()  # signed in, without the operator role


def test_a_releases_pictures_are_drawn_from_its_run_and_the_model_view_acts(operator_lab: Lab, browser: Any) -> None:
    driver, lab = browser, operator_lab
    lab.land_and_register(CANARY, "v1.csv", 1)
    lab.finished(lab.release_of(CANARY, "1")["instanceId"])
    v2 = lab.land_and_register(CANARY, "v2.csv", 2)
    release = lab.drive_release(lab.release_of(CANARY, v2)["instanceId"], CANARY)
    assert release["output"]["verdict"] == "promoted", release["output"]
    url = f"{lab.info.devhost_url}/api/dashboard?code={lab.info.function_key}"

    # the release: traffic at each stage (stacked: champion, candidate, shadow copy), from the run's own record
    driver.get(f"{url}#run={release['instanceId']}")
    bars = shows(driver, "#traffic-chart svg g.dataset-bars rect", 3 * 4)
    assert len(bars) == 3 * 4  # three datasets over shadow and the three canary steps
    drawn = chart_config(driver, "#traffic-chart")
    assert [d["values"] for d in drawn["data"]["datasets"]] == [[100, 90, 50, 0], [0, 10, 50, 100], [20, 0, 0, 0]]
    assert drawn["data"]["labels"] == ["shadow ✔", "canary 10% ✔", "canary 50% ✔", "canary 100% ✔"]
    candidate = driver.find_elements(By.CSS_SELECTOR, "#traffic-chart svg g.dataset-bars.dataset-1 rect")
    heights = [float(r.get_attribute("height")) for r in candidate]
    assert heights[0] < heights[1] < heights[2] < heights[3], heights  # 0 -> 10 -> 50 -> 100 % drawn so
    # and drawn so on screen: no stylesheet overrides a bar's height (the page's own .bar once did)
    drawn_bars = bar_heights(driver, "#traffic-chart svg g.dataset-bars rect")
    assert all(abs(attribute - seen) < 1 for attribute, seen in drawn_bars), drawn_bars
    # health: each analysed step's four checks against the threshold line
    shows(driver, "#health-chart svg g.dataset-bars rect", 4 * 3)
    health = chart_config(driver, "#health-chart")
    assert health["data"]["labels"] == ["shadow", "canary 10%", "canary 50%"]
    assert [d["name"] for d in health["data"]["datasets"]] == ["error_rate", "refused_requests", "p95_latency_ratio",
                                                               "prediction_shift"]
    assert "threshold" in driver.find_element(By.CSS_SELECTOR, "#health-chart svg .y-markers").text
    stages = [s for s in release["customStatus"]["stages"] if s["name"] in health["data"]["labels"]]
    latency = [next(c for c in s["detail"]["analysis"]["checks"] if c["name"] == "p95_latency_ratio") for s in stages]
    assert health["data"]["datasets"][2]["values"] == [round(c["value"] / c["threshold"], 3) for c in latency]
    # the timeline: a bar per stage, the activities and the bake timers in them
    assert len(shows(driver, "#timeline .row", 7)) == len(release["customStatus"]["stages"])
    assert len(driver.find_elements(By.CSS_SELECTOR, "#timeline .timer")) >= 4  # one bake timer per bake at least
    assert driver.find_elements(By.CSS_SELECTOR, "#timeline .activity[data-activity='set_traffic']")
    screenshot(driver, "#run-detail", "dashboard-release.png")

    # the retrain: candidate against champion on the gated metric, with the gate's bound drawn
    retrain = next(i for i in lab.instances(f"retrain-{CANARY}-") if i["output"]["version"] == v2)
    driver.get(f"{url}#run={retrain['instanceId']}")
    shows(driver, "#gate-charts [data-metric='accuracy_score'] svg g.dataset-bars rect", 2)
    gate = chart_config(driver, "#gate-charts [data-metric='accuracy_score']")
    gates = retrain["customStatus"]["gates"]
    assert gate["data"]["labels"] == ["candidate", "champion"]
    assert gate["data"]["datasets"][0]["values"] == [gates[0]["value"], next(g["champion_value"] for g in gates
                                                                           if g["champion_value"] is not None)]
    assert sorted(m["value"] for m in gate["data"]["yMarkers"]) == sorted(g["threshold"] for g in gates)
    assert "≥" in driver.find_element(By.CSS_SELECTOR, "#gate-charts svg .y-markers").text
    assert shows(driver, "#lineage [data-tag='data_url']")
    screenshot(driver, "#run-detail", "dashboard-retrain-gates.png")

    # the monitor's drift check on live traffic, each tick kept, whether it drifted or not
    def drift_ticks() -> list[dict[str, Any]] | None:  # a line needs two points of v2 (v1's came during the release)
        figures = lab.model_detail(CANARY)["drift"]["figures"]
        return figures if sum(f["version"] == v2 for f in figures) >= 2 and figures[-1]["version"] == v2 else None

    lab.traffic(CANARY, 60)
    ticks = lab.wait(drift_ticks, timeout=120, what="the monitor's drift figures",
                     tick=lambda: lab.advance(10))  # monitor ticks (every 10 s on the virtual clock)
    assert ticks[-1]["version"] == v2 and not ticks[-1]["drifted"] and ticks[-1]["rows"] >= 40, ticks[-1]
    features = sorted(ticks[-1]["features"])
    assert {"f0", "segment"} <= set(features), features

    # the model: versions with their aliases and what serves them; each feature's drift over time against its
    # threshold; Roll back acts, asks why, is audited
    driver.get(f"{url}#model={CANARY}")
    shows(driver, "#versions tr[data-version]", 2)
    shows(driver, "#drift-chart svg .line-graph-path", len(features))
    drift = chart_config(driver, "#drift-chart")
    assert [d["name"] for d in drift["data"]["datasets"]] == features
    assert drift["data"]["yMarkers"] == [{"label": "threshold", "value": 1}]
    first = ticks[0]["features"][features[0]]
    assert drift["data"]["datasets"][0]["values"][0] == pytest.approx(first["value"] / first["threshold"], abs=1e-3)
    assert "no feature drifts now" in driver.find_element(By.ID, "drift-notes").text
    assert "no monitoring.performance section" in driver.find_element(By.ID, "performance-notes").text
    assert driver.find_element(By.CSS_SELECTOR, f"#versions tr[data-version='{v2}'] [data-alias='champion']")
    assert driver.find_element(By.CSS_SELECTOR, "#versions tr[data-version='1'] [data-alias='previous']")
    assert f"{CANARY}-v{v2} 100%" in driver.find_element(By.CSS_SELECTOR, f"#versions tr[data-version='{v2}']").text
    screenshot(driver, "#model-detail", "dashboard-model.png")
    click_when_fresh(driver, "#model-actions button[data-model-act='rollback']")
    driver.switch_to.alert.accept()
    prompt = driver.switch_to.alert
    prompt.send_keys("rolled back from the model view")
    prompt.accept()
    rollback = lab.finished(f"rollback-{CANARY}-")[0]
    assert rollback["runtimeStatus"] == "Completed"
    audit = json.loads(lab.http.get(f"{lab.info.devhost_url}/api/audit",
                                    headers={"x-functions-key": lab.info.function_key}, timeout=30).text)["audit"]
    assert (audit[0]["what"], audit[0]["target"], audit[0]["why"]) == ("rollback", CANARY,
                                                                       "rolled back from the model view")

    # signed in without the operator role: the same button is refused, the page says why, nothing changes
    driver.execute_cdp_cmd("Network.enable", {})
    driver.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": {"X-MS-CLIENT-PRINCIPAL": VIEWER}})
    try:
        driver.get(f"{url}#model={CANARY}")
        click_when_fresh(driver, "#model-actions button[data-model-act='rollback']")
        driver.switch_to.alert.accept()
        driver.switch_to.alert.accept()  # the reason prompt, left empty
        error = lab.wait(lambda: driver.find_element(By.ID, "action-error").text, timeout=30, what="the refusal")
        assert error.startswith("rollback failed:") and "mlops.operator" in error, error
        assert len(lab.instances(f"rollback-{CANARY}-")) == 1  # no second rollback was started
    finally:
        driver.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": {}})


def test_the_model_view_draws_the_champions_metric_on_ground_truth_over_time(operator_lab: Lab, browser: Any) -> None:
    """tests/e2e/policies/judge.yaml: performance on ground truth; the labels here agree with every answer."""
    driver, lab = browser, operator_lab
    lab.land_and_promote(JUDGE, "one.csv", 31)
    lab.idle(JUDGE)
    answered = {f"seen-{i}": lab.score_as(JUDGE, [row], f"seen-{i}")[0] for i, row in
                enumerate(scoring_rows(25, seed=8))}
    lab.land("feedback", f"{JUDGE}/labels.csv",
             ("request_id,label\n" + "".join(f"{rid},{int(p)}\n" for rid, p in answered.items())).encode())
    def two_figures() -> list[dict[str, Any]] | None:  # a line needs two points
        figures = [f for f in lab.model_detail(JUDGE)["performance"]["figures"] if f["value"] is not None]
        return figures if len(figures) >= 2 else None

    figures = lab.wait(two_figures, timeout=120, what="the monitor's performance figures",
                       tick=lambda: lab.advance(10))  # monitor ticks (every 10 s on the virtual clock)
    first = figures[0]
    assert (first["metric"], first["value"], first["matched"], first["degraded"]) == ("accuracy_score", 1.0, 25,
                                                                                      False)

    driver.get(f"{lab.info.devhost_url}/api/dashboard?code={lab.info.function_key}#model={JUDGE}")
    shows(driver, "#performance-chart svg .line-graph-path")
    drawn = chart_config(driver, "#performance-chart")
    assert [d["name"] for d in drawn["data"]["datasets"]] == ["accuracy_score"]
    assert drawn["data"]["datasets"][0]["values"][0] == first["value"]
    assert drawn["data"]["yMarkers"] == [{"label": "at registration", "value": first["registered"]}]
    notes = driver.find_element(By.ID, "performance-notes").text
    assert notes.startswith("✔ within bounds: accuracy_score 1.00 on 25 labels"), notes
    screenshot(driver, "#model-detail", "dashboard-model-performance.png")
