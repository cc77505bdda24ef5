"""Fixture app for the monitor page: a release that waits for approval, and two quick orchestrations.

``release`` has one of each bar the page draws: an activity, a timer, an external event and a
sub-orchestration (which runs an activity of its own).
"""

from datetime import timedelta

import azure.durable_functions as df

app = df.DFApp()

APPROVAL = "Approval"
COOL_OFF_SECONDS = 1  # the timer between preparing and waiting: short, the test runs on the real clock


@app.activity_trigger(input_name="release")
def prepare(release: dict) -> dict:
    return {**release, "prepared": True}


@app.activity_trigger(input_name="release")
def publish(release: dict) -> str:
    return f"published {release['name']}"


@app.activity_trigger(input_name="who")
def say_thanks(who: str) -> str:
    return f"thanks {who}"


@app.activity_trigger(input_name="message")
def explode(message: str) -> str:
    raise RuntimeError(message)


@app.orchestration_trigger(context_name="context")
def release(context: df.DurableOrchestrationContext):
    """prepare -> a short timer -> wait for Approval -> notify (sub-orchestration) -> publish."""
    prepared = yield context.call_activity("prepare", context.get_input())
    yield context.create_timer(context.current_utc_datetime + timedelta(seconds=COOL_OFF_SECONDS))
    context.set_custom_status({"stage": "waiting for approval"})
    approval = yield context.wait_for_external_event(APPROVAL)
    thanks = yield context.call_sub_orchestrator("notify", (approval or {}).get("by", "nobody"))
    published = yield context.call_activity("publish", prepared)
    context.set_custom_status({"stage": "done"})
    return {"published": published, "approval": approval, "thanks": thanks}


@app.orchestration_trigger(context_name="context")
def notify(context: df.DurableOrchestrationContext):
    """The sub-orchestration of ``release``."""
    thanks = yield context.call_activity("say_thanks", context.get_input())
    return thanks


@app.orchestration_trigger(context_name="context")
def hello(context: df.DurableOrchestrationContext):
    """Finishes at once: something to purge."""
    greeting = yield context.call_activity("say_thanks", context.get_input())
    return greeting


@app.orchestration_trigger(context_name="context")
def breaks(context: df.DurableOrchestrationContext):
    """Fails: a red bar."""
    result = yield context.call_activity("explode", "on purpose")
    return result
