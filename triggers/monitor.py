"""The timer-triggered monitor: drift checks on live traffic, and the lifecycle reconciler.

Every tick (MLOPS_MONITOR_SCHEDULE, NCRONTAB):
  * for each model with a policy and a champion, compare recent scoring inputs and
    predictions with the training baseline (mlops.drift); beyond the policy's thresholds,
    publish the app's drift event to the custom topic (EventGridPublisherClient), which
    routes it to ``on_drift_event`` like any Event Grid event;
  * start the lifecycle of any model whose requests are still pending (a request queued just
    as its lifecycle finished), or that has deployments due for deletion (mlops.cleanup): the
    lifecycle deletes them between runs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import azure.durable_functions as df
import azure.functions as func

from adapters import runtime
from mlops import cleanup
from mlops.drift import drift_report
from mlops.errors import SettingError
from mlops.events import APP_DRIFT_EVENT_TYPE
from mlops.runs import deployment_name

from .submit import ensure_lifecycle

log = logging.getLogger("mlops.monitor")
T = TypeVar("T")
bp = df.Blueprint()


def _publisher() -> Any:
    from azure.eventgrid import EventGridPublisherClient

    s = runtime.settings()
    if not s.eventgrid_topic_endpoint:
        raise SettingError("MLOPS_EVENTGRID_TOPIC_ENDPOINT", "missing: the drift monitor publishes drift events there")
    if s.eventgrid_topic_key:
        from azure.core.credentials import AzureKeyCredential

        return EventGridPublisherClient(s.eventgrid_topic_endpoint, AzureKeyCredential(s.eventgrid_topic_key))
    from azure.identity import DefaultAzureCredential

    return EventGridPublisherClient(s.eventgrid_topic_endpoint, DefaultAzureCredential())


def check_model(model: str, now: datetime) -> dict[str, Any] | None:
    """Drift of one model's live traffic against its baseline; the drift event's data if it drifted."""
    policy = runtime.policy(model)
    platform = runtime.platform()
    champion = platform.get_alias(model, "champion")
    if champion is None:
        return None
    start = (now - timedelta(minutes=policy.monitoring.window_minutes)).isoformat()
    rows = platform.recent_inputs(policy.release.endpoint, start, now.isoformat(), limit=5000)
    dep = deployment_name(model, champion.version)
    rows = [r for r in rows if r.get("__deployment__", dep) == dep]
    if len(rows) < policy.monitoring.min_rows:
        log.info("not enough traffic for drift", extra={"model": model, "rows": len(rows)})
        return None
    baseline = platform.baseline(model, champion.version)  # type: ignore[attr-defined]
    report = drift_report(baseline, rows, policy.monitoring, label=policy.label)
    if not report.drifted:
        return None
    return {"model": model, "version": champion.version, "features": report.features_dict(),
            "window": {"start": start, "end": now.isoformat()}}


def _each_model(what: str, check: Callable[[str], T | None]) -> dict[str, T]:
    """``check`` for every model with a policy: model -> its non-None answers. Blocking I/O.

    One model's failure must not stop the others; the log says which and why.
    """
    answers: dict[str, T] = {}
    for model in runtime.models():
        try:
            answer = check(model)
        except Exception:
            log.exception("%s failed", what, extra={"model": model})
            continue
        if answer is not None:
            answers[model] = answer
    return answers


def scan_and_publish(now: datetime) -> list[str]:
    """Check every model with a policy; publish a drift event for each that drifted. Blocking I/O."""
    from azure.eventgrid import EventGridEvent

    drifted = _each_model("drift check", lambda model: check_model(model, now))
    for model, drift in drifted.items():
        event = EventGridEvent(subject=f"models/{model}:{drift['version']}", event_type=APP_DRIFT_EVENT_TYPE,
                               data=drift, data_version="1.0")
        _publisher().send([event])
        log.warning("drift detected", extra={"model": model, "version": drift["version"]})
    return list(drifted)


@bp.timer_trigger(schedule="%MLOPS_MONITOR_SCHEDULE%", arg_name="timer", run_on_startup=False, use_monitor=True)
@bp.durable_client_input(client_name="client")
async def monitor(timer: func.TimerRequest, client: df.DurableOrchestrationClient) -> None:
    """Drift checks (in a worker thread: they block on I/O), then the reconciler."""
    now = datetime.now(UTC)
    await asyncio.to_thread(scan_and_publish, now)
    pending = set(await asyncio.to_thread(runtime.control().models_with_pending))
    for model in sorted(pending | set(await asyncio.to_thread(models_due_for_cleanup, now))):
        await ensure_lifecycle(client, model)


def models_due_for_cleanup(now: datetime) -> list[str]:
    """Models with a deployment to delete at ``now``. Blocking I/O."""
    def due(model: str) -> bool | None:
        policy = runtime.policy(model)
        return bool(cleanup.plan(runtime.platform(), policy.model, policy.release.endpoint, now)) or None

    return list(_each_model("clean-up check", due))
