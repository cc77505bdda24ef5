"""Event Grid triggers: data landed, model registered, drift or performance decay detected; and the Azure Monitor
alert webhook.

Each trigger parses the event with mlops.events, turns it into a lifecycle request with a
deterministic dedup key, and queues it. Ground truth (``feedback/<model>/<file>.csv`` in the landing container)
arrives through the same BlobCreated trigger and never starts a retrain: its labels go to the feedback store
(``mlops.feedback``), or the file is refused with the reason in the log and in the store, and no label of it kept.
A malformed event, or one about a model without a policy, is logged with the reason and changes nothing (an Event
Grid trigger cannot answer 4xx: a failure would only make Event Grid redeliver it); Event Grid validates the
envelope before the function runs. The alert webhook is HTTP: it answers 401/403/400 with the reason,
and writes every alert it accepts to the audit trail.
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime
from typing import Any, TypeVar

import azure.durable_functions as df
import azure.functions as func

from adapters import runtime
from mlops.contracts import ReleaseInput, RetrainInput, RollbackInput
from mlops.errors import EventError, FeedbackError, NotFoundError, PolicyError
from mlops.events import (
    BlobCreated,
    DriftDetected,
    HealthAlert,
    ModelPerformanceDegraded,
    ModelRegistered,
    landing_blob,
    parse_event,
    parse_monitor_alert,
)
from mlops.feedback import LabelBatch, feedback_model, label_kind, parse_labels
from mlops.operator import ApiError, authorize_alert, principal_from_header
from mlops.policy import Policy, is_model_name
from mlops.ports import DataRef
from mlops.reactions import signal_action
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
    if parsed.container == landing and feedback_model(parsed.blob_name) is not None:
        await asyncio.to_thread(take_feedback, parsed)  # ground truth: labels, never a retrain
        return
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


def take_feedback(blob: BlobCreated) -> str:
    """Read a feedback file and keep its labels, or refuse it with the reason (logged, and in the feedback store);
    what happened, in a word ("kept", "duplicate", "refused", "ignored"). Blocking I/O."""
    model = feedback_model(blob.blob_name)
    where = {"blob": blob.blob_name, "event_id": blob.event_id, "model": model}
    if not model:
        log.error("feedback file %s refused: not under feedback/<model>/ with a valid model name", blob.blob_name,
                  extra=where)
        return "ignored"
    if blob.content_length <= 0:  # Data Lake's CreateFile event: the content follows in another
        log.info("feedback blob %s ignored: empty", blob.blob_name, extra=where)
        return "ignored"
    try:
        policy = runtime.policy(model)
    except PolicyError as exc:
        log.error("feedback for model %r refused: %s", model, exc, extra=where)
        return "ignored"
    received = datetime.now(UTC).isoformat()  # the monitor's windows are on this clock, not the event's
    try:
        if not blob.blob_name.lower().endswith(".csv"):
            raise FeedbackError("file", "unsupported file type: a feedback file is a .csv", blob.blob_name)
        raw = runtime.platform().read_data(DataRef(url=blob.url, etag=blob.etag))
        labels = parse_labels(raw, policy.label, label_kind(policy), blob.blob_name)
    except (FeedbackError, NotFoundError) as exc:  # a file gone before it was read is refused too: never retried
        log.error("feedback file refused, no label kept: %s", exc, extra=where)
        runtime.feedback().record_refusal(model, blob.blob_name, blob.url, blob.etag, str(exc), received)
        return "refused"
    kept = runtime.feedback().record_labels(LabelBatch(model, blob.blob_name, blob.url, blob.etag, received, labels))
    log.info("feedback file %s: %d labels %s", blob.blob_name, len(labels), "kept" if kept else "already kept",
             extra=where)
    return "kept" if kept else "duplicate"


async def _act_on_signal(client: df.DurableOrchestrationClient,
                         signal: DriftDetected | ModelPerformanceDegraded) -> dict[str, Any] | None:
    """Per the model's policy (``mlops.reactions.signal_action``): roll back, retrain only, or alert only."""
    kind = "drift" if isinstance(signal, DriftDetected) else "performance"
    policy = await _policy(signal.model, kind)
    if policy is None:
        return None
    action = signal_action(policy, signal)
    if action == "alert":
        log.warning("%s on %s: the policy says alert only; the monitor's notice went out", kind, signal.model)
        return None
    if action == "retrain":
        data = await asyncio.to_thread(runtime.landing().newest, signal.model, policy.data.allowed_suffixes)
        if data is None:
            log.warning("%s on %s: the policy says retrain, but no data has landed for it; nothing to do", kind,
                        signal.model)
            return None
        key = f"drift:{signal.dedup_key}" if kind == "drift" else f"retrain:{signal.dedup_key}"
        return await submit(client, Request.of(RetrainInput(signal.model, data, reason=signal.reason),
                                               dedup_key=key, requested_by=kind))
    if isinstance(signal, DriftDetected):
        rollback = RollbackInput(signal.model, signal.reason, signal.version, signal.source, signal.evidence)
    else:
        rollback = RollbackInput(signal.model, signal.reason, signal.version, Source.PERFORMANCE, signal.evidence)
    return await submit(client, Request.of(rollback, dedup_key=signal.dedup_key))


@bp.event_grid_trigger(arg_name="event")
@bp.durable_client_input(client_name="client")
async def on_drift_event(event: func.EventGridEvent, client: df.DurableOrchestrationClient) -> None:
    """The app's drift event, Azure ML's DatasetDriftDetected, or the app's performance event -> roll back,
    retrain or alert only (per policy)."""
    parsed = _parse(event, object, "on_drift_event")
    if isinstance(parsed, DriftDetected | ModelPerformanceDegraded):
        await _act_on_signal(client, parsed)
    elif parsed is not None:
        log.warning("unexpected event type %s on on_drift_event", event.event_type)


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
