"""The model lifecycle: a per-model singleton that runs one action at a time.

Triggers queue requests in the control store and make sure this orchestration runs
(instance id ``lifecycle-<model>``). It takes the most urgent pending request, runs it as a
sub-orchestration with the request's deterministic id, and repeats until nothing waits.
After ten runs it continues as new so its history stays short; nothing is lost because the
requests live in the control store, not in this orchestration's event queue. When nothing
waits, it deletes the deployments that are due (mlops.cleanup) before it ends.
"""

from __future__ import annotations

from typing import Any

import azure.durable_functions as df

from mlops.runs import CLEAN_UP, LIFECYCLE, QUEUE_RETRAIN, ROLLBACK, TAKE_PENDING, Request, event_data

bp = df.Blueprint()

RUNS_PER_EXECUTION = 10


@bp.orchestration_trigger(context_name="context", orchestration=LIFECYCLE)
def model_lifecycle(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
    state = event_data(context.get_input())
    model = state["model"]
    history = list(state.get("history", []))[-20:]
    for _ in range(RUNS_PER_EXECUTION):
        taken = yield context.call_activity(TAKE_PENDING, model)
        if taken is None:
            # between runs nothing else touches the model's deployments: delete the ones that are due
            done: dict[str, Any] = {"model": model, "runs": history}
            try:
                done["cleaned"] = yield context.call_activity(CLEAN_UP, {
                    "model": model, "now": context.current_utc_datetime.isoformat()})
            except Exception as exc:  # the next idle lifecycle tries again; the runs are not held up
                done["cleanup_error"] = str(exc).splitlines()[0][:300]
            context.set_custom_status({**done, "running": None, "history": history})
            return done
        request = Request.from_dict(taken)
        context.set_custom_status({"model": model, "running": request.run_id, "kind": request.kind,
                                   "history": history})
        result = None
        try:
            result = yield context.call_sub_orchestrator(request.kind, {**request.payload, "model": model},
                                                         request.run_id)
            verdict = (result or {}).get("verdict", "completed") if isinstance(result, dict) else "completed"
        except Exception as exc:  # the run failed: its verdict is in its own output; keep serving the model
            verdict = "failed: " + str(exc).splitlines()[0][:300]
        history.append({"run_id": request.run_id, "kind": request.kind, "verdict": verdict})
        if request.kind == ROLLBACK and isinstance(result, dict) and result.get("retrain"):
            # policy monitoring.on_drift asks for a retrain on fresh data after the rollback
            yield context.call_activity(QUEUE_RETRAIN, {"model": model, "after": request.run_id})
    context.continue_as_new({"model": model, "history": history})
