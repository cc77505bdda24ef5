"""devhost.entities: one operation batch through the SDK's own entity handle, and what goes back to callers."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from azure.durable_functions.models.entities.ResponseMessage import ResponseMessage
from azure.durable_functions.models.utils.df_serialization import df_loads

from devhost.app_loader import FunctionIndex
from devhost.entities import (
    EntityRequestError,
    OperationRequest,
    entity_id,
    input_text,
    new_request,
    request_body,
    run_batch,
    split_entity_id,
)
from devhost.testing import OrchestrationRunner, load_app

APP = Path(__file__).parents[2] / "integration" / "apps" / "entities" / "function_app.py"
AT = datetime(2024, 1, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def index() -> FunctionIndex:
    """The entities fixture app, imported once."""
    return load_app(APP)


def _call(op: str, value: Any = None) -> OperationRequest:
    return new_request(op, json.dumps(value), signal=False, parent="orch", parent_execution="exec-1")


def _decoded(body: dict[str, Any]) -> Any:
    """What the SDK makes of a response event (TaskOrchestrationExecutor.set_task_value)."""
    message = ResponseMessage.from_dict(df_loads(body["Input"]))
    value = df_loads(message.result)
    return Exception(value) if message.is_exception else value


def test_a_batch_runs_in_order_and_each_call_gets_its_result_or_its_exception(index: FunctionIndex) -> None:
    counter = index.entity("counter")
    assert counter is not None
    requests = [_call("add", 2), new_request("add", "3", signal=True), _call("get"), _call("fail", "break")]
    outcome = run_batch(counter.func, "@counter@k", None, requests, AT)
    assert outcome.state == "5" and outcome.failed == 1
    assert [target for target, _ in outcome.responses] == ["orch"] * 3  # the signal gets no response
    names = [body["Name"] for _, body in outcome.responses]
    assert names == [requests[0].request_id, requests[2].request_id, requests[3].request_id]
    assert all(body["ExecutionId"] == "exec-1" for _, body in outcome.responses)
    add, get, fail = (_decoded(body) for _, body in outcome.responses)
    assert add is None and get == 5
    assert isinstance(fail, Exception) and str(fail) == "cannot break a counter at 5"


def test_the_state_goes_in_as_json_text_and_deletion_leaves_none(index: FunctionIndex) -> None:
    counter = index.entity("Counter")
    assert counter is not None
    assert run_batch(counter.func, "@counter@k", "41", [_call("add", 1)], AT).state == "42"
    assert run_batch(counter.func, "@counter@k", "41", [_call("delete")], AT).state is None
    assert run_batch(counter.func, "@counter@k", "41", [_call("delete"), _call("add", 2)], AT).state == "2"
    log = index.entity("log")
    assert log is not None and log.name == "log_entity"  # found by its entity_name, in any case
    assert run_batch(log.func, "@log@k", '["a"]', [_call("append", {"b": [1]})], AT).state == '["a", {"b": [1]}]'


def test_a_missing_or_failing_entity_function_fails_every_call_and_keeps_the_state() -> None:
    requests = [_call("add", 1), new_request("add", "1", signal=True)]
    missing = run_batch(None, "@nothing@k", "7", requests, AT)
    assert missing.state == "7" and missing.failed == 2 and len(missing.responses) == 1
    assert "doesn't exist" in str(_decoded(missing.responses[0][1]))

    def broken(context: str) -> str:
        raise RuntimeError("worker crashed")

    failed = run_batch(broken, "@counter@k", "7", requests, AT)
    assert failed.state == "7" and "worker crashed" in str(_decoded(failed.responses[0][1]))
    short = run_batch(lambda c: json.dumps({"entityExists": True, "entityState": "1", "results": []}),
                      "@counter@k", "7", requests, AT)
    assert short.state == "7" and "2 operations gave 0 results" in str(_decoded(short.responses[0][1]))


def test_ids_are_the_sdks_scheduler_ids_and_bad_ones_are_refused() -> None:
    assert entity_id("Counter", "My Key") == "@counter@My Key"
    assert split_entity_id("@counter@a@b") == ("counter", "a@b")
    for name, key in (("", "k"), ("c", ""), ("a@b", "k")):
        with pytest.raises(EntityRequestError):
            entity_id(name, key)
    for bad in ("counter@k", "@counter", "@@k", "@counter@"):
        with pytest.raises(EntityRequestError):
            split_entity_id(bad)


def test_http_bodies_become_the_input_json_text() -> None:
    assert input_text(None, raw_present=False) == "null"
    assert input_text(5, raw_present=True) == "5"
    assert input_text({"a": 1}, raw_present=True) == '{"a": 1}'
    assert input_text("5", raw_present=True) == "5"  # the SDK client's json.dumps(input), posted as a string
    assert input_text("hello", raw_present=True) == '"hello"'  # a plain string stays a string


def test_a_request_survives_its_message_and_a_malformed_one_is_refused() -> None:
    request = _call("add", 3)
    body = request_body(request, AT)
    assert body["Name"] == "op" and OperationRequest.from_body(body) == request
    with pytest.raises(EntityRequestError):
        OperationRequest.from_body({"Input": "{}"})


def test_the_in_process_runner_says_it_does_not_run_entities(index: FunctionIndex) -> None:
    result = OrchestrationRunner(index).run("counter_orchestrator", "k")
    assert result.runtime_status == "Failed"
    assert result.failure is not None and "does not support signal_entity" in result.failure
