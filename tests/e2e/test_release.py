"""Lifecycle part 2 end to end: shadow, canary steps, promotion, automatic rollback, abort, drift."""

from __future__ import annotations

import json
import uuid
from typing import Any

from stacklab import Lab, run_input

from adapters.local import LocalPlatform
from mlops.events import APP_DRIFT_EVENT_TYPE

# One scenario on the module's own stack: v1 and v2 promoted, then a failing v3, an aborted v4, a drift rollback
# and two alerts, each test building on the state the one before left (`./dev test` keeps a module's tests
# together, in order, on one worker: --dist loadfile).

MODEL, ENDPOINT = "canary", "canary"
BAKE_STAGES = ("shadow", "canary 10%", "canary 50%", "canary 100%")


def _platform(lab: Lab) -> LocalPlatform:
    return LocalPlatform(lab.info.state_dir + "/mlops", lab.blobs)  # type: ignore[arg-type]


def _release_for(lab: Lab, version: str) -> dict[str, Any]:
    return lab.release_of(MODEL, version)


def _traffic(lab: Lab, n: int, drift: float = 0.0) -> list[str]:
    return lab.traffic(ENDPOINT, n, drift)


def _drive(lab: Lab, iid: str, on_stage: Any = None) -> dict[str, Any]:
    return lab.drive_release(iid, ENDPOINT, on_stage)


def _land_and_register(lab: Lab, name: str, seed: int) -> str:
    return lab.land_and_register(MODEL, name, seed)


def test_healthy_candidate_goes_through_shadow_and_every_canary_step_and_is_promoted(lab: Lab) -> None:
    v1 = _land_and_register(lab, "d1.csv", 1)
    first = lab.finished(_release_for(lab, v1)["instanceId"])[0]
    assert first["output"]["verdict"] == "promoted"
    assert lab.gateway.get_traffic(ENDPOINT).traffic == {f"{MODEL}-v1": 100}

    v2 = _land_and_register(lab, "d2.csv", 2)
    shadow_answers: list[str] = []

    def watch(stage: str | None, custom: dict[str, Any]) -> None:
        if stage == "shadow" and not shadow_answers:
            shadow_answers.extend(_traffic(lab, 40))

    final = _drive(lab, _release_for(lab, v2)["instanceId"], watch)
    assert final["runtimeStatus"] == "Completed" and final["output"]["verdict"] == "promoted"
    live, cand = f"{MODEL}-v1", f"{MODEL}-v{v2}"
    details = {s["name"]: s.get("detail", {}) for s in final["customStatus"]["stages"]}
    # what each stage applied, from the run's own record: sampling the status can miss a short step
    assert [details[f"canary {p}%"]["traffic"] for p in (10, 50, 100)] == [
        {live: 90, cand: 10}, {live: 50, cand: 50}, {live: 0, cand: 100}]
    assert details["shadow"]["mirror"] == {cand: 20}
    # shadow mode never changes what clients get: every answer came from the live deployment
    assert shadow_answers and set(shadow_answers) == {live}
    assert lab.gateway.get_traffic(ENDPOINT).traffic == {live: 0, cand: 100}
    platform = _platform(lab)
    assert platform.get_alias(MODEL, "champion").version == v2  # type: ignore[union-attr]
    assert platform.get_alias(MODEL, "previous").version == "1"  # type: ignore[union-attr]
    stages = {s["name"]: s["state"] for s in final["customStatus"]["stages"]}
    assert set(stages.values()) == {"succeeded"}


def test_failing_candidate_is_rolled_back_at_the_first_bad_step_and_champion_keeps_100(lab: Lab) -> None:
    champion = _platform(lab).get_alias(MODEL, "champion").version  # type: ignore[union-attr]
    v3 = _land_and_register(lab, "d3.csv", 3)
    bad = f"{MODEL}-v{v3}"
    injected: list[bool] = []

    def break_it(stage: str | None, custom: dict[str, Any]) -> None:
        if stage == "shadow" and not injected:
            lab.gateway.inject_faults(ENDPOINT, bad, error_rate=1.0)
            injected.append(True)

    final = _drive(lab, _release_for(lab, v3)["instanceId"], break_it)
    assert final["runtimeStatus"] == "Failed"
    custom = final["customStatus"]
    assert custom["verdict"] == "rolled back" and "error_rate" in custom["message"]
    stages = {s["name"]: s["state"] for s in custom["stages"]}
    assert stages["shadow"] == "failed" and stages["canary 10%"] == "pending"
    assert lab.gateway.get_traffic(ENDPOINT).traffic[f"{MODEL}-v{champion}"] == 100
    assert lab.gateway.get_traffic(ENDPOINT).mirror_traffic == {}
    assert _platform(lab).get_model_version(MODEL, v3).tags["release"] == "rejected"


def test_abort_mid_release_restores_traffic(lab: Lab) -> None:
    champion = _platform(lab).get_alias(MODEL, "champion").version  # type: ignore[union-attr]
    v4 = _land_and_register(lab, "d4.csv", 4)
    iid = _release_for(lab, v4)["instanceId"]
    aborted: list[bool] = []

    def abort_at_canary(stage: str | None, custom: dict[str, Any]) -> bool:
        # the stage is shown before its split is applied: wait for its bake timer, set after the split
        baking = any(s.get("name") == stage and s.get("detail", {}).get("bake_until")
                     for s in custom.get("stages", []))
        if stage == "canary 10%" and baking and not aborted:
            assert (custom.get("traffic") or {}).get("traffic", {}).get(f"{MODEL}-v{v4}") == 10
            lab.durable("POST", f"instances/{iid}/raiseEvent/abort",
                        data=json.dumps({"reason": "operator says stop"})).raise_for_status()
            aborted.append(True)
        return bool(aborted)  # after the abort, the clock stays: the abort ends the bake, not its timer

    final = _drive(lab, iid, abort_at_canary)
    assert aborted and final["runtimeStatus"] == "Failed"
    assert "aborted: operator says stop" in final["customStatus"]["message"]
    assert lab.gateway.get_traffic(ENDPOINT).traffic[f"{MODEL}-v{champion}"] == 100


def test_drifted_traffic_raises_drift_and_rolls_back_to_the_previous_champion(lab: Lab) -> None:
    platform = _platform(lab)
    champion = platform.get_alias(MODEL, "champion").version  # type: ignore[union-attr]
    previous = platform.get_alias(MODEL, "previous").version  # type: ignore[union-attr]
    assert champion != previous

    def rolled_back() -> dict[str, Any] | None:
        _traffic(lab, 60, drift=4.0)
        done = [i for i in lab.instances(f"rollback-{MODEL}-") if i["runtimeStatus"] == "Completed"]
        return done[0] if done else None

    rollback = lab.wait(rolled_back, timeout=180, what="a drift rollback")
    assert rollback["output"]["verdict"] == "rolled back"
    assert rollback["output"]["from_version"] == champion and rollback["output"]["to_version"] == previous
    assert run_input(rollback)["source"] == "monitor" and "drift" in run_input(rollback)["reason"]
    assert platform.get_alias(MODEL, "champion").version == previous  # type: ignore[union-attr]
    assert lab.gateway.get_traffic(ENDPOINT).traffic[f"{MODEL}-v{previous}"] == 100


def test_two_simultaneous_alerts_give_one_rollback(lab: Lab) -> None:
    champion = _platform(lab).get_alias(MODEL, "champion").version  # type: ignore[union-attr]
    known = {i["instanceId"] for i in lab.instances(f"rollback-{MODEL}-")}
    before = len(known)
    event = {"subject": f"models/{MODEL}:{champion}", "eventType": APP_DRIFT_EVENT_TYPE,
             "eventTime": "2026-11-24T12:00:00Z", "dataVersion": "1.0",
             "data": {"model": MODEL, "version": champion, "features": {"f0": {"psi": 0.9}}}}
    resp = lab.publish([{**event, "id": str(uuid.uuid4())}, {**event, "id": str(uuid.uuid4())}])
    assert resp.status_code == 200, resp.text
    runs = lab.finished(f"rollback-{MODEL}-", before + 1)
    lab.idle(MODEL)
    assert len(lab.instances(f"rollback-{MODEL}-")) == before + 1
    # the champion is already the earliest good version: the rollback says so and changes nothing
    newest = next(r for r in runs if r["instanceId"] not in known)
    assert newest["output"]["verdict"] == "nothing to do"
    assert "no earlier version" in newest["output"]["reason"]
    assert _platform(lab).get_alias(MODEL, "champion").version == champion  # type: ignore[union-attr]
