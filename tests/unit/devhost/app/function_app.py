"""Fixture app for the in-process runner's tests: the Durable Functions patterns, written as a user would."""

from collections.abc import Generator
from datetime import timedelta
from typing import Any

import azure.durable_functions as df

app = df.DFApp()

Steps = Generator[Any, Any, Any]

# Activity names, as the orchestrators call them.
SAY_HELLO = "say_hello"
GET_ITEMS = "get_items"
SCORE = "score"
PREPARE = "prepare"
PUBLISH = "publish"
FLAKY = "flaky"
ECHO = "echo"

RETRY = df.RetryOptions(first_retry_interval_in_milliseconds=5000, max_number_of_attempts=3)


# -- activities: real code that the tests replace ----------------------------------------------
@app.activity_trigger(input_name="city")
def say_hello(city: str) -> str:
    return f"Hello {city}!"


@app.activity_trigger(input_name="count")
def get_items(count: int) -> list[int]:
    raise RuntimeError("talks to a database: tests replace it")


@app.activity_trigger(input_name="item")
def score(item: int) -> int:
    raise RuntimeError("calls a model: tests replace it")


@app.activity_trigger(input_name="release")
def prepare(release: dict[str, Any]) -> dict[str, Any]:
    raise RuntimeError("builds an artifact: tests replace it")


@app.activity_trigger(input_name="release")
def publish(release: dict[str, Any]) -> str:
    raise RuntimeError("deploys: tests replace it")


@app.activity_trigger(input_name="attempt")
def flaky(attempt: str) -> str:
    raise RuntimeError("an unreliable service: tests replace it")


@app.activity_trigger(input_name="value")
def echo(value: Any) -> Any:
    return value


# -- orchestrators ----------------------------------------------------------------------------
@app.orchestration_trigger(context_name="context")
def chaining(context: df.DurableOrchestrationContext) -> Steps:
    greetings = []
    for city in ("Tokyo", "Seattle", "London"):
        greetings.append((yield context.call_activity(SAY_HELLO, city)))
    return greetings


@app.orchestration_trigger(context_name="context")
def round_trip(context: df.DurableOrchestrationContext) -> Steps:
    return (yield context.call_activity(ECHO, context.get_input()))


@app.orchestration_trigger(context_name="context")
def fan_out_fan_in(context: df.DurableOrchestrationContext) -> Steps:
    items = yield context.call_activity(GET_ITEMS, context.get_input())
    context.set_custom_status({"stage": "scoring", "count": len(items)})
    scores = yield context.task_all([context.call_activity(SCORE, item) for item in items])
    context.set_custom_status({"stage": "done", "count": len(items)})
    return sum(scores)


@app.orchestration_trigger(context_name="context")
def reminder(context: df.DurableOrchestrationContext) -> Steps:
    """Waits the given minutes on a durable timer, then greets."""
    yield context.create_timer(context.current_utc_datetime + timedelta(minutes=context.get_input()))
    greeting = yield context.call_activity(SAY_HELLO, "later")
    return {"greeting": greeting, "at": context.current_utc_datetime.isoformat()}


@app.orchestration_trigger(context_name="context")
def approval(context: df.DurableOrchestrationContext) -> Steps:
    """Human interaction: prepare, then an Approval event races a deadline; publish only if approved."""
    release = context.get_input()
    context.set_custom_status({"stage": "preparing"})
    yield context.call_activity(PREPARE, release)
    context.set_custom_status({"stage": "approval"})
    deadline = context.create_timer(context.current_utc_datetime + timedelta(hours=release["hours"]))
    approved = context.wait_for_external_event("Approval")
    winner = yield context.task_any([approved, deadline])
    if winner != approved:
        context.set_custom_status({"stage": "timed out"})
        return {"published": False}
    deadline.cancel()
    context.set_custom_status({"stage": "publishing"})
    yield context.call_activity(PUBLISH, release)
    return {"published": True, "by": approved.result["by"]}


@app.orchestration_trigger(context_name="context")
def wait_for_go(context: df.DurableOrchestrationContext) -> Steps:
    value = yield context.wait_for_external_event("Go")
    return (yield context.call_activity(SAY_HELLO, str(value)))


@app.orchestration_trigger(context_name="context")
def releases(context: df.DurableOrchestrationContext) -> Steps:
    """Sub-orchestrations: a chaining child with a generated id, an approval child with a known one."""
    greetings = yield context.call_sub_orchestrator("chaining")
    outcome = yield context.call_sub_orchestrator("approval", {"hours": 1}, f"{context.instance_id}-approval")
    return {"greetings": greetings, "outcome": outcome}


@app.orchestration_trigger(context_name="context")
def retrying(context: df.DurableOrchestrationContext) -> Steps:
    try:
        result = yield context.call_activity_with_retry(FLAKY, RETRY, "call")
    except Exception as exc:
        return {"gave up": str(exc).splitlines()[0]}
    return {"result": result}


@app.orchestration_trigger(context_name="context")
def flaky_child(context: df.DurableOrchestrationContext) -> Steps:
    return (yield context.call_activity(FLAKY, context.instance_id))


@app.orchestration_trigger(context_name="context")
def child_with_retry(context: df.DurableOrchestrationContext) -> Steps:
    return (yield context.call_sub_orchestrator_with_retry("flaky_child", RETRY, None, "the-child"))


@app.orchestration_trigger(context_name="context")
def counter(context: df.DurableOrchestrationContext) -> Steps:
    """continue_as_new: one execution per step until the target."""
    state = context.get_input()
    yield context.call_activity(ECHO, state["n"])
    if state["n"] + 1 >= state["target"]:
        return {"final": state["n"] + 1}
    context.continue_as_new({"n": state["n"] + 1, "target": state["target"]})


@app.orchestration_trigger(context_name="context")
def eternal(context: df.DurableOrchestrationContext) -> Steps:
    """An eternal orchestration with no way out: continues as new every hour, forever."""
    yield context.create_timer(context.current_utc_datetime + timedelta(hours=1))
    context.continue_as_new((context.get_input() or 0) + 1)


@app.orchestration_trigger(context_name="context")
def gives_up(context: df.DurableOrchestrationContext) -> Steps:
    yield context.call_activity(SAY_HELLO, "x")
    raise ValueError("orchestrator gave up")


@app.orchestration_trigger(context_name="context")
def nightly(context: df.DurableOrchestrationContext) -> Steps:
    """A typical batch job: four batches of five scores, ten minutes apart."""
    total = 0
    for batch in range(4):
        scores = yield context.task_all([context.call_activity(SCORE, batch * 5 + i) for i in range(5)])
        total += sum(scores)
        yield context.create_timer(context.current_utc_datetime + timedelta(minutes=10))
    return total
