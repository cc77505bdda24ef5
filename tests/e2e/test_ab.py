"""A release's A/B phase on the real stack: traffic through the gateway's live split, sticky by user (an x-user-id
header), ground truth landed as feedback files and joined by request id, the statistics deciding at each look on
the virtual clock.

Outcomes are simulated: for each answered request the test writes a label that agrees with the answer with the
arm's chance (the challenger's and the champion's), which is what "the challenger is truly better" means to an
experiment. One champion, two challengers: truly better (shipped), and one whose assignment is broken (half the
champion's labels lost: halted). A truly equal challenger (inconclusive at the planned size: the champion stays),
a worse one and a failing guardrail run in-process with the same statistics (tests/unit/orchestrators/
test_release_ab.py): each challenger here costs a retrain, and the suite's time is budgeted."""

from __future__ import annotations

import random
import uuid
from typing import Any

import pytest
from browser import bar_heights, screenshot, shows
from selenium.webdriver.common.by import By
from stacklab import Lab

from cli.sampledata import scoring_rows

MODEL = "abtest"  # tests/e2e/policies/abtest.yaml: 50/50 by user, min_effect 0.15, 450 units planned, looks every 5 min
PER_LOOK = 150
REPEAT = 0.1  # the share of requests from the user before (sticky: the same arm, and not a new unit)


def _score(lab: Lab, row: dict[str, Any], request_id: str, user: str) -> tuple[Any, str]:
    resp = lab.http.post(f"{lab.info.gateway_url}/endpoints/{MODEL}/score", json={"input_data": [row]},
                         headers={"x-gateway-key": lab.info.gateway_key, "x-request-id": request_id,
                                  "x-user-id": user}, timeout=30)
    resp.raise_for_status()
    return resp.json()["predictions"][0], resp.headers["azureml-model-deployment"]


def _labelled(lab: Lab, name: str) -> bool:
    detail = lab.http.get(f"{lab.info.devhost_url}/api/models/{MODEL}",
                          headers={"x-functions-key": lab.info.function_key}, timeout=30).json()
    return any(f["source"].endswith(name) and f["status"] == "kept" for f in detail["performance"]["feedback"])


def _experiment(lab: Lab, version: str, right: dict[str, float], labels_kept: dict[str, float]) -> dict[str, Any]:
    """Drive the release of ``version``: at each A/B look, PER_LOOK requests and their simulated labels."""
    rng = random.Random(int(version))
    looked: set[str] = set()
    served: dict[str, set[str]] = {}  # user -> the deployments that answered them

    def each_look(stage: str | None, custom: dict[str, Any]) -> bool:
        if stage != "a/b":
            return False
        until = next(s["detail"].get("bake_until") for s in custom["stages"] if s["name"] == "a/b")
        if not until or until in looked:
            return True
        looked.add(until)
        lines = ["request_id,label"]
        user = ""
        for row in scoring_rows(PER_LOOK, seed=rng.randrange(10_000)):
            request_id = uuid.UUID(int=rng.getrandbits(128), version=4).hex
            user = user if user and rng.random() < REPEAT else f"user-{rng.getrandbits(48):x}"
            answer, deployment = _score(lab, row, request_id, user)
            served.setdefault(user, set()).add(deployment)
            arm = "challenger" if deployment.endswith(f"-v{version}") else "champion"
            label = int(answer) if rng.random() < right[arm] else 1 - int(answer)
            if rng.random() < labels_kept[arm]:
                lines.append(f"{request_id},{label}")
        name = f"look-v{version}-{len(looked)}.csv"
        lab.land("feedback", f"{MODEL}/{name}", ("\n".join(lines) + "\n").encode())
        lab.wait(lambda: _labelled(lab, name), timeout=60, what=f"the labels of {name}")
        lab.advance(301)  # the look's timer
        return True

    final = lab.drive_release(lab.release_of(MODEL, version)["instanceId"], MODEL, each_look)
    stage = next(s for s in final["customStatus"]["stages"] if s["name"] == "a/b")
    return {"status": final, "report": stage["detail"]["experiment"], "looks": stage["detail"]["looks"],
            "served": served}


@pytest.mark.timeout(900)  # three retrains and two experiments: it has taken more than 300 s under the suite's load
def test_the_statistics_ship_a_better_challenger_and_halt_a_broken_split(lab: Lab, browser: Any) -> None:
    lab.land_and_promote(MODEL, "v1.csv", 41)
    every = {"champion": 1.0, "challenger": 1.0}

    better = lab.land_and_register(MODEL, "v2.csv", 42)
    shipped = _experiment(lab, better, {"champion": 0.6, "challenger": 0.85}, every)
    assert shipped["report"]["decision"] == "ship", shipped["report"]
    assert shipped["status"]["output"]["verdict"] == "promoted"
    assert shipped["report"]["lower"] > 0 and shipped["report"]["unmatched_labels"] == 0
    # sticky by user (the policy's unit_header): each user was answered by one arm, and counted once
    assert all(len(deployments) == 1 for deployments in shipped["served"].values())
    assert shipped["report"]["unit"] == "header x-user-id" and shipped["report"]["crossed_units"] == 0
    assert shipped["report"]["repeat_labels"] > 0
    assert lab.gateway.get_traffic(MODEL).traffic == {f"{MODEL}-v1": 0, f"{MODEL}-v{better}": 100}

    broken = lab.land_and_register(MODEL, "v3.csv", 43)
    halted = _experiment(lab, broken, {"champion": 0.7, "challenger": 0.7}, {"champion": 0.5, "challenger": 1.0})
    assert halted["report"]["decision"] == "halt_srm" and halted["report"]["srm_p_value"] < 0.001, halted["report"]
    assert "sample ratio mismatch" in halted["status"]["output"]
    assert lab.gateway.get_traffic(MODEL).traffic[f"{MODEL}-v{better}"] == 100

    # the dashboard's run view reports each experiment's last look: the decision, both arms, the unit
    url = f"{lab.info.devhost_url}/api/dashboard?code={lab.info.function_key}"
    for run, decision in ((shipped, "ship"), (halted, "halt_srm")):
        browser.get(f"{url}#run={run['status']['instanceId']}")
        report = shows(browser, f"#ab-report [data-decision='{decision}']")[0]
        assert run["report"]["reason"] in report.text
        text = browser.find_element(By.ID, "ab-report").text
        arms = run["report"]["arms"]
        assert f"champion (A) {arms['A']['n']} units" in text and f"challenger (B) {arms['B']['n']} units" in text
        assert f"{run['report']['units']} of {run['report']['planned_units']} planned units" in text
        assert browser.find_element(By.CSS_SELECTOR, "#ab-report [data-unit]").get_attribute(
            "data-unit") == "header x-user-id"
        assert f"users answered by both arms {run['report']['crossed_units']}" in text
        # the traffic chart draws the A/B split (50/50) at once (not the chart's zero first frame), and on screen
        # as tall as drawn (no stylesheet overrides a bar's height)
        ab_bars = [bar_heights(browser, f"#traffic-chart svg g.dataset-bars.dataset-{arm} rect")[0] for arm in (0, 1)]
        assert all(attribute > 0 and abs(attribute - seen) < 1 for attribute, seen in ab_bars), ab_bars
    screenshot(browser, "#ab-panel", "dashboard-ab-report.png")
