"""Fixture app for devhost's durable entities, written from the public docs' Counter example.

https://learn.microsoft.com/azure/azure-functions/durable/durable-functions-entities (Python v2):
a function-based ``Counter`` entity, an orchestrator that signals and calls it, and a client
that signals it and reads its state. A ``Log`` entity records the order its operations arrive in.
"""

import json
from collections.abc import Generator
from typing import Any

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)


@app.entity_trigger(context_name="context")
def Counter(context: df.DurableEntityContext) -> None:
    current_value = context.get_state(lambda: 0)
    operation = context.operation_name
    if operation == "add":
        amount = context.get_input()
        current_value += amount
    elif operation == "reset":
        current_value = 0
    elif operation == "get":
        context.set_result(current_value)
    elif operation == "fail":
        raise ValueError(f"cannot {context.get_input()} a counter at {current_value}")
    elif operation == "delete":
        context.destruct_on_exit()
        return
    context.set_state(current_value)


@app.entity_trigger(context_name="context", entity_name="Log")
def log_entity(context: df.DurableEntityContext) -> None:
    entries = context.get_state(lambda: [])
    if context.operation_name == "append":
        entries.append(context.get_input())
    context.set_result(entries)
    context.set_state(entries)


@app.orchestration_trigger(context_name="context")
def counter_orchestrator(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    key = context.get_input()
    entity = df.EntityId("Counter", key)
    context.signal_entity(entity, "add", 3)
    state = yield context.call_entity(entity, "get")
    added = yield context.call_entity(entity, "add", 4)
    after = yield context.call_entity(entity, "get")
    return {"after_signal": state, "add_result": added, "after_call": after}


@app.orchestration_trigger(context_name="context")
def failing_call(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    entity = df.EntityId("Counter", context.get_input())
    yield context.call_entity(entity, "add", 5)
    try:
        yield context.call_entity(entity, "fail", "break")
    except Exception as exc:  # the operation's exception, surfaced to the caller
        caught = str(exc)
    state = yield context.call_entity(entity, "get")
    return {"caught": caught, "state": state}


@app.orchestration_trigger(context_name="context")
def uncaught_call(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    yield context.call_entity(df.EntityId("Counter", context.get_input()), "fail", "explode")
    return "not reached"


@app.orchestration_trigger(context_name="context")
def ordered_signals(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    spec = context.get_input()
    entity = df.EntityId("Log", spec["key"])
    for i in range(spec["count"]):
        context.signal_entity(entity, "append", f"{spec['sender']}-{i}")
    entries = yield context.call_entity(entity, "get")
    return entries


@app.orchestration_trigger(context_name="context")
def parallel_calls(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    key = context.get_input()
    results = yield context.task_all([context.call_entity(df.EntityId("Counter", f"{key}-{i}"), "add", i)
                                      for i in range(3)])
    totals = yield context.task_all([context.call_entity(df.EntityId("Counter", f"{key}-{i}"), "get")
                                     for i in range(3)])
    return {"results": results, "totals": totals}


@app.route(route="counter/{key}/{op}", methods=["POST"])
@app.durable_client_input(client_name="client")
async def signal_counter(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    body = req.get_body()
    value = json.loads(body) if body else None
    await client.signal_entity(df.EntityId("Counter", req.route_params["key"]), req.route_params["op"], value)
    return func.HttpResponse(status_code=202)


@app.route(route="counter/{key}", methods=["GET"])
@app.durable_client_input(client_name="client")
async def read_counter(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    response = await client.read_entity_state(df.EntityId("Counter", req.route_params["key"]))
    return func.HttpResponse(json.dumps({"exists": response.entity_exists, "state": response.entity_state}),
                             mimetype="application/json")
