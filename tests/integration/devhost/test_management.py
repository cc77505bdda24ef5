"""Instance management through the public HTTP API and through the SDK's DurableOrchestrationClient."""

import uuid

import requests

from devhost.testing import DevHostProcess


def _client(host: DevHostProcess, op: str, iid: str = "", **body: object) -> requests.Response:
    return host.api("POST", f"client/{op}/{iid}" if iid else f"client/{op}", json=body)


def test_http_starter_returns_check_status_urls_that_resolve(patterns_host: DevHostProcess) -> None:
    resp = patterns_host.api("POST", "orchestrators/chaining")
    assert resp.status_code == 202
    payload = resp.json()
    assert resp.headers["Location"] == payload["statusQueryGetUri"]
    assert payload["statusQueryGetUri"].startswith(patterns_host.base_url)
    patterns_host.wait_for(payload["id"])
    status = requests.get(payload["statusQueryGetUri"], timeout=10)
    assert status.status_code == 200 and status.json()["output"][0] == "Hello Tokyo!"


def test_status_codes_follow_azure_202_running_200_done_404_unknown(patterns_host: DevHostProcess) -> None:
    iid = patterns_host.start_orchestration("wait_event")
    patterns_host.wait_for(iid, until=lambda s: s["runtimeStatus"] == "Running")
    assert patterns_host.durable("GET", f"instances/{iid}").status_code == 202
    patterns_host.raise_event(iid, "Go", 1)
    patterns_host.wait_for(iid)
    assert patterns_host.durable("GET", f"instances/{iid}").status_code == 200
    assert patterns_host.durable("GET", "instances/nope").status_code == 404


def test_management_api_requires_the_system_key(patterns_host: DevHostProcess) -> None:
    url = f"{patterns_host.base_url}/runtime/webhooks/durabletask/instances"
    assert requests.get(url, timeout=10).status_code == 401
    assert requests.get(url, params={"code": "wrong"}, timeout=10).status_code == 401
    assert requests.get(url, params={"code": patterns_host.system_key}, timeout=10).status_code == 200


def test_terminate_ends_a_running_instance_and_a_second_terminate_is_410(patterns_host: DevHostProcess) -> None:
    iid = patterns_host.start_orchestration("wait_event")
    patterns_host.wait_for(iid, until=lambda s: s["runtimeStatus"] == "Running")
    assert patterns_host.durable("POST", f"instances/{iid}/terminate", params={"reason": "stop"}).status_code == 202
    status = patterns_host.wait_for(iid)
    assert status["runtimeStatus"] == "Terminated" and status["output"] == "stop"
    assert patterns_host.durable("POST", f"instances/{iid}/terminate").status_code == 410
    assert patterns_host.raise_event(iid, "Go", 1).status_code == 410


def test_suspended_instance_holds_events_until_resumed(patterns_host: DevHostProcess) -> None:
    iid = patterns_host.start_orchestration("wait_event")
    patterns_host.wait_for(iid, until=lambda s: s["runtimeStatus"] == "Running")
    assert patterns_host.durable("POST", f"instances/{iid}/suspend").status_code == 202
    assert patterns_host.status(iid)["runtimeStatus"] == "Suspended"
    patterns_host.raise_event(iid, "Go", 7)
    assert patterns_host.status(iid)["runtimeStatus"] == "Suspended"
    assert patterns_host.durable("POST", f"instances/{iid}/resume").status_code == 202
    assert patterns_host.wait_for(iid)["output"] == "Hello 7!"


def test_purge_removes_a_finished_instance(patterns_host: DevHostProcess) -> None:
    iid = patterns_host.start_orchestration("chaining")
    patterns_host.wait_for(iid)
    resp = patterns_host.durable("DELETE", f"instances/{iid}")
    assert resp.status_code == 200 and resp.json() == {"instancesDeleted": 1}
    assert patterns_host.status(iid) is None
    assert patterns_host.durable("DELETE", f"instances/{iid}").status_code == 404


def test_list_filters_by_status_and_prefix_and_pages_with_continuation_token(patterns_host: DevHostProcess) -> None:
    prefix = f"page-{uuid.uuid4().hex[:8]}-"
    ids = [patterns_host.start_orchestration("chaining", instance_id=f"{prefix}{i:02d}") for i in range(7)]
    for iid in ids:
        patterns_host.wait_for(iid)
    seen: list[str] = []
    token = None
    pages = 0
    while pages < 10:
        headers = {"x-ms-continuation-token": token} if token else {}
        resp = patterns_host.durable("GET", "instances", headers=headers,
                                     params={"instanceIdPrefix": prefix, "top": 3, "runtimeStatus": "Completed"})
        assert resp.status_code == 200
        seen += [item["instanceId"] for item in resp.json()]
        pages += 1
        token = resp.headers.get("x-ms-continuation-token")
        if not token:
            break
    assert pages == 3
    assert sorted(seen) == sorted(ids)
    running = patterns_host.durable("GET", "instances", params={"instanceIdPrefix": prefix, "runtimeStatus": "Running"})
    assert running.json() == []
    bad = patterns_host.durable("GET", "instances", params={"runtimeStatus": "Sleeping"})
    assert bad.status_code == 400 and "Sleeping" in bad.text


def test_rewind_reruns_the_failed_activity(patterns_host: DevHostProcess) -> None:
    key = uuid.uuid4().hex
    iid = patterns_host.start_orchestration("activity_fails", {"key": key, "fail_times": 1})
    assert patterns_host.wait_for(iid)["runtimeStatus"] == "Failed"
    assert patterns_host.durable("POST", f"instances/{iid}/rewind", params={"reason": "fixed"}).status_code == 202
    status = patterns_host.wait_for(iid)
    assert status["runtimeStatus"] == "Completed" and status["output"] == "ok after 2"


def test_sdk_client_methods_work_unchanged(patterns_host: DevHostProcess) -> None:
    iid = patterns_host.start_orchestration("wait_event")
    patterns_host.wait_for(iid, until=lambda s: s["runtimeStatus"] == "Running")
    st = _client(patterns_host, "status", iid, history=True, history_output=True, input=True).json()
    assert st["runtimeStatus"] == "Running" and st["historyLen"] >= 1
    assert iid in _client(patterns_host, "status_all").json()
    assert iid in _client(patterns_host, "status_by", statuses=["Running"]).json()
    assert _client(patterns_host, "suspend", iid).status_code == 200
    assert patterns_host.status(iid)["runtimeStatus"] == "Suspended"
    assert _client(patterns_host, "resume", iid).status_code == 200
    assert _client(patterns_host, "raise", iid, name="Go", data="sdk").status_code == 200
    # The SDK's raise_event JSON-encodes the data twice; in Azure the orchestrator then sees the
    # quotes too (azure-functions-durable-python issue #295). devhost keeps that behaviour.
    assert patterns_host.wait_for(iid)["output"] == 'Hello "sdk"!'
    payload = _client(patterns_host, "payload", iid).json()
    assert requests.get(payload["statusQueryGetUri"], timeout=10).json()["instanceId"] == iid
    assert _client(patterns_host, "purge", iid).json() == {"deleted": 1}

    other = patterns_host.start_orchestration("wait_event")
    patterns_host.wait_for(other, until=lambda s: s["runtimeStatus"] == "Running")
    assert _client(patterns_host, "terminate", other, reason="sdk").status_code == 200
    assert patterns_host.wait_for(other)["runtimeStatus"] == "Terminated"

    failing = patterns_host.start_orchestration("activity_fails", {"key": uuid.uuid4().hex, "fail_times": 1})
    patterns_host.wait_for(failing)
    assert _client(patterns_host, "rewind", failing).status_code == 200
    assert patterns_host.wait_for(failing)["runtimeStatus"] == "Completed"

    done = _client(patterns_host, "wait", name="chaining")
    assert done.status_code == 200 and done.json()[0] == "Hello Tokyo!"
    assert _client(patterns_host, "purge_by").json()["deleted"] >= 1
