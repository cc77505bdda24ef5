"""The operator API through devhost: keys, roles, filters, paging, errors, approval, audit."""

from __future__ import annotations

import pytest
import requests
from stacklab import Lab, principal

from cli.sampledata import generate, to_csv_bytes

OPERATOR = {"x-ms-client-principal": principal("alice", "mlops.operator")}
VIEWER = {"x-ms-client-principal": principal("victor", "mlops.viewer")}


def api(lab: Lab, method: str, path: str, key: bool = True, **kwargs: object) -> requests.Response:
    headers = dict(kwargs.pop("headers", {}) or {})  # type: ignore[call-overload]
    if key:
        headers["x-functions-key"] = lab.info.function_key
    return requests.request(method, f"{lab.info.devhost_url}/api/{path}", headers=headers, timeout=60,
                            **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("method,path", [("GET", "runs"), ("GET", "runs/retrain-x-1"), ("GET", "models"),
                                         ("GET", "models/credit"), ("GET", "openapi.json"), ("GET", "dashboard"),
                                         ("POST", "runs/retrain-x-1/approve"), ("POST", "models/credit/rollback")])
def test_every_route_needs_a_function_key(lab: Lab, method: str, path: str) -> None:
    assert api(lab, method, path, key=False).status_code == 401


def test_actions_need_a_signed_in_operator_and_change_nothing_otherwise(lab: Lab) -> None:
    before = api(lab, "GET", "runs?kind=rollback").json()["total"]
    body = {"reason": "test"}
    assert api(lab, "POST", "models/credit/rollback", json=body).status_code == 401
    denied = api(lab, "POST", "models/credit/rollback", json=body, headers=VIEWER)
    assert denied.status_code == 403 and "mlops.operator" in denied.json()["error"]
    assert api(lab, "GET", "runs?kind=rollback").json()["total"] == before


def test_unknown_ids_are_404_and_bad_bodies_are_400(lab: Lab) -> None:
    assert api(lab, "GET", "runs/retrain-nosuch-0123").status_code == 404
    assert api(lab, "GET", "runs/not-a-run").status_code == 404
    assert api(lab, "GET", "models/nosuch").status_code == 404
    assert api(lab, "POST", "runs/retrain-nosuch-0123/approve", json={}, headers=OPERATOR).status_code == 404
    missing = api(lab, "POST", "models/credit/rollback", json={}, headers=OPERATOR)
    assert missing.status_code == 400 and "reason" in missing.json()["error"]
    extra = api(lab, "POST", "models/credit/retrain", json={"data_url": "x", "colour": "red"}, headers=OPERATOR)
    assert extra.status_code == 400 and "colour" in extra.json()["error"]
    not_json = api(lab, "POST", "models/credit/rollback", data=b"{nope", headers=OPERATOR)
    assert not_json.status_code == 400
    assert api(lab, "GET", "runs?top=0").status_code == 400
    assert api(lab, "GET", "runs?kind=party").status_code == 400


def test_openapi_document_describes_the_api(lab: Lab) -> None:
    doc = api(lab, "GET", "openapi.json").json()
    assert doc["openapi"].startswith("3.")
    assert {"/runs", "/runs/{id}", "/runs/{id}/approve", "/models/{model}/rollback"} <= set(doc["paths"])
    assert "RollbackBody" in doc["components"]["schemas"]


def test_approval_through_the_api_resumes_the_waiting_run_and_is_audited(lab: Lab) -> None:
    lab.land("gated", "api.csv", to_csv_bytes(generate(400, seed=77)))
    waiting = lab.wait(lambda: next((r for r in api(lab, "GET", "runs?model=gated&kind=retrain&status=Running")
                                     .json()["runs"] if r["stage"] == "approval"), None), what="a waiting run")
    detail = api(lab, "GET", f"runs/{waiting['id']}").json()
    assert [s["state"] for s in detail["stages"]][:4] == ["succeeded"] * 4
    assert detail["gates"] and all(g["passed"] for g in detail["gates"])
    denied = api(lab, "POST", f"runs/{waiting['id']}/approve", json={"reason": "looks good"}, headers=VIEWER)
    assert denied.status_code == 403
    ok = api(lab, "POST", f"runs/{waiting['id']}/approve", json={"reason": "looks good"}, headers=OPERATOR)
    assert ok.status_code == 202, ok.text
    done = lab.finished(waiting["id"])[0]
    assert done["runtimeStatus"] == "Completed"
    assert api(lab, "POST", f"runs/{waiting['id']}/approve", json={}, headers=OPERATOR).status_code == 409
    audit = api(lab, "GET", "audit").json()["audit"]
    entry = next(a for a in audit if a["target"] == waiting["id"])
    assert entry["who"] == "alice" and entry["what"] == "approve" and entry["why"] == "looks good" and entry["when"]


def test_runs_filter_by_model_and_kind_and_page_with_a_continuation_token(lab: Lab) -> None:
    for i in range(3):  # runs that fail validation (no training, no release) page like any others
        lab.land("bursty", f"page-{i}.csv", to_csv_bytes(generate(10, seed=300 + i)))  # under min_rows (40)
        lab.finished("retrain-bursty-", i + 1)
        lab.idle("bursty")  # its run ended, so the next file starts a run of its own (not coalesced)
    everything = api(lab, "GET", "runs?top=200").json()
    assert everything["total"] >= 3
    filtered = api(lab, "GET", "runs?model=bursty&kind=retrain&top=200").json()["runs"]
    assert filtered and all(r["model"] == "bursty" and r["kind"] == "retrain" for r in filtered)
    seen: list[str] = []
    token = None
    for _ in range(50):  # bounded
        page = api(lab, "GET", "runs?top=2" + (f"&continuation={token}" if token else "")).json()
        assert len(page["runs"]) <= 2
        seen += [r["id"] for r in page["runs"]]
        token = page["continuation"]
        if not token:
            break
    assert len(seen) == len(set(seen)) >= everything["total"] - 1
    assert api(lab, "GET", "runs?continuation=garbage").status_code == 400


def test_models_show_champion_versions_traffic_and_incidents(lab: Lab) -> None:
    lab.wait(lambda: api(lab, "GET", "models/gated").json().get("champion"), what="a gated champion",
             tick=lambda: lab.advance_bakes("gated"))
    models = {m["model"]: m for m in api(lab, "GET", "models").json()["models"]}
    assert {"credit", "gated", "canary", "strict", "bursty"} <= set(models)
    detail = api(lab, "GET", "models/gated").json()
    assert detail["versions"] and detail["versions"][0]["tags"]["data_url"]
    assert "traffic" in detail and isinstance(detail["incidents"], list)
