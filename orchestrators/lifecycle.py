"""The model lifecycle: a per-model singleton that runs one action at a time.

Triggers queue requests in the control store and make sure this orchestration runs
(instance id ``lifecycle-<model>``). It takes the most urgent pending request, runs it as a
sub-orchestration with the request's deterministic id, and repeats until nothing waits.
After ten runs it continues as new so its history stays short; nothing is lost because the
requests live in the control store, not in this orchestration's event queue. When nothing
waits, it deletes the deployments that are due (mlops.cleanup) before it ends.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import azure.durable_functions as df

from mlops.contracts import (
    DELETE_DEPLOYMENT,
    LIFECYCLE,
    NEWEST_DATA,
    PLAN_CLEAN_UP,
    QUEUE_REQUEST,
    ROLLBACK,
    TAKE_PENDING,
    CleanUpInput,
    CleanUpPlan,
    DeleteDeployment,
    LifecycleInput,
    ModelRef,
    NewestData,
    PendingRequest,
    Queued,
    RetrainInput,
    RunRecord,
)
from mlops.run_index import RECORD_RUN, RunEntry
from mlops.runs import Request, event_data
from mlops.vocabulary import Verdict

from .steps import call, retried

bp = df.Blueprint()

RUNS_PER_EXECUTION = 10
HISTORY_KEPT = 20


@bp.orchestration_trigger(context_name="context", orchestration=LIFECYCLE)
def model_lifecycle(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
    state = LifecycleInput.from_dict(event_data(context.get_input()))
    model = state.model
    history = list(state.history)[-HISTORY_KEPT:]
    for _ in range(RUNS_PER_EXECUTION):
        taken = yield from call(context, TAKE_PENDING, ModelRef(model), PendingRequest)
        if taken.request is None:
            # between runs nothing else touches the model's deployments: delete the ones that are due
            done: dict[str, Any] = {"model": model, "runs": [r.to_dict() for r in history]}
            try:
                done["cleaned"] = yield from _clean_up(context, model)
            except Exception as exc:  # the next idle lifecycle tries again; the runs are not held up
                done["cleanup_error"] = str(exc).splitlines()[0][:300]
            context.set_custom_status({**done, "running": None, "history": done["runs"]})
            return done
        request = Request.from_dict(taken.request)
        context.set_custom_status({"model": model, "running": request.run_id, "kind": request.kind,
                                   "history": [r.to_dict() for r in history]})
        record, result = yield from _run(context, request)
        history.append(record)
        if request.kind == ROLLBACK and isinstance(result, dict) and result.get("retrain"):
            # policy monitoring.on_drift asks for a retrain on fresh data after the rollback
            yield from _queue_retrain(context, model, after=request.run_id)
    context.continue_as_new(LifecycleInput(model, history).to_dict())


def _run(context: df.DurableOrchestrationContext, request: Request) -> Generator[Any, Any, tuple[RunRecord, Any]]:
    """Run the request as a sub-orchestration; a failed run is recorded, not raised (the model keeps serving).

    The run index (``mlops.run_index``) gets the run's entry before it starts and again once it ended.
    """
    entry = RunEntry(request.run_id, request.kind, request.model, context.current_utc_datetime.isoformat(),
                     version=request.payload.get("version"))
    yield from _index(context, entry)
    try:
        result = yield context.call_sub_orchestrator(request.kind, request.run_input().to_dict(), request.run_id)
        verdict = str(result.get("verdict", Verdict.COMPLETED)) if isinstance(result, dict) else Verdict.COMPLETED
        ended = entry.ended_as("Completed", verdict, context.current_utc_datetime.isoformat(),
                               str(result["version"]) if isinstance(result, dict) and result.get("version") else None)
    except Exception as exc:  # the run failed: its verdict is in its own output
        message = str(exc).splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        result, verdict = None, "failed: " + message
        ended = entry.ended_as("Failed", Verdict.FAILED, context.current_utc_datetime.isoformat(), message=message)
    yield from _index(context, ended)
    return RunRecord(request.run_id, request.kind, verdict), result


def _index(context: df.DurableOrchestrationContext, entry: RunEntry) -> Generator[Any, Any, None]:
    """Write the run's index entry; a failed write never holds up the run (the retention purge mends entries)."""
    try:
        yield from call(context, RECORD_RUN, entry, RunEntry)
    except Exception:  # the list misses the run (or shows it running) until the purge or a backfill indexes it
        return


def _clean_up(context: df.DurableOrchestrationContext, model: str) -> Generator[Any, Any, list[dict[str, Any]]]:
    """Delete the deployments that are due, one activity each; returns what went and why."""
    now = context.current_utc_datetime.isoformat()
    plan = yield from call(context, PLAN_CLEAN_UP, CleanUpInput(model, now), CleanUpPlan)
    for removal in plan.removals:
        yield from retried(context, lambda r=removal: context.call_activity(  # type: ignore[misc]
            DELETE_DEPLOYMENT, DeleteDeployment(model, plan.endpoint, r).to_dict()), DELETE_DEPLOYMENT)
    return [{"deployment": r.deployment, "version": r.version, "reason": r.reason} for r in plan.removals]


def _queue_retrain(context: df.DurableOrchestrationContext, model: str, after: str) -> Generator[Any, Any, None]:
    """Queue a retrain on the newest data landed for the model (nothing if none has)."""
    newest = yield from call(context, NEWEST_DATA, ModelRef(model), NewestData)
    if newest.data is not None:
        request = Request.of(RetrainInput(model, newest.data, reason=f"after rollback {after}"),
                             dedup_key=f"after:{after}", requested_by="rollback")
        yield from call(context, QUEUE_REQUEST, request, Queued)
