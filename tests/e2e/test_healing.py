"""What a drift event does per ``monitoring.on_drift``.

``rollback_and_retrain`` rolls back, then retrains on the newest data; ``retrain`` keeps the
champion and only retrains.
"""

from __future__ import annotations

from stacklab import Lab, drift_event, run_input


def test_drift_rollback_then_retrains_on_the_newest_data(lab: Lab) -> None:
    model = "healer"
    lab.land_and_promote(model, "one.csv", 11)
    lab.land_and_promote(model, "two.csv", 12)
    lab.idle(model)
    retrains = {i["instanceId"] for i in lab.instances(f"retrain-{model}-")}
    assert lab.publish([drift_event(model, "2")]).status_code == 200
    rollback = lab.finished(f"rollback-{model}-")[0]
    assert rollback["output"]["verdict"] == "rolled back" and rollback["output"]["retrain"] is True
    fresh = lab.wait(lambda: next((i for i in lab.instances(f"retrain-{model}-") if i["instanceId"] not in retrains),
                                  None), what="the retrain after the rollback")
    assert run_input(fresh)["data"]["url"].endswith(f"/landing/{model}/two.csv")
    assert lab.finished(fresh["instanceId"])[0]["runtimeStatus"] == "Completed"


def test_drift_with_on_drift_retrain_keeps_the_champion_and_retrains_on_the_newest_data(lab: Lab) -> None:
    model = "tuner"
    lab.land_and_promote(model, "first.csv", 21)
    lab.land(model, "empty.csv", b"")  # not data (empty) ...
    lab.land(model, "notes.txt", b"f0,label\n1,0\n")  # ... nor this (not an allowed suffix): the retrain skips both
    lab.idle(model)
    retrains = {i["instanceId"] for i in lab.instances(f"retrain-{model}-")}
    assert lab.publish([drift_event(model, "1")]).status_code == 200
    fresh = lab.wait(lambda: next((i for i in lab.instances(f"retrain-{model}-") if i["instanceId"] not in retrains),
                                  None), what="the retrain the drift asked for")
    assert run_input(fresh)["data"]["url"].endswith(f"/landing/{model}/first.csv")
    assert lab.finished(fresh["instanceId"])[0]["runtimeStatus"] == "Completed"
    assert lab.instances(f"rollback-{model}-") == []  # no rollback was started
    overview = lab.http.get(f"{lab.info.devhost_url}/api/models/{model}",
                            headers={"x-functions-key": lab.info.function_key}, timeout=30).json()
    assert overview["incidents"] == []  # the champion was never rolled back
