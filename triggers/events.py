"""Event Grid triggers: data landed, model registered, drift detected; and the Azure Monitor alert webhook.

Each trigger parses the event with mlops.events, turns it into a lifecycle request with a
deterministic dedup key, and queues it. A malformed event is logged with the reason and
changes nothing; Event Grid validates the envelope before the function runs.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import azure.durable_functions as df
import azure.functions as func

from adapters import runtime
from mlops.errors import EventError, PolicyError
from mlops.events import (
    BlobCreated,
    DriftDetected,
    ModelRegistered,
    landing_blob,
    parse_event,
    parse_monitor_alert,
)
from mlops.runs import RELEASE, RETRAIN, ROLLBACK, Request

from .submit import submit

log = logging.getLogger("mlops.triggers")
bp = df.Blueprint()


def event_to_dict(event: func.EventGridEvent) -> dict[str, Any]:
    """The func.EventGridEvent as an Event Grid schema dict, for mlops.events."""
    return {"id": event.id, "topic": event.topic, "subject": event.subject, "eventType": event.event_type,
            "eventTime": event.event_time.isoformat() if event.event_time else None, "data": event.get_json(),
            "dataVersion": event.data_version or "", "metadataVersion": "1"}


@bp.event_grid_trigger(arg_name="event")
@bp.durable_client_input(client_name="client")
async def on_blob_created(event: func.EventGridEvent, client: df.DurableOrchestrationClient) -> None:
    """New data in the landing container -> retrain that model."""
    try:
        parsed = parse_event(event_to_dict(event))
    except EventError as exc:
        log.error("malformed BlobCreated event ignored: %s", exc, extra={"event_id": event.id})
        return
    if not isinstance(parsed, BlobCreated):
        log.warning("unexpected event type %s on on_blob_created", event.event_type)
        return
    suffixes: tuple[str, ...] = (".csv",)
    if parsed.model:
        try:  # the model's policy says which files are data
            suffixes = tuple(runtime.policy(parsed.model).data.allowed_suffixes)
        except PolicyError as exc:
            log.error("blob for a model without a valid policy ignored: %s", exc, extra={"model": parsed.model})
            return
    blob = landing_blob(parsed, runtime.settings().landing_container, suffixes)
    if blob is None:
        return
    data = {"url": blob.url, "etag": blob.etag, "content_length": blob.content_length}
    await submit(client, Request(kind=RETRAIN, model=blob.model, dedup_key=blob.dedup_key, payload={"data": data},
                                 requested_at=event.event_time.isoformat() if event.event_time else ""))


@bp.event_grid_trigger(arg_name="event")
@bp.durable_client_input(client_name="client")
async def on_model_registered(event: func.EventGridEvent, client: df.DurableOrchestrationClient) -> None:
    """A model version was registered -> release it."""
    try:
        parsed = parse_event(event_to_dict(event))
    except EventError as exc:
        log.error("malformed ModelRegistered event ignored: %s", exc, extra={"event_id": event.id})
        return
    if not isinstance(parsed, ModelRegistered):
        log.warning("unexpected event type %s on on_model_registered", event.event_type)
        return
    await submit(client, Request(kind=RELEASE, model=parsed.model, dedup_key=parsed.dedup_key,
                                 payload={"version": parsed.version}))


async def _act_on_drift(client: df.DurableOrchestrationClient, drift: DriftDetected) -> dict[str, Any] | None:
    """Per the model's policy (``monitoring.on_drift``): roll back (then maybe retrain), or retrain only."""
    try:
        policy = await asyncio.to_thread(runtime.policy, drift.model)
    except PolicyError as exc:
        log.error("drift on %s ignored: %s", drift.model, exc)
        return None
    if policy.monitoring.on_drift == "retrain":
        # the champion stays: an older model would meet the drifted inputs no better
        data = await asyncio.to_thread(runtime.newest_landed, drift.model, policy.data.allowed_suffixes)
        if data is None:
            log.warning("drift on %s: policy on_drift is retrain, but no data has landed for it; nothing to do",
                        drift.model)
            return None
        return await submit(client, Request(kind=RETRAIN, model=drift.model, dedup_key=f"drift:{drift.dedup_key}",
                                            payload={"data": data, "reason": drift.reason}, requested_by="drift"))
    payload = {"reason": drift.reason, "version": drift.version, "source": drift.source,
               "evidence": drift.evidence}
    return await submit(client, Request(kind=ROLLBACK, model=drift.model, dedup_key=drift.dedup_key,
                                        payload=payload))


@bp.event_grid_trigger(arg_name="event")
@bp.durable_client_input(client_name="client")
async def on_drift_event(event: func.EventGridEvent, client: df.DurableOrchestrationClient) -> None:
    """The app's drift event or Azure ML's DatasetDriftDetected -> roll back or retrain (per policy)."""
    try:
        parsed = parse_event(event_to_dict(event))
    except EventError as exc:
        log.error("malformed drift event ignored: %s", exc, extra={"event_id": event.id})
        return
    if not isinstance(parsed, DriftDetected):
        log.warning("unexpected event type %s on on_drift_event", event.event_type)
        return
    await _act_on_drift(client, parsed)


@bp.route(route="alerts", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
@bp.durable_client_input(client_name="client")
async def on_monitor_alert(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    """Azure Monitor action-group webhook (common alert schema) -> roll back on a fired health alert."""
    try:
        alert = parse_monitor_alert(req.get_json())
    except (ValueError, EventError) as exc:
        return func.HttpResponse(json.dumps({"error": str(exc)}), status_code=400, mimetype="application/json")
    if alert.resolved:
        return func.HttpResponse(json.dumps({"accepted": False, "reason": "alert resolved"}),
                                 mimetype="application/json")
    result = await submit(client, Request(kind=ROLLBACK, model=alert.model, dedup_key=alert.dedup_key,
                                          payload={"reason": f"Azure Monitor alert {alert.alert_rule} fired",
                                                   "source": "azure-monitor", "evidence": alert.to_dict()}))
    return func.HttpResponse(json.dumps(result), status_code=202, mimetype="application/json")
