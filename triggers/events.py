"""Event Grid triggers: data landed, model registered, drift detected; and the Azure Monitor alert webhook.

Each trigger parses the event with mlops.events, turns it into a lifecycle request with a
deterministic dedup key, and queues it. A malformed event is logged with the reason and
changes nothing; Event Grid validates the envelope before the function runs.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any, TypeVar

import azure.durable_functions as df
import azure.functions as func

from adapters import runtime
from mlops.contracts import ReleaseInput, RetrainInput, RollbackInput
from mlops.errors import EventError, PolicyError
from mlops.events import (
    BlobCreated,
    DriftDetected,
    ModelRegistered,
    landing_blob,
    parse_event,
    parse_monitor_alert,
)
from mlops.ports import DataRef
from mlops.reactions import drift_action
from mlops.runs import Request
from mlops.vocabulary import Source

from .submit import submit

log = logging.getLogger("mlops.triggers")
bp = df.Blueprint()
E = TypeVar("E")


def event_to_dict(event: func.EventGridEvent) -> dict[str, Any]:
    """The func.EventGridEvent as an Event Grid schema dict, for mlops.events."""
    return {"id": event.id, "topic": event.topic, "subject": event.subject, "eventType": event.event_type,
            "eventTime": event.event_time.isoformat() if event.event_time else None, "data": event.get_json(),
            "dataVersion": event.data_version or "", "metadataVersion": "1"}


def _parse(event: func.EventGridEvent, kind: type[E], function: str) -> E | None:
    """The event as ``kind``; None (logged with the reason, nothing changed) if it is malformed or another type."""
    try:
        parsed = parse_event(event_to_dict(event))
    except EventError as exc:
        log.error("malformed event ignored by %s: %s", function, exc, extra={"event_id": event.id})
        return None
    if not isinstance(parsed, kind):
        log.warning("unexpected event type %s on %s", event.event_type, function)
        return None
    return parsed


@bp.event_grid_trigger(arg_name="event")
@bp.durable_client_input(client_name="client")
async def on_blob_created(event: func.EventGridEvent, client: df.DurableOrchestrationClient) -> None:
    """New data in the landing container -> retrain that model."""
    parsed = _parse(event, BlobCreated, "on_blob_created")
    if parsed is None:
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
    data = DataRef(url=blob.url, etag=blob.etag, content_length=blob.content_length)
    await submit(client, Request.of(RetrainInput(blob.model, data), dedup_key=blob.dedup_key,
                                    requested_at=event.event_time.isoformat() if event.event_time else ""))


@bp.event_grid_trigger(arg_name="event")
@bp.durable_client_input(client_name="client")
async def on_model_registered(event: func.EventGridEvent, client: df.DurableOrchestrationClient) -> None:
    """A model version was registered -> release it."""
    parsed = _parse(event, ModelRegistered, "on_model_registered")
    if parsed is None:
        return
    await submit(client, Request.of(ReleaseInput(parsed.model, str(parsed.version)), dedup_key=parsed.dedup_key))


async def _act_on_drift(client: df.DurableOrchestrationClient, drift: DriftDetected) -> dict[str, Any] | None:
    """Per the model's policy (``monitoring.on_drift``): roll back (then maybe retrain), or retrain only."""
    try:
        policy = await asyncio.to_thread(runtime.policy, drift.model)
    except PolicyError as exc:
        log.error("drift on %s ignored: %s", drift.model, exc)
        return None
    if drift_action(policy.monitoring.on_drift) == "retrain":
        data = await asyncio.to_thread(runtime.landing().newest, drift.model, policy.data.allowed_suffixes)
        if data is None:
            log.warning("drift on %s: policy on_drift is retrain, but no data has landed for it; nothing to do",
                        drift.model)
            return None
        return await submit(client, Request.of(RetrainInput(drift.model, data, reason=drift.reason),
                                               dedup_key=f"drift:{drift.dedup_key}", requested_by="drift"))
    rollback = RollbackInput(drift.model, drift.reason, drift.version, drift.source, drift.evidence)
    return await submit(client, Request.of(rollback, dedup_key=drift.dedup_key))


@bp.event_grid_trigger(arg_name="event")
@bp.durable_client_input(client_name="client")
async def on_drift_event(event: func.EventGridEvent, client: df.DurableOrchestrationClient) -> None:
    """The app's drift event or Azure ML's DatasetDriftDetected -> roll back or retrain (per policy)."""
    parsed = _parse(event, DriftDetected, "on_drift_event")
    if parsed is None:
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
    rollback = RollbackInput(alert.model, f"Azure Monitor alert {alert.alert_rule} fired",
                             source=Source.AZURE_MONITOR, evidence=alert.to_dict())
    result = await submit(client, Request.of(rollback, dedup_key=alert.dedup_key))
    return func.HttpResponse(json.dumps(result), status_code=202, mimetype="application/json")
