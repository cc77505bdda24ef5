"""Queue a lifecycle request and make sure the model's lifecycle orchestration runs."""

from __future__ import annotations

import asyncio
import logging
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


async def ensure_lifecycle(client: df.DurableOrchestrationClient, model: str) -> str:
    """Start the model's lifecycle unless it is running. Returns 'started' or 'running'."""
    iid = lifecycle_id(model)
    for _ in range(3):  # bounded: a start can race another trigger's start
        status = await client.get_status(iid)
        if _status_name(status) in ACTIVE_RUNTIME_STATUSES:
            return "running"
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
