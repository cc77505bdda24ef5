"""Fixture app: an empty HTTP route prefix (HTTP functions at the root) beside an Event Grid function."""

import json
import os
from pathlib import Path

import azure.functions as func

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)
OUT = Path(os.environ.get("EVENTS_OUT_DIR", "/tmp/devhost-events"))


@app.route(route="{*anything}")
def catch_all(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(f"catch_all {req.route_params.get('anything')}")


@app.event_grid_trigger(arg_name="event")
def sink_a(event: func.EventGridEvent) -> None:
    (OUT / "sink_a").mkdir(parents=True, exist_ok=True)
    tmp = OUT / "sink_a" / f".{event.id}.tmp"
    tmp.write_text(json.dumps({"id": event.id}))
    tmp.replace(OUT / "sink_a" / f"{event.id}.json")
