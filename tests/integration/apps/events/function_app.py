"""Fixture app: Event Grid triggered functions, written as a user would, for devhost's event tests.

Every function writes what it received to ``$EVENTS_OUT_DIR/<function>/<n>.json`` so a test
can read exactly what the function saw. Which events reach which function is decided by the
subscriptions file each test writes (the ``DEVHOST_SUBSCRIPTIONS`` setting).
"""

import json
import os
import uuid
from pathlib import Path

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.FUNCTION)
OUT = Path(os.environ.get("EVENTS_OUT_DIR", "/tmp/devhost-events"))


def describe(event) -> dict:
    """What the function received, field by field (func.EventGridEvent or func.CloudEvent)."""
    if isinstance(event, func.CloudEvent):
        return {"kind": "CloudEvent", "id": event.id, "source": event.source, "type": event.type,
                "subject": event.subject, "time": event.time.isoformat() if event.time else None,
                "specversion": event.specversion, "dataschema": event.dataschema, "data": event.get_json()}
    return {"kind": type(event).__name__, "id": event.id, "topic": event.topic, "subject": event.subject,
            "event_type": event.event_type, "event_time": event.event_time.isoformat() if event.event_time else None,
            "data_version": event.data_version, "data": event.get_json()}


def record(function: str, payload: dict) -> None:
    folder = OUT / function
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{uuid.uuid4().hex}.tmp"
    tmp.write_text(json.dumps(payload))
    tmp.replace(folder / f"{uuid.uuid4().hex}.json")


def attempts(function: str, event_id: str) -> int:
    folder = OUT / function
    if not folder.exists():
        return 0
    return sum(1 for p in folder.glob("*.json") if json.loads(p.read_text())["id"] == event_id)


@app.event_grid_trigger(arg_name="event")
def sink_a(event: func.EventGridEvent) -> None:
    record("sink_a", describe(event))


@app.event_grid_trigger(arg_name="event")
def sink_b(event: func.EventGridEvent) -> None:
    record("sink_b", describe(event))


@app.event_grid_trigger(arg_name="event")
async def sink_async(event: func.EventGridEvent) -> None:
    record("sink_async", describe(event))


@app.event_grid_trigger(arg_name="event")
def fails_always(event: func.EventGridEvent) -> None:
    record("fails_always", describe(event))
    raise RuntimeError(f"fails_always refuses event {event.id}")


@app.event_grid_trigger(arg_name="event")
def flaky(event: func.EventGridEvent) -> None:
    """Fails until its attempt number reaches data.succeedOnAttempt."""
    record("flaky", describe(event))
    wanted = (event.get_json() or {}).get("succeedOnAttempt", 2)
    if attempts("flaky", event.id) < wanted:
        raise RuntimeError(f"flaky: attempt {attempts('flaky', event.id)} of event {event.id} fails")


@app.event_grid_trigger(arg_name="event")
@app.durable_client_input(client_name="client")
async def start_for_blob(event: func.EventGridEvent, client: df.DurableOrchestrationClient) -> None:
    """A new blob starts one orchestration; the instance id comes from the blob's ETag (idempotent)."""
    data = event.get_json()
    instance_id = "blob-" + data["eTag"].strip('"')
    status = await client.get_status(instance_id)
    if status is None or status.runtime_status is None:
        await client.start_new("await_approval", instance_id, {"url": data["url"]})
    record("start_for_blob", {**describe(event), "instance_id": instance_id})


@app.orchestration_trigger(context_name="context")
def await_approval(context: df.DurableOrchestrationContext):
    approved = yield context.wait_for_external_event("approval")
    return {"input": context.get_input(), "approved": approved}


@app.route(route="ping", methods=["GET"])
def ping(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("pong")
