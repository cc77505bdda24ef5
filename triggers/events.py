"""Event Grid triggers: data landed, model registered, drift detected; and the Azure Monitor alert webhook.

Each trigger parses the event with mlops.events, turns it into a lifecycle request with a
deterministic dedup key, and queues it. A malformed event, or one about a model without a
policy, is logged with the reason and changes nothing (an Event Grid trigger cannot answer
4xx: a failure would only make Event Grid redeliver it); Event Grid validates the envelope
before the function runs. The alert webhook is HTTP: it answers 401/403/400 with the reason,
and writes every alert it accepts to the audit trail.
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
    HealthAlert,
    ModelRegistered,
    landing_blob,
    parse_event,
    parse_monitor_alert,
)
from mlops.operator import ApiError, authorize_alert, principal_from_header
from mlops.policy import Policy, is_model_name
from mlops.ports import DataRef
from mlops.reactions import drift_action
from mlops.runs import Request
from mlops.vocabulary import Source

from . import audit
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


async def _policy(model: str, what: str) -> Policy | None:
    """The model's policy; None, logged with the reason, when it has none (nothing may be queued for it)."""
    try:
        return await asyncio.to_thread(runtime.policy, model)
    except PolicyError as exc:
        log.error("%s for model %r refused: %s", what, model, exc, extra={"model": model})
        return None


@bp.event_grid_trigger(arg_name="event")
@bp.durable_client_input(client_name="client")
async def on_blob_created(event: func.EventGridEvent, client: df.DurableOrchestrationClient) -> None:
    """New data in the landing container -> retrain that model."""
    parsed = _parse(event, BlobCreated, "on_blob_created")
    if parsed is None:
        return
    suffixes: tuple[str, ...] = (".csv",)
    landing = runtime.settings().landing_container
    if parsed.container == landing and is_model_name(parsed.model):  # landing_blob says why other blobs are not data
        policy = await _policy(parsed.model, "data")
        if policy is None:
            return
        suffixes = tuple(policy.data.allowed_suffixes)  # the model's policy says which files are data
    blob = landing_blob(parsed, landing, suffixes)
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
    if parsed is None or await _policy(parsed.model, f"registered version {parsed.version}") is None:
        return
    await submit(client, Request.of(ReleaseInput(parsed.model, str(parsed.version)), dedup_key=parsed.dedup_key))


async def _act_on_drift(client: df.DurableOrchestrationClient, drift: DriftDetected) -> dict[str, Any] | None:
    """Per the model's policy (``monitoring.on_drift``): roll back (then maybe retrain), or retrain only."""
    policy = await _policy(drift.model, "drift")
    if policy is None:
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


def _response(body: dict[str, Any], status: int = 200) -> func.HttpResponse:
    return func.HttpResponse(json.dumps(body), status_code=status, mimetype="application/json")


async def _authorized_alert(req: func.HttpRequest) -> tuple[str, tuple[str, ...], HealthAlert]:
    """Who posts the alert and the alert, about a model with a policy; ApiError 401/403/400 with the reason."""
    principal = principal_from_header(req.headers.get("x-ms-client-principal"))
    s = runtime.settings()
    # A plain action-group webhook can send no header: its key is the URL's code.
    presented = req.params.get("code") or req.headers.get("x-functions-key")
    who = authorize_alert(principal, s.alert_role, presented, s.alert_key)
    try:
        alert = parse_monitor_alert(json.loads(req.get_body() or b"null"))
    except (ValueError, RecursionError) as exc:  # EventError, bad JSON, or JSON nested too deeply to parse
        raise ApiError(400, str(exc) if isinstance(exc, EventError) else f"body is not valid JSON: {exc}") from exc
    try:
        await asyncio.to_thread(runtime.policy, alert.model)
    except PolicyError as exc:
        raise ApiError(400, f"alert {alert.alert_rule!r} is about {alert.model!r}, a model without a policy: "
                            f"{exc}") from exc
    return who, principal.roles if principal else (), alert


@bp.route(route="alerts", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
@bp.durable_client_input(client_name="client")
async def on_monitor_alert(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    """Azure Monitor action-group webhook (common alert schema) -> roll back on a fired health alert (audited)."""
    try:
        who, roles, alert = await _authorized_alert(req)
    except ApiError as exc:
        log.warning("alert refused (%d): %s", exc.status, exc)
        return _response({"error": str(exc)}, exc.status)
    if alert.resolved:
        result: dict[str, Any] = {"accepted": False, "reason": "alert resolved"}
    else:
        rollback = RollbackInput(alert.model, f"Azure Monitor alert {alert.alert_rule} fired",
                                 source=Source.AZURE_MONITOR, evidence=alert.to_dict())
        result = await submit(client, Request.of(rollback, dedup_key=alert.dedup_key))
    state = "resolved" if alert.resolved else "fired"
    audit_id = await audit.record(who, roles, "alert", alert.model, f"Azure Monitor alert {alert.alert_rule} {state}",
                                  result)
    return _response({**result, "audit": audit_id}, 200 if alert.resolved else 202)
