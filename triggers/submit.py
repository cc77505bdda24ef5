"""Queue a lifecycle request and make sure the model's lifecycle orchestration runs."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any

import azure.durable_functions as df

from adapters import runtime
from mlops.contracts import ABORT_EVENT, LIFECYCLE, RELEASE, ROLLBACK
from mlops.runs import Request, lifecycle_id
from mlops.vocabulary import ACTIVE_RUNTIME_STATUSES

log = logging.getLogger("mlops.triggers")



def _status_name(status: Any) -> str | None:
    runtime_status = getattr(status, "runtime_status", None)
    return None if runtime_status is None else str(getattr(runtime_status, "value", runtime_status))


def _ended_since(status: Any, since: datetime) -> bool:
    """The instance ended at ``since`` or later (its last update, on the host's clock)."""
    updated = getattr(status, "last_updated_time", None)
    if _status_name(status) is None or not isinstance(updated, datetime):
        return False
    return (updated if updated.tzinfo else updated.replace(tzinfo=UTC)) >= since


async def ensure_lifecycle(client: df.DurableOrchestrationClient, model: str, unless_ended_since: datetime | None = None
                           ) -> str:
    """Start the model's lifecycle unless it is running. Returns 'started', 'running' or 'ended since'.

    ``unless_ended_since`` (the monitor's tick): a lifecycle that ended after the tick began has done what the tick
    found to do, or more (it takes every pending request and cleans up as it ends), so the tick's reading is stale
    and starting it again would only add an idle execution, whose empty output would hide what the last one did.
    What comes due after it ended, the next tick starts; a request queued meanwhile starts it itself (``submit``)."""
    iid = lifecycle_id(model)
    for _ in range(3):  # bounded: a start can race another trigger's start
        status = await client.get_status(iid)
        if _status_name(status) in ACTIVE_RUNTIME_STATUSES:
            return "running"
        if unless_ended_since is not None and _ended_since(status, unless_ended_since):
            return "ended since"
        try:
            await client.start_new(LIFECYCLE, iid, {"model": model})
            return "started"
        except Exception as exc:  # 409: another trigger started it a moment ago
            log.info("lifecycle start raced: %s", exc, extra={"model": model})
    return "running"


async def abort_releases(client: df.DurableOrchestrationClient, model: str, reason: str) -> list[str]:
    """Send ``abort`` to every release of the model in flight (a rollback must not wait behind one)."""
    running = await client.get_status_by(runtime_status=[df.OrchestrationRuntimeStatus.Running],
                                         instance_id_prefix=f"{RELEASE}-{model}-")
    aborted = []
    for status in running:
        await client.raise_event(status.instance_id, ABORT_EVENT, {"reason": reason})
        aborted.append(status.instance_id)
    return aborted


async def submit(client: df.DurableOrchestrationClient, request: Request) -> dict[str, Any]:
    """Queue the request (duplicates are dropped) and wake the lifecycle."""
    # Blob I/O: off the event loop, which also serves the host's own HTTP API.
    accepted = await asyncio.to_thread(runtime.control().put_request, request)
    if not accepted:
        log.info("duplicate request ignored", extra={"model": request.model, "dedup_key": request.dedup_key})
        return {"accepted": False, "reason": "duplicate", "run_id": request.run_id}
    aborted: list[str] = []
    if request.kind == ROLLBACK:
        aborted = await abort_releases(client, request.model, f"rollback requested: {request.payload.get('reason')}")
    state = await ensure_lifecycle(client, request.model)
    log.info("request queued", extra={"model": request.model, "kind": request.kind, "run_id": request.run_id,
                                      "lifecycle": state})
    return {"accepted": True, "run_id": request.run_id, "lifecycle": state, "aborted": aborted}
