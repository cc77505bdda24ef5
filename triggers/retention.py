"""Retention of finished runs' Durable history, and the run index's backfill.

The monitor's tick calls ``purge_finished_runs``: at most once an hour it indexes the exact
outcome of every finished run created more than ``MLOPS_RUN_RETENTION_DAYS`` ago (their entries
then say what their Durable status said, which a lifecycle's own record cannot always: a release
that rolled back its canary), then purges their history with the Durable client's
``purge_instance_history_by`` (https://learn.microsoft.com/azure/azure-functions/durable/durable-functions-instance-management#purge-instance-history).
The run index keeps each run's summary and the audit trail is never touched, so ``GET /api/runs``
still lists a purged run and ``GET /api/runs/{id}`` answers its summary with ``purged: true``.

``POST /api/maintenance/backfill-runs`` (operator role, audited) indexes the runs made before the
index existed, from ``get_status_by``: a one-off after an upgrade (docs/operations.md).
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import azure.durable_functions as df
import azure.functions as func

from adapters import runtime
from mlops.contracts import RUN_KINDS
from mlops.operator import ApiError, principal_from_header, require_operator
from mlops.run_index import FINISHED_STATUSES, entry_from_status

from . import audit

log = logging.getLogger("mlops.retention")
bp = df.Blueprint()

PURGE_INTERVAL = timedelta(hours=1)  # a purge by time range reads the backend's instance table: not every tick
_EPOCH = datetime(1970, 1, 1)  # the SDK requires created_time_from; the Durable client formats naive UTC times
_FINISHED = [df.OrchestrationRuntimeStatus(s) for s in FINISHED_STATUSES]


def tick_time(timer: func.TimerRequest) -> datetime:
    """The time of a monitor tick: the later of the wall clock and the occurrence the timer fired for.

    The occurrence is on the host's clock, the clock Durable stamps instances with: the same as the
    wall clock in Azure, and devhost's virtual clock locally. Never later than the host's now.
    """
    now = datetime.now(UTC)
    try:
        status = getattr(timer, "schedule_status", None) or {}  # the concrete TimerRequest has it, the ABC does not
        due = datetime.fromisoformat(str(status.get("Next", "")).replace("Z", "+00:00"))
    except ValueError:
        return now
    due = due if due.tzinfo else due.replace(tzinfo=UTC)
    return max(now, due)


def status_document(status: Any) -> dict[str, Any] | None:
    """The parts of a Durable status the run index reads; None for an instance that is not a run."""
    iid = getattr(status, "instance_id", None) or ""
    runtime_status = getattr(status, "runtime_status", None)
    if runtime_status is None or not any(iid.startswith(f"{kind}-") for kind in RUN_KINDS):
        return None
    created, updated = getattr(status, "created_time", None), getattr(status, "last_updated_time", None)
    return {"instanceId": iid, "runtimeStatus": runtime_status.value, "customStatus": status.custom_status,
            "createdTime": created.isoformat() if created else None,
            "lastUpdatedTime": updated.isoformat() if updated else None}


def index_statuses(found: list[Any], overwrite: bool) -> int:
    """Write the index entry of each run in ``found`` (Durable statuses); returns how many. Blocking I/O.

    Without ``overwrite``, a run already indexed is rewritten only if the index still shows it running
    while Durable says it finished (its end write was lost).
    """
    index = runtime.control()
    written = 0
    for status in found:
        body = status_document(status)
        if body is None or not body["createdTime"]:
            continue
        known = index.run_entry(body["instanceId"])
        if known is not None and not overwrite and (known.finished or body["runtimeStatus"] not in FINISHED_STATUSES):
            continue
        index.record_run(entry_from_status(body, known))
        written += 1
    return written


async def purge_finished_runs(client: df.DurableOrchestrationClient, now: datetime) -> dict[str, Any] | None:
    """Index, then purge, the runs that finished and were created before the retention; None if not due yet.

    Never raises: a failed purge is logged and tried again at the next tick.
    """
    try:
        index = runtime.control()
        last = await asyncio.to_thread(index.last_purge)
        if last is not None and now - datetime.fromisoformat(last["at"]) < PURGE_INTERVAL:
            return None
        cutoff = now - timedelta(days=runtime.settings().run_retention_days)
        naive_cutoff = cutoff.astimezone(UTC).replace(tzinfo=None)
        old = await client.get_status_by(created_time_to=naive_cutoff, runtime_status=_FINISHED)
        indexed = await asyncio.to_thread(index_statuses, old, True)
        purged = await client.purge_instance_history_by(created_time_from=_EPOCH, created_time_to=naive_cutoff,
                                                        runtime_status=_FINISHED)
        outcome = {"at": now.isoformat(), "cutoff": cutoff.isoformat(), "indexed": indexed,
                   "purged": purged.instances_deleted}
        await asyncio.to_thread(index.record_purge, outcome)
        log.info("purged the history of %d finished runs created before %s", purged.instances_deleted,
                 cutoff.isoformat(), extra={"indexed": indexed})
        return outcome
    except Exception:  # the monitor's other work goes on; the next tick tries again
        log.exception("purging finished runs' history failed")
        return None


@bp.route(route="maintenance/backfill-runs", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
@bp.durable_client_input(client_name="client")
async def backfill_runs(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    """POST /api/maintenance/backfill-runs (operator role): index the runs Durable has and the index lacks."""
    try:
        principal = principal_from_header(req.headers.get("x-ms-client-principal"))
        principal = require_operator(principal, runtime.settings().operator_role)
    except ApiError as exc:
        return func.HttpResponse(json.dumps({"error": str(exc)}), status_code=exc.status, mimetype="application/json")
    found: list[Any] = []
    for kind in RUN_KINDS:  # by prefix: the lifecycles' own instances are not runs
        found += await client.get_status_by(instance_id_prefix=f"{kind}-")
    written = await asyncio.to_thread(index_statuses, found, False)
    result = {"seen": len(found), "indexed": written}
    audit_id = await audit.record(principal.name, principal.roles, "backfill-runs", "run index",
                                  "index the runs made before the index existed", result)
    return func.HttpResponse(json.dumps({**result, "audit": audit_id}), status_code=200, mimetype="application/json")
