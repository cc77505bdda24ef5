"""Retention on the real local stack: past MLOPS_RUN_RETENTION_DAYS the monitor purges a finished run's
Durable history, and the runs list, the run's summary and the audit trail still show it."""

from __future__ import annotations

import json
from typing import Any

from stacklab import Lab
from test_api import OPERATOR, VIEWER, api

from adapters.runtime import CONTROL_CONTAINER

MODEL = "credit"
DAY = 86400


def _rollback(lab: Lab, reason: str) -> str:
    """An operator's rollback of a model without a champion: a run that ends at once ("nothing to do")."""
    resp = api(lab, "POST", f"models/{MODEL}/rollback", json={"reason": reason}, headers=OPERATOR)
    assert resp.status_code == 202, resp.text
    run_id = str(resp.json()["run_id"])
    lab.finished(run_id)
    lab.idle(MODEL)
    return run_id


def _last_purge(lab: Lab) -> dict[str, Any] | None:
    blob = lab.blobs.get_blob_client(CONTROL_CONTAINER, "runs/purge.json")
    return json.loads(blob.download_blob().readall()) if blob.exists() else None


def test_a_run_past_the_retention_loses_its_history_but_not_its_summary_or_audit(lab: Lab) -> None:
    old = _rollback(lab, "before the retention")
    listed = api(lab, "GET", f"runs?model={MODEL}&kind=rollback").json()["runs"]
    assert [(r["id"], r["status"], r["verdict"]) for r in listed] == [(old, "Completed", "nothing to do")]
    assert api(lab, "GET", f"runs/{old}").json()["purged"] is False
    first = lab.wait(lambda: _last_purge(lab), what="the monitor's first purge")  # nothing old yet
    assert first["purged"] == 0 and lab.status(old)["runtimeStatus"] == "Completed"

    lab.advance(91 * DAY)  # past the default 90 days
    # made after the jump, younger than the retention (and done long before the purge, two ticks later): kept
    recent = _rollback(lab, "after the jump")
    lab.wait(lambda: lab.status(old)["runtimeStatus"] is None, timeout=90, what=f"the purge of {old}")
    purge = _last_purge(lab)
    assert purge is not None and purge["purged"] >= 1, purge

    detail = api(lab, "GET", f"runs/{old}")
    assert detail.status_code == 200, detail.text
    body = detail.json()
    assert (body["purged"], body["status"], body["verdict"], body["stages"]) == (True, "Completed", "nothing to do",
                                                                                 [])
    audit = api(lab, "GET", "audit").json()["audit"]
    assert any(a["what"] == "rollback" and a["result"].get("run_id") == old for a in audit), audit

    assert lab.status(recent)["runtimeStatus"] == "Completed"
    assert [r["id"] for r in api(lab, "GET", f"runs?model={MODEL}&kind=rollback").json()["runs"]] == [recent, old]


def test_the_backfill_indexes_a_run_the_index_lacks_for_an_operator_only(lab: Lab) -> None:
    before_index = _rollback(lab, "made before the index existed")
    control = lab.blobs.get_container_client(CONTROL_CONTAINER)
    for blob in [b.name for b in control.list_blobs(name_starts_with="runs/") if before_index in b.name]:
        control.delete_blob(blob)  # as if the run were older than the index
    ids = [r["id"] for r in api(lab, "GET", f"runs?model={MODEL}&kind=rollback").json()["runs"]]
    assert before_index not in ids
    assert api(lab, "POST", "maintenance/backfill-runs", headers=VIEWER).status_code == 403
    done = api(lab, "POST", "maintenance/backfill-runs", headers=OPERATOR)
    assert done.status_code == 200, done.text
    assert done.json()["indexed"] == 1 and done.json()["seen"] >= 2  # the run made after the jump is indexed already
    listed = api(lab, "GET", f"runs?model={MODEL}&kind=rollback").json()["runs"]
    assert [(r["id"], r["status"], r["verdict"]) for r in listed][0] == (before_index, "Completed", "nothing to do")
    assert api(lab, "POST", "maintenance/backfill-runs", headers=OPERATOR).json()["indexed"] == 0  # repeatable
    audit = api(lab, "GET", "audit").json()["audit"]
    assert any(a["what"] == "backfill-runs" and a["who"] == "alice" for a in audit)
