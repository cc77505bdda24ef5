"""Fixture app: the Durable Functions patterns, written as a user would, for devhost's tests."""

import json
import os
import time
from datetime import timedelta
from pathlib import Path

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.FUNCTION)
COUNTERS = Path(os.environ.get("PATTERNS_COUNTER_DIR", "/tmp"))


# -- HTTP starters and plain HTTP functions -------------------------------------------------
@app.route(route="orchestrators/{functionName}/{instanceId?}", methods=["POST"])
@app.durable_client_input(client_name="client")
async def http_start(req: func.HttpRequest, client) -> func.HttpResponse:
    body = req.get_body()
    payload = json.loads(body) if body else None
    instance_id = await client.start_new(req.route_params["functionName"], req.route_params.get("instanceId"),
                                         payload)
    return client.create_check_status_response(req, instance_id)


@app.route(route="client/{op}/{instanceId?}", methods=["POST"])
@app.durable_client_input(client_name="client")
async def client_ops(req: func.HttpRequest, client) -> func.HttpResponse:
    """Exercises DurableOrchestrationClient methods so tests can call them through HTTP."""
    op = req.route_params["op"]
    iid = req.route_params.get("instanceId")
    args = req.get_json() if req.get_body() else {}
    if op == "status":
        st = await client.get_status(iid, show_history=args.get("history", False),
                                     show_history_output=args.get("history_output", False),
                                     show_input=args.get("input", False))
        return func.HttpResponse(json.dumps(st.to_json() | {"historyLen": len(st.historyEvents or [])}
                                            if hasattr(st, "historyEvents") else st.to_json()),
                                 mimetype="application/json")
    if op == "status_all":
        return func.HttpResponse(json.dumps([s.instance_id for s in await client.get_status_all()]))
    if op == "status_by":
        statuses = [df.OrchestrationRuntimeStatus(s) for s in args.get("statuses", [])]
        found = await client.get_status_by(runtime_status=statuses or None)
        return func.HttpResponse(json.dumps([s.instance_id for s in found]))
    if op == "raise":
        await client.raise_event(iid, args["name"], args.get("data"))
    elif op == "terminate":
        await client.terminate(iid, args.get("reason", "test"))
    elif op == "suspend":
        await client.suspend(iid, "test")
    elif op == "resume":
        await client.resume(iid, "test")
    elif op == "rewind":
        await client.rewind(iid, "test")
    elif op == "purge":
        result = await client.purge_instance_history(iid)
        return func.HttpResponse(json.dumps({"deleted": result.instances_deleted}))
    elif op == "purge_by":
        from datetime import datetime
        result = await client.purge_instance_history_by(
            created_time_from=datetime(2000, 1, 1),
            runtime_status=[df.OrchestrationRuntimeStatus.Completed])
        return func.HttpResponse(json.dumps({"deleted": result.instances_deleted}))
    elif op == "payload":
        return func.HttpResponse(json.dumps(client.create_http_management_payload(iid)))
    elif op == "wait":
        iid = await client.start_new(args["name"], None, args.get("input"))
        return await client.wait_for_completion_or_create_check_status_response(req, iid, 10000, 100)
    else:
        return func.HttpResponse(f"unknown op {op}", status_code=400)
    return func.HttpResponse("ok")


@app.route(route="hello/{name:alpha}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def hello(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(json.dumps({"hello": req.route_params["name"], "q": req.params.get("q"),
                                         "method": req.method}), mimetype="application/json",
                             headers={"x-fixture": "yes"})


@app.route(route="items/{id:int}", methods=["GET", "PUT"], auth_level=func.AuthLevel.FUNCTION)
async def items(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(json.dumps({"id": int(req.route_params["id"]), "body": req.get_body().decode()}),
                             status_code=201 if req.method == "PUT" else 200, mimetype="application/json")


@app.route(route="admin-only", auth_level=func.AuthLevel.ADMIN)
def admin_only(req: func.HttpRequest) -> str:
    return "admin ok"


# -- activities -----------------------------------------------------------------------------
@app.activity_trigger(input_name="city")
def say_hello(city: str) -> str:
    return f"Hello {city}!"


@app.activity_trigger(input_name="n")
async def square(n: int) -> int:
    return n * n


@app.activity_trigger(input_name="spec")
def flaky(spec: dict) -> str:
    """Fails until it has been called `fail_times` times for `key`."""
    path = COUNTERS / f"flaky-{spec['key']}"
    count = int(path.read_text()) if path.exists() else 0
    path.write_text(str(count + 1))
    if count < spec["fail_times"]:
        raise ValueError(f"flaky failure {count + 1}")
    return f"ok after {count + 1}"


@app.activity_trigger(input_name="message")
def boom(message: str) -> str:
    raise RuntimeError(message)


@app.activity_trigger(input_name="seconds")
def burn_cpu(seconds: float) -> int:
    end = time.perf_counter() + seconds
    n = 0
    while time.perf_counter() < end:
        n += 1
    return n


@app.activity_trigger(input_name="key")
def check_job(key: str) -> bool:
    """Monitor pattern: the 'job' is done on the third check."""
    path = COUNTERS / f"job-{key}"
    count = int(path.read_text()) if path.exists() else 0
    path.write_text(str(count + 1))
    return count + 1 >= 3


# -- orchestrators --------------------------------------------------------------------------
@app.orchestration_trigger(context_name="context")
def chaining(context: df.DurableOrchestrationContext):
    r1 = yield context.call_activity("say_hello", "Tokyo")
    r2 = yield context.call_activity("say_hello", "Seattle")
    r3 = yield context.call_activity("say_hello", "London")
    return [r1, r2, r3]


@app.orchestration_trigger(context_name="context")
def replay_flags(context: df.DurableOrchestrationContext):
    """Reports what replay looks like from inside: is_replaying after each step, and IsPlayed per event."""
    flags = [context.is_replaying]
    yield context.call_activity("say_hello", "Tokyo")
    flags.append(context.is_replaying)
    yield context.call_activity("say_hello", "Seattle")
    flags.append(context.is_replaying)
    return {"is_replaying": flags, "played": [e.is_played for e in context.histories]}


@app.orchestration_trigger(context_name="context")
def sequence5(context: df.DurableOrchestrationContext):
    out = []
    for city in ["Tokyo", "Seattle", "London", "Paris", "Lima"]:
        out.append((yield context.call_activity("say_hello", city)))
    return out


@app.orchestration_trigger(context_name="context")
def fan_out(context: df.DurableOrchestrationContext):
    n = context.get_input() or 10
    context.set_custom_status({"stage": "fanning out", "n": n})
    results = yield context.task_all([context.call_activity("square", i) for i in range(n)])
    context.set_custom_status({"stage": "done", "n": n})
    return sum(results)


@app.orchestration_trigger(context_name="context")
def approval(context: df.DurableOrchestrationContext):
    """Human interaction: an Approval event races a timer."""
    hours = (context.get_input() or {}).get("hours", 6)
    deadline = context.current_utc_datetime + timedelta(hours=hours)
    timeout = context.create_timer(deadline)
    approved = context.wait_for_external_event("Approval")
    context.set_custom_status("waiting for approval")
    winner = yield context.task_any([approved, timeout])
    if winner == approved:
        timeout.cancel()
        return {"approved": approved.result}
    return {"approved": None, "timed_out": True}


@app.orchestration_trigger(context_name="context")
def monitor(context: df.DurableOrchestrationContext):
    """Monitor: poll a job with durable timers until it is done."""
    key = context.get_input()
    checks = 0
    while True:
        checks += 1
        done = yield context.call_activity("check_job", key)
        if done:
            return {"checks": checks}
        yield context.create_timer(context.current_utc_datetime + timedelta(minutes=30))


@app.orchestration_trigger(context_name="context")
def parent(context: df.DurableOrchestrationContext):
    a = yield context.call_sub_orchestrator("chaining")
    b = yield context.call_sub_orchestrator("fan_out", 4, instance_id=f"{context.instance_id}-child")
    return {"a": a, "b": b}


@app.orchestration_trigger(context_name="context")
def retries(context: df.DurableOrchestrationContext):
    spec = context.get_input()
    opts = df.RetryOptions(first_retry_interval_in_milliseconds=100, max_number_of_attempts=spec["attempts"])
    try:
        result = yield context.call_activity_with_retry("flaky", opts, spec)
    except Exception as exc:
        return {"error": str(exc).splitlines()[0]}
    after = yield context.call_activity("say_hello", "after-retry")
    return {"result": result, "after": after}


@app.orchestration_trigger(context_name="context")
def sub_retry(context: df.DurableOrchestrationContext):
    spec = context.get_input()
    opts = df.RetryOptions(first_retry_interval_in_milliseconds=100, max_number_of_attempts=3)
    result = yield context.call_sub_orchestrator_with_retry("flaky_child", opts, spec)
    return result


@app.orchestration_trigger(context_name="context")
def flaky_child(context: df.DurableOrchestrationContext):
    spec = context.get_input()
    result = yield context.call_activity("flaky", spec)
    return result


@app.orchestration_trigger(context_name="context")
def counter(context: df.DurableOrchestrationContext):
    """continue_as_new: count up to the target, one execution per step."""
    state = context.get_input() or {"n": 0, "target": 3}
    yield context.call_activity("square", state["n"])
    if state["n"] + 1 >= state["target"]:
        return {"final": state["n"] + 1}
    context.continue_as_new({"n": state["n"] + 1, "target": state["target"]})


@app.orchestration_trigger(context_name="context")
def catches(context: df.DurableOrchestrationContext):
    try:
        yield context.call_activity("boom", "expected failure")
    except Exception as exc:
        return {"caught": "expected failure" in str(exc)}
    return {"caught": False}


@app.orchestration_trigger(context_name="context")
def fails(context: df.DurableOrchestrationContext):
    yield context.call_activity("say_hello", "x")
    raise ValueError("orchestrator gave up")


@app.orchestration_trigger(context_name="context")
def activity_fails(context: df.DurableOrchestrationContext):
    result = yield context.call_activity("flaky", context.get_input())
    return result


@app.orchestration_trigger(context_name="context")
def wait_event(context: df.DurableOrchestrationContext):
    value = yield context.wait_for_external_event("Go")
    done = yield context.call_activity("say_hello", str(value))
    return done


@app.orchestration_trigger(context_name="context")
def cpu_and_quick(context: df.DurableOrchestrationContext):
    slow = context.call_activity("burn_cpu", context.get_input() or 2.0)
    quick = context.call_activity("say_hello", "quick")
    results = yield context.task_all([slow, quick])
    return results[1]


@app.activity_trigger(input_name="value")
def slow_echo(value: str) -> str:
    time.sleep(0.2)
    return value


@app.orchestration_trigger(context_name="context")
def slow_chain(context: df.DurableOrchestrationContext):
    """Five slow steps then a fan-out: long enough to be killed in the middle."""
    tag = context.get_input()
    steps = []
    for i in range(5):
        steps.append((yield context.call_activity("slow_echo", f"{tag}-{i}")))
    squares = yield context.task_all([context.call_activity("square", i) for i in range(5)])
    return {"steps": steps, "sum": sum(squares)}
