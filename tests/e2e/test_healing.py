"""A drift rollback with ``on_drift: rollback_and_retrain`` queues a retrain on the newest data."""

from __future__ import annotations

import uuid

from stacklab import Lab, run_input

from mlops.events import APP_DRIFT_EVENT_TYPE
from mlops.sampledata import generate, to_csv_bytes

MODEL = "healer"


def _promoted(lab: Lab, name: str, seed: int) -> None:
    releases = {i["instanceId"] for i in lab.instances(f"release-{MODEL}-")}
    lab.land(MODEL, name, to_csv_bytes(generate(400, seed=seed)))
    lab.wait(lambda: next((i for i in lab.instances(f"release-{MODEL}-") if i["instanceId"] not in releases
                           and i["runtimeStatus"] == "Completed"), None), what=f"the release after {name}")


def test_drift_rollback_then_retrains_on_the_newest_data(lab: Lab) -> None:
    _promoted(lab, "one.csv", 11)
    _promoted(lab, "two.csv", 12)
    lab.idle(MODEL)
    retrains = {i["instanceId"] for i in lab.instances(f"retrain-{MODEL}-")}
    event = {"id": str(uuid.uuid4()), "subject": f"models/{MODEL}:2", "eventType": APP_DRIFT_EVENT_TYPE,
             "eventTime": "2026-11-24T12:00:00Z", "dataVersion": "1.0",
             "data": {"model": MODEL, "version": "2", "features": {"f0": {"statistic": "psi", "value": 0.9,
                                                                          "threshold": 0.2}}}}
    assert lab.publish([event]).status_code == 200
    rollback = lab.finished(f"rollback-{MODEL}-")[0]
    assert rollback["output"]["verdict"] == "rolled back" and rollback["output"]["retrain"] is True
    fresh = lab.wait(lambda: next((i for i in lab.instances(f"retrain-{MODEL}-") if i["instanceId"] not in retrains),
                                  None), what="the retrain after the rollback")
    assert run_input(fresh)["data"]["url"].endswith(f"/landing/{MODEL}/two.csv")
    assert lab.finished(fresh["instanceId"])[0]["runtimeStatus"] == "Completed"
