"""Every surface refuses what it should, changes nothing when it does, and holds under a burst.

Bad model names and models without a policy on ModelRegistered, the monitor's reach past a bad
model, a 1,000-event batch for one model, malformed principals, the alert webhook's callers, and
operator-supplied data references.
"""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

import pytest
import requests
from azure.core.exceptions import ResourceNotFoundError
from stacklab import Lab, run_input

from adapters.control_store import BlobControlStore
from adapters.runtime import CONTROL_CONTAINER
from cli.sampledata import generate, to_csv_bytes
from mlops.contracts import RollbackInput
from mlops.runs import Request

MODEL = "sentry"  # tests/e2e/policies/sentry.yaml: no other test uses it


def _principal(name: str, *roles: str) -> dict[str, str]:
    claims = [{"typ": "name", "val": name}] + [{"typ": "roles", "val": r} for r in roles]
    value = base64.b64encode(json.dumps({"auth_typ": "aad", "claims": claims}).encode()).decode()
    return {"x-ms-client-principal": value}


OPERATOR = _principal("alice", "mlops.operator")
ALERTER = _principal("azure-monitor-action-group", "mlops.alerts")
VIEWER = _principal("victor", "mlops.viewer")


def api(lab: Lab, method: str, path: str, code: str | None = None, **kwargs: Any) -> requests.Response:
    """The app's HTTP API with the function key (or ``code`` in the query, as an action group sends it)."""
    headers = dict(kwargs.pop("headers", None) or {})
    params = dict(kwargs.pop("params", None) or {})
    if code is None:
        headers["x-functions-key"] = lab.info.function_key
    else:
        params["code"] = code
    return requests.request(method, f"{lab.info.devhost_url}/api/{path}", headers=headers, params=params,
                            timeout=60, **kwargs)


def webhook(lab: Lab, function: str, events: list[dict[str, Any]]) -> requests.Response:
    """Deliver a batch to an Event Grid trigger as Event Grid does."""
    return lab.http.post(f"{lab.info.devhost_url}/runtime/webhooks/eventgrid",
                         params={"functionName": function, "code": lab.info.system_key}, data=json.dumps(events),
                         headers={"aeg-event-type": "Notification", "Content-Type": "application/json"},
                         timeout=600)


def registered(model: str, version: str = "1") -> dict[str, Any]:
    """Azure ML's ModelRegistered event (Event Grid schema)."""
    return {"id": str(uuid.uuid4()), "subject": f"models/{model}:{version}",
            "eventType": "Microsoft.MachineLearningServices.ModelRegistered", "eventTime": "2026-12-01T12:00:00Z",
            "dataVersion": "2", "data": {"modelName": model, "modelVersion": version, "modelTags": {}}}


def alert(model: str, condition: str = "Fired") -> dict[str, Any]:
    """An Azure Monitor common-alert-schema body about ``model``'s endpoint."""
    return {"schemaId": "azureMonitorCommonAlertSchema",
            "data": {"essentials": {"alertId": f"/subscriptions/s/providers/Microsoft.AlertsManagement/alerts/"
                                               f"{uuid.uuid4()}",
                                    "alertRule": f"{model}-5xx-rate", "severity": "Sev1", "signalType": "Metric",
                                    "monitorCondition": condition, "alertTargetIDs": [],
                                    "firedDateTime": "2026-12-01T12:00:00.1234567Z"},
                     "alertContext": {}, "customProperties": None}}


def control_blobs(lab: Lab) -> list[str]:
    """Every blob of the control store (none before the app first wrote to it)."""
    try:
        return [b.name for b in lab.blobs.get_container_client(CONTROL_CONTAINER).list_blobs()]
    except ResourceNotFoundError:
        return []


def audited(lab: Lab) -> list[dict[str, Any]]:
    return list(api(lab, "GET", "audit").json()["audit"])


# -- D5: ModelRegistered for a bad name or a model without a policy ---------------------------------------------

@pytest.mark.parametrize("name", ["a/b", "ghost", "Credit", "../audit"])
def test_a_registration_of_a_bad_model_name_or_a_model_without_a_policy_is_refused_and_leaves_no_state(
        lab: Lab, name: str) -> None:
    resp = webhook(lab, "on_model_registered", [registered(name)])
    # An Event Grid trigger cannot answer 4xx: it logs the reason and returns (a 500 would only bring redeliveries)
    assert resp.status_code == 202, resp.text
    assert [b for b in control_blobs(lab) if f"/{name}" in b] == []
    assert lab.instances(f"lifecycle-{name}") == []
    reasons = [line for line in lab.log().splitlines() if repr(name) in line
               and ("is not a valid model name" in line or "no policy file" in line)]
    assert reasons, lab.log_tail()


def test_the_monitor_reaches_every_model_when_one_has_requests_pending_but_no_policy(lab: Lab) -> None:
    webhook(lab, "on_model_registered", [registered("a/b")])  # before the fix: a pending blob the monitor choked on
    store = BlobControlStore(lab.blobs.get_container_client(CONTROL_CONTAINER))
    # requests written just as a lifecycle finished: only the monitor's reconciler starts the lifecycle again
    store.put_request(Request.of(RollbackInput("ghost", "left over from a deleted policy"),
                                 dedup_key=f"test:{uuid.uuid4()}"))
    store.put_request(Request.of(RollbackInput(MODEL, "waiting for the reconciler"), dedup_key=f"test:{uuid.uuid4()}"))
    rollback = lab.wait(lambda: next((i for i in lab.instances(f"rollback-{MODEL}-")
                                      if i["runtimeStatus"] in ("Completed", "Failed")), None),
                        timeout=120, what=f"the monitor to start the {MODEL} lifecycle", tick=lambda: lab.advance(10))
    assert rollback["runtimeStatus"] == "Completed", rollback
    assert "requests pending for model 'ghost', which has no policy" in lab.log()
    lab.idle(MODEL)
    control = lab.blobs.get_container_client(CONTROL_CONTAINER)
    for leftover in [b.name for b in control.list_blobs() if b.name.startswith(("requests/ghost/", "pending/a/",
                                                                               "pending/ghost"))]:
        control.delete_blob(leftover)  # or every later tick logs them again


# -- D3: a burst for one model -----------------------------------------------------------------------------------

def test_a_batch_of_1000_events_for_one_model_is_accepted_and_coalesced(lab: Lab) -> None:
    lab.idle("bursty")
    lab.land("bursty", "thousand.csv", to_csv_bytes(generate(100, seed=1000)))
    lab.wait(lambda: any(i["runtimeStatus"] == "Running" and "thousand.csv" in json.dumps(i["input"])
                         for i in lab.instances("retrain-bursty-")), what="the run of the landed file")
    # Hold the lifecycle while the batch lands (events wait while it is suspended), so the count below does not
    # depend on how fast runs go
    lab.durable("POST", "instances/lifecycle-bursty/suspend", params={"reason": "batch"}).raise_for_status()
    before = {i["instanceId"] for i in lab.instances("retrain-bursty-")}
    # Never landed: the run the batch coalesces into fails at validation in a moment, which is all it needs to do.
    url = f"{lab.blobs.get_container_client('landing').url}/bursty/never-landed.csv"
    events = [{"id": str(uuid.uuid4()), "subject": "/blobServices/default/containers/landing/blobs/bursty/"
                                                   "never-landed.csv",
               "eventType": "Microsoft.Storage.BlobCreated", "eventTime": "2026-12-01T10:00:00Z", "dataVersion": "",
               "data": {"url": url, "eTag": f"0xB{i:06d}", "contentLength": 1000, "api": "PutBlob",
                        "contentType": "text/csv", "blobType": "BlockBlob", "sequencer": f"{i:032d}"}}
              for i in range(1000)]
    resp = webhook(lab, "on_blob_created", events)
    assert resp.status_code == 202, resp.text[:2000]  # a redelivered batch: tests/integration/adapters
    assert lab.status("lifecycle-bursty")["runtimeStatus"] == "Suspended"
    lab.durable("POST", "instances/lifecycle-bursty/resume", params={"reason": "batch landed"}).raise_for_status()
    lab.wait(lambda: len(lab.instances("retrain-bursty-")) > len(before), what="the run the batch coalesced into")
    lab.idle("bursty")
    after = [i for i in lab.instances("retrain-bursty-") if i["instanceId"] not in before]
    assert len(after) == 1, [i["instanceId"] for i in after]  # 1,000 requests, one run
    assert run_input(after[0])["data"]["url"] == url


# -- D7: principals of the wrong shape --------------------------------------------------------------------------

@pytest.mark.parametrize("value", [["x"], {"claims": 5}, {"claims": ["x"]}], ids=["list", "claims-5", "claims-x"])
def test_a_principal_of_the_wrong_shape_is_401(lab: Lab, value: Any) -> None:
    header = {"x-ms-client-principal": base64.b64encode(json.dumps(value).encode()).decode()}
    resp = api(lab, "POST", f"models/{MODEL}/rollback", json={"reason": "shape"}, headers=header)
    assert resp.status_code == 401, resp.text
    assert "X-MS-CLIENT-PRINCIPAL" in resp.json()["error"]


# -- D8: who may post alerts -------------------------------------------------------------------------------------

def test_an_alert_with_only_the_function_key_or_without_the_alert_role_is_refused_and_queues_nothing(
        lab: Lab) -> None:
    runs, entries = len(lab.instances(f"rollback-{MODEL}-")), len(audited(lab))
    anonymous = api(lab, "POST", "alerts", json=alert(MODEL))
    assert anonymous.status_code == 401 and "mlops.alerts" in anonymous.json()["error"]
    viewer = api(lab, "POST", "alerts", json=alert(MODEL), headers=VIEWER)
    assert viewer.status_code == 403 and "mlops.alerts" in viewer.json()["error"]
    operator = api(lab, "POST", "alerts", json=alert(MODEL), headers=OPERATOR)
    assert operator.status_code == 403
    assert len(lab.instances(f"rollback-{MODEL}-")) == runs and len(audited(lab)) == entries


def test_an_alert_from_the_alert_role_queues_a_rollback_and_is_audited(lab: Lab) -> None:
    lab.idle(MODEL)
    resp = api(lab, "POST", "alerts", json=alert(MODEL), headers=ALERTER)
    assert resp.status_code == 202, resp.text
    body = resp.json()
    assert body["accepted"] is True and body["run_id"].startswith(f"rollback-{MODEL}-")
    entry = next(a for a in audited(lab) if a["id"] == body["audit"])
    assert (entry["who"], entry["what"], entry["target"]) == ("azure-monitor-action-group", "alert", MODEL)
    assert entry["why"] == f"Azure Monitor alert {MODEL}-5xx-rate fired" and entry["result"]["run_id"]
    lab.finished(body["run_id"])
    lab.idle(MODEL)


def test_an_alert_with_the_webhooks_own_key_in_the_url_is_accepted_and_audited(lab: Lab, alert_key: str) -> None:
    resp = api(lab, "POST", "alerts", code=alert_key, json=alert(MODEL, "Resolved"))
    assert resp.status_code == 200, resp.text
    entry = next(a for a in audited(lab) if a["id"] == resp.json()["audit"])
    assert entry["who"] == "alert webhook (MLOPS_ALERT_KEY)" and entry["why"].endswith("resolved")
    assert api(lab, "POST", "alerts", code="not-the-alert-key", json=alert(MODEL)).status_code == 401


def test_an_alert_about_a_model_without_a_policy_or_with_a_bad_body_is_400(lab: Lab) -> None:
    entries = len(audited(lab))
    ghost = api(lab, "POST", "alerts", json=alert("ghost"), headers=ALERTER)
    assert ghost.status_code == 400 and "'ghost'" in ghost.json()["error"]
    deep = api(lab, "POST", "alerts", data=b"[" * 100_000 + b"]" * 100_000, headers=ALERTER)
    assert deep.status_code == 400 and "not valid JSON" in deep.json()["error"]
    assert len(audited(lab)) == entries


# -- D9: what an operator retrain may read ------------------------------------------------------------------------

@pytest.mark.parametrize("data_url", [
    "file:///proc/self/environ",
    "http://169.254.169.254/metadata/identity/oauth2/token?resource=https://storage.azure.com",
    "{blobs}/mlops-control/audit/x.json",
    "{blobs}/landing/sentry/../../mlops-control/x.json",
    "{gateway}/admin/deployments",
], ids=["file", "metadata-endpoint", "other-container", "traversal", "gateway"])
def test_a_retrain_on_anything_but_a_blob_in_the_landing_container_is_400_and_queues_nothing(
        lab: Lab, data_url: str) -> None:
    data_url = data_url.format(blobs=lab.blobs.url.rstrip("/"), gateway=lab.info.gateway_url)
    runs = len(lab.instances(f"retrain-{MODEL}-"))
    resp = api(lab, "POST", f"models/{MODEL}/retrain", json={"data_url": data_url}, headers=OPERATOR)
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"].startswith("data_url: ")
    assert len(lab.instances(f"retrain-{MODEL}-")) == runs


def test_a_retrain_on_a_blob_in_the_landing_container_is_accepted(lab: Lab) -> None:
    url = f"{lab.blobs.get_container_client('landing').url}/{MODEL}/not-there-yet.csv"
    resp = api(lab, "POST", f"models/{MODEL}/retrain", json={"data_url": url}, headers=OPERATOR)
    assert resp.status_code == 202, resp.text
    run = lab.finished(resp.json()["run_id"])[0]
    assert run["runtimeStatus"] == "Failed" and "not found" in run["output"]  # validation reads it, and says so
    lab.idle(MODEL)
