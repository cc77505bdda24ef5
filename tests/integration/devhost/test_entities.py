"""Durable entities on devhost: the docs' Counter, run by a real devhost process through the SDK's own handles.

https://learn.microsoft.com/azure/azure-functions/durable/durable-functions-entities (the Counter,
signals and calls from orchestrators, the client) and
https://learn.microsoft.com/azure/azure-functions/durable/durable-functions-http-api#signal-entity /
#get-entity (the HTTP routes).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from devhost.testing import DevHostProcess

APP = Path(__file__).parents[1] / "apps" / "entities" / "function_app.py"


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevHostProcess]:
    """One devhost on the entities app, with keys enforced (the public routes' key checks are tested)."""
    process = DevHostProcess(APP, tmp_path_factory.mktemp("entities") / "devhost", enable_auth=True)
    process.start()
    yield process
    process.stop()


def _signal(host: DevHostProcess, name: str, key: str, op: str, value: Any = None) -> requests.Response:
    data = None if value is None else json.dumps(value)
    return host.durable("POST", f"entities/{name}/{key}", params={"op": op}, data=data,
                        headers={"Content-Type": "application/json"})


def _state(host: DevHostProcess, name: str, key: str) -> requests.Response:
    return host.durable("GET", f"entities/{name}/{key}")


def _wait_state(host: DevHostProcess, name: str, key: str, expected: Any, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        resp = _state(host, name, key)
        last = (resp.status_code, resp.text)
        if resp.status_code == 200 and resp.json() == expected:
            return
        time.sleep(0.05)
    raise AssertionError(f"entity {name}/{key} never reached {expected!r}; last {last}\n{host.log_tail()}")


def test_an_orchestrator_signals_and_calls_a_counter_and_the_client_reads_its_state(host: DevHostProcess) -> None:
    iid = host.start_orchestration("counter_orchestrator", "orch")
    status = host.wait_for(iid)
    assert status["runtimeStatus"] == "Completed", status
    # the signal (one-way) is processed before the call from the same orchestration; "add" sets no result
    assert status["output"] == {"after_signal": 3, "add_result": None, "after_call": 7}
    assert _state(host, "Counter", "orch").json() == 7
    assert host.api("GET", "counter/orch").json() == {"exists": True, "state": 7}


def test_calls_to_several_entities_at_once_complete_their_own_tasks(host: DevHostProcess) -> None:
    status = host.wait_for(host.start_orchestration("parallel_calls", "par"))
    assert status["output"] == {"results": [None, None, None], "totals": [0, 1, 2]}, status


def test_the_client_signals_and_reads_through_the_sdk(host: DevHostProcess) -> None:
    assert host.api("GET", "counter/sdk").json() == {"exists": False, "state": None}
    assert host.api("POST", "counter/sdk/add", data=json.dumps(5)).status_code == 202
    assert host.api("POST", "counter/sdk/add", data=json.dumps(2)).status_code == 202
    _wait_state(host, "Counter", "sdk", 7)
    assert host.api("GET", "counter/sdk").json() == {"exists": True, "state": 7}


def test_the_http_api_signals_with_202_and_reads_state_with_200_or_404(host: DevHostProcess) -> None:
    assert _state(host, "Counter", "http").status_code == 404
    resp = _signal(host, "Counter", "http", "add", 4)
    assert resp.status_code == 202, resp.text
    _wait_state(host, "Counter", "http", 4)
    assert _signal(host, "counter", "http", "add", 1).status_code == 202  # entity names are case-insensitive
    _wait_state(host, "Counter", "http", 5)
    assert _state(host, "COUNTER", "http").json() == 5


def test_the_http_api_refuses_bad_requests_and_changes_nothing(host: DevHostProcess) -> None:
    assert _signal(host, "Counter", "bad", "add", 1).status_code == 202
    _wait_state(host, "Counter", "bad", 1)
    assert _signal(host, "NoSuchEntity", "bad", "add", 1).status_code == 404
    not_json = host.durable("POST", "entities/Counter/bad", params={"op": "add"}, data="{nope",
                            headers={"Content-Type": "application/json"})
    assert not_json.status_code == 400
    form = host.durable("POST", "entities/Counter/bad", params={"op": "add"}, data="1",
                        headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert form.status_code == 400
    started = host.durable("POST", "orchestrators/counter_orchestrator/@counter@bad", data=json.dumps("x"),
                           headers={"Content-Type": "application/json"})
    assert started.status_code == 400 and "reserved for entities" in started.text
    # a later signal is processed after everything before it: nothing refused above reached the entity
    assert _signal(host, "Counter", "bad", "add", 10).status_code == 202
    _wait_state(host, "Counter", "bad", 11)


def test_the_entity_routes_need_the_system_key_when_keys_are_enforced(host: DevHostProcess) -> None:
    base = f"{host.base_url}/runtime/webhooks/durabletask/entities/Counter/keyed"
    assert requests.post(base, params={"op": "add"}, json=1, timeout=10).status_code == 401
    assert requests.get(base, timeout=10).status_code == 401
    assert requests.get(base, params={"code": host.function_key}, timeout=10).status_code == 401
    assert requests.post(base, params={"op": "add", "code": host.master_key}, json=1, timeout=10).status_code == 202
    _wait_state(host, "Counter", "keyed", 1)


def test_an_operation_that_raises_surfaces_to_the_caller_and_keeps_the_state(host: DevHostProcess) -> None:
    caught = host.wait_for(host.start_orchestration("failing_call", "fails"))
    assert caught["runtimeStatus"] == "Completed", caught
    assert caught["output"] == {"caught": "cannot break a counter at 5", "state": 5}
    uncaught = host.wait_for(host.start_orchestration("uncaught_call", "fails"))
    assert uncaught["runtimeStatus"] == "Failed"
    assert "cannot explode a counter at 5" in uncaught["output"]
    assert _state(host, "Counter", "fails").json() == 5


def test_a_deleted_entity_has_no_state_and_can_start_again(host: DevHostProcess) -> None:
    assert _signal(host, "Counter", "gone", "add", 3).status_code == 202
    _wait_state(host, "Counter", "gone", 3)
    assert _signal(host, "Counter", "gone", "delete").status_code == 202
    deadline = time.monotonic() + 30
    while _state(host, "Counter", "gone").status_code != 404 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _state(host, "Counter", "gone").status_code == 404
    assert host.api("GET", "counter/gone").json() == {"exists": False, "state": None}
    assert _signal(host, "Counter", "gone", "add", 2).status_code == 202
    _wait_state(host, "Counter", "gone", 2)


def test_operations_from_each_sender_arrive_in_order(host: DevHostProcess) -> None:
    # host.json sets maxEntityOperationBatchSize to 7: 60 orchestration signals span many batches.
    ids = [host.start_orchestration("ordered_signals", {"key": "order", "sender": s, "count": 30})
           for s in ("a", "b")]
    for i in range(20):
        assert _signal(host, "Log", "order", "append", f"http-{i}").status_code == 202
    outputs = [host.wait_for(iid)["output"] for iid in ids]
    for sender, output in zip(("a", "b"), outputs, strict=True):
        # the call that ends the orchestration comes after its own signals, so all 30 are in, in order
        assert [e for e in output if e.startswith(f"{sender}-")] == [f"{sender}-{i}" for i in range(30)]
    deadline = time.monotonic() + 30
    entries: list[str] = []
    while len(entries) < 80 and time.monotonic() < deadline:
        entries = _state(host, "Log", "order").json()
        time.sleep(0.05)
    assert len(entries) == 80
    for sender, count in (("a", 30), ("b", 30), ("http", 20)):
        assert [e for e in entries if e.startswith(f"{sender}-")] == [f"{sender}-{i}" for i in range(count)]


def test_state_and_queued_operations_survive_kill_9_each_operation_applied_once(
        devhost_factory: Callable[..., DevHostProcess]) -> None:
    host = devhost_factory(APP)
    for _ in range(40):
        assert _signal(host, "Counter", "durable", "add", 1).status_code == 202  # 202: the signal is committed
    host.kill()  # SIGKILL, wherever the entity's batches are
    host.start()
    _wait_state(host, "Counter", "durable", 40)
    # state is committed with the operations it consumed: a replayed batch would count some twice
    status = host.wait_for(host.start_orchestration("counter_orchestrator", "durable"))
    assert status["output"] == {"after_signal": 43, "add_result": None, "after_call": 47}
    host.kill()
    host.start()
    assert _state(host, "Counter", "durable").json() == 47
    assert host.api("GET", "counter/durable").json() == {"exists": True, "state": 47}
