"""The workspace's Event Grid system topic: Azure ML announces each new model version (ModelRegistered).

Schema: https://learn.microsoft.com/azure/event-grid/event-schema-machine-learning-services
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
import uuid
from typing import Any

from .state import State, Workspace, now

MODEL_REGISTERED = "Microsoft.MachineLearningServices.ModelRegistered"


def model_registered(state: State, ws: Workspace, name: str, version: str, tags: dict[str, str],
                     properties: dict[str, str]) -> dict[str, Any]:
    """Publish ModelRegistered (Event Grid schema) where the system topic's subscription delivers."""
    event = {"topic": ws.arm_id, "subject": f"models/{name}:{version}", "eventType": MODEL_REGISTERED,
             "eventTime": now(), "id": str(uuid.uuid4()), "dataVersion": "2", "metadataVersion": "1",
             "data": {"modelName": name, "modelVersion": version, "modelTags": tags, "modelProperties": properties}}
    state.record("eventgrid.ModelRegistered", event)
    if ws.events_url:
        # delivered after the registration returns, as Event Grid does; the outcome is recorded for the test
        threading.Thread(target=_deliver, args=(state.dir, ws, event), daemon=True).start()
    return event


def _deliver(directory: object, ws: Workspace, event: dict[str, Any]) -> None:
    request = urllib.request.Request(ws.events_url, data=json.dumps([event]).encode(), method="POST",
                                     headers={"Content-Type": "application/json", "aeg-sas-key": ws.events_key})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310 - 127.0.0.1 only
            status = answer.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    except OSError as exc:
        status = -1
        event = {**event, "error": str(exc)}
    State(directory).record("eventgrid.delivery", {"id": event["id"], "status": status,  # type: ignore[arg-type]
                                                   "subject": event["subject"], "error": event.get("error")})
