"""Lifecycle part 1 end to end: data lands, validation, training, gates, approval, registration."""

from __future__ import annotations

import json
import uuid

from stacklab import Lab

from adapters.local import LocalPlatform
from cli.sampledata import generate, to_csv_bytes


def _platform(lab: Lab) -> LocalPlatform:
    return LocalPlatform(lab.info.state_dir + "/mlops", lab.blobs)  # type: ignore[arg-type]


def test_good_csv_is_trained_gated_registered_with_lineage_and_released(lab: Lab) -> None:
    url = lab.land("credit", "d1.csv", to_csv_bytes(generate(600, seed=1)))
    retrain = lab.finished("retrain-credit-")[0]
    assert retrain["runtimeStatus"] == "Completed", retrain
    assert retrain["output"]["version"] == "1"
    stages = {s["name"]: s["state"] for s in retrain["customStatus"]["stages"]}
    assert stages == {"validate": "succeeded", "train": "succeeded", "evaluate": "succeeded", "gates": "succeeded",
                      "approval": "skipped", "register": "succeeded"}
    mv = _platform(lab).get_model_version("credit", "1")
    assert mv.tags["data_url"] == url
    assert mv.tags["data_etag"] and len(mv.tags["data_sha256"]) == 64
    assert mv.tags["run_id"] == retrain["instanceId"] and mv.tags["policy_hash"]
    assert float(mv.tags["metric.accuracy_score"]) > 0.6
    # telemetry: each stage change and gate verdict is sent once, though the orchestrator replayed many times
    facts = [line.split(": ", 1)[1].split(" model=")[0] + " " + line.split(" stage=")[-1].split(" ")[0]
             for line in lab.log().splitlines() if f" run={retrain['instanceId']} " in line
             and "mlops.events" in line and " stage=" in line]
    assert sorted(facts) == sorted([f"StageStarted {s}" for s in ("validate", "train", "evaluate", "register")]
                                   + [f"StageEnded {s}" for s in stages]), facts
    gate_facts = [line for line in lab.log().splitlines()
                  if f"GateVerdict model=credit version=- run={retrain['instanceId']} " in line]
    assert len(gate_facts) == len(retrain["output"]["gates"]) and all("passed=True" in g for g in gate_facts)
    # ModelRegistered went through the custom topic and started the release, which promoted v1
    release = lab.finished("release-credit-")[0]
    assert release["runtimeStatus"] == "Completed" and release["output"]["verdict"] == "promoted"
    assert lab.gateway.get_traffic("scoring").traffic == {"credit-v1": 100}
    assert _platform(lab).get_alias("credit", "champion").version == "1"  # type: ignore[union-attr]


def test_schema_break_fails_validation_with_the_reason_and_registers_nothing(lab: Lab) -> None:
    before = {i["instanceId"] for i in lab.instances("retrain-credit-")}
    lab.land("credit", "broken.csv", to_csv_bytes(generate(400, seed=9, schema_break=True)))
    run = lab.wait(lambda: next((i for i in lab.instances("retrain-credit-")
                                 if i["instanceId"] not in before and i["runtimeStatus"] == "Failed"), None),
                   what="the failed retrain")
    assert "missing columns: f3" in run["output"]
    assert [v.version for v in _platform(lab).list_model_versions("credit")] == ["1"]
    assert lab.gateway.get_traffic("scoring").traffic == {"credit-v1": 100}


def test_same_event_delivered_three_times_gives_one_run(lab: Lab) -> None:
    lab.idle("bursty")
    landed = len(lab.instances("retrain-bursty-"))
    blob_url = lab.land("bursty", "once.csv", to_csv_bytes(generate(50, seed=3)))
    lab.finished("retrain-bursty-", landed + 1)
    lab.idle("bursty")
    event = {"id": str(uuid.uuid4()), "subject": "/blobServices/default/containers/landing/blobs/bursty/dup.csv",
             "eventType": "Microsoft.Storage.BlobCreated", "eventTime": "2026-11-24T10:00:00Z", "dataVersion": "",
             "data": {"url": blob_url.replace("once.csv", "dup.csv"), "eTag": "0xDUP", "contentLength": 10,
                      "api": "PutBlob", "contentType": "text/csv", "blobType": "BlockBlob",
                      "sequencer": "00000000000000000000000000000001"}}
    before = len(lab.instances("retrain-bursty-"))
    for _ in range(3):
        resp = lab.http.post(f"{lab.info.devhost_url}/runtime/webhooks/eventgrid",
                             params={"functionName": "on_blob_created", "code": lab.info.system_key},
                             data=json.dumps([event]), headers={"aeg-event-type": "Notification"}, timeout=30)
        assert resp.status_code in (200, 202), resp.text
    lab.finished("retrain-bursty-", before + 1)
    lab.idle("bursty")
    assert len(lab.instances("retrain-bursty-")) == before + 1


def test_burst_of_20_files_gives_one_run_now_and_at_most_one_after(lab: Lab) -> None:
    lab.idle("bursty")
    before = len(lab.instances("retrain-bursty-"))
    lab.land("bursty", "burst-00.csv", to_csv_bytes(generate(300, seed=100)))
    # the first run is training while the rest of the burst lands
    lab.wait(lambda: any(i["runtimeStatus"] == "Running" for i in lab.instances("retrain-bursty-")),
             what="the first run of the burst")
    for i in range(1, 20):
        lab.land("bursty", f"burst-{i:02d}.csv", to_csv_bytes(generate(300, seed=100 + i)))
    lab.finished("retrain-bursty-", before + 1)
    lab.idle("bursty")
    runs = len(lab.instances("retrain-bursty-")) - before
    assert 1 <= runs <= 2, runs


def test_worse_model_is_rejected_by_the_no_regression_gate_with_both_numbers(lab: Lab) -> None:
    lab.land("strict", "good.csv", to_csv_bytes(generate(600, seed=1)))
    first = lab.finished("retrain-strict-")[0]
    assert first["runtimeStatus"] == "Completed"
    lab.finished("release-strict-")
    lab.land("strict", "noisy.csv", to_csv_bytes(generate(600, seed=4, label_noise=0.4)))
    runs = lab.finished("retrain-strict-", 2)
    worse = next(r for r in runs if r["instanceId"] != first["instanceId"])
    assert worse["runtimeStatus"] == "Failed"
    assert "accuracy_score regressed: " in worse["output"] and " vs champion " in worse["output"]
    gates = worse["customStatus"]["gates"]
    regression = next(g for g in gates if g["name"] == "no_regression")
    assert regression["passed"] is False and regression["champion_value"] > regression["value"]
    assert [v.version for v in _platform(lab).list_model_versions("strict")] == ["1"]


def _approval_run(lab: Lab, name: str) -> dict:
    before = {i["instanceId"] for i in lab.instances("retrain-gated-")}
    lab.land("gated", name, to_csv_bytes(generate(400, seed=len(name))))
    return dict(lab.wait(lambda: next((i for i in lab.instances("retrain-gated-") if i["instanceId"] not in before
                                       and (i.get("customStatus") or {}).get("message") == "waiting for approval"),
                                      None), what="a run waiting for approval"))


def test_approval_gate_approve_reject_and_timeout(lab: Lab) -> None:
    versions_before = len(_platform(lab).list_model_versions("gated"))
    releases = {i["instanceId"] for i in lab.instances("release-gated-")}
    run = _approval_run(lab, "a.csv")
    lab.durable("POST", f"instances/{run['instanceId']}/raiseEvent/approval",
                data=json.dumps({"approved": True, "by": "alice"})).raise_for_status()
    assert lab.finished(run["instanceId"])[0]["runtimeStatus"] == "Completed"
    # the approved model's release bakes on the virtual clock; the next run waits for it (serial per model)
    lab.wait(lambda: any(i["runtimeStatus"] == "Completed" for i in lab.instances("release-gated-")
                         if i["instanceId"] not in releases),
             what="the approved model's release", tick=lambda: lab.advance_bakes("gated"))

    run = _approval_run(lab, "bb.csv")
    lab.durable("POST", f"instances/{run['instanceId']}/raiseEvent/approval",
                data=json.dumps({"approved": False, "by": "bob", "reason": "not this week"})).raise_for_status()
    rejected = lab.finished(run["instanceId"])[0]
    assert rejected["runtimeStatus"] == "Failed" and "rejected by bob: not this week" in rejected["output"]

    run = _approval_run(lab, "ccc.csv")
    lab.advance(2 * 3600 + 5)
    timed_out = lab.finished(run["instanceId"])[0]
    assert timed_out["runtimeStatus"] == "Failed" and "approval timed out" in timed_out["output"]
    assert len(_platform(lab).list_model_versions("gated")) == versions_before + 1
