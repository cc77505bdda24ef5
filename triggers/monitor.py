"""The timer-triggered monitor: drift checks on live traffic, and the lifecycle reconciler.

Every tick (MLOPS_MONITOR_SCHEDULE, NCRONTAB):
  * for each model with a policy and a champion, compare recent scoring inputs and
    predictions with the training baseline (mlops.drift); beyond the policy's thresholds,
    publish the app's drift event to the custom topic (EventGridPublisherClient), which
    routes it to ``on_drift_event`` like any Event Grid event;
  * for each model whose policy has ``monitoring.performance``, join the labels that arrived in
    its window to the champion's predictions by request id and compare the metric with its value
    at registration (mlops.performance); the figure is kept (the model's API detail shows the
    newest), and a decay beyond the bound publishes the app's performance event, which
    ``on_drift_event`` acts on per ``monitoring.performance.action``;
  * start the lifecycle of any model whose requests are still pending (a request queued just
    as its lifecycle finished), or that has deployments due for deletion (mlops.cleanup): the
    lifecycle deletes them between runs;
  * purge the Durable history of runs finished more than MLOPS_RUN_RETENTION_DAYS ago
    (triggers.retention; at most once an hour).

Each model's work is isolated: one model that fails (or has requests pending but no policy)
is logged with the reason, and the tick goes on to the others.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TypeVar

import azure.durable_functions as df
import azure.functions as func

from adapters import runtime
from adapters.eventgrid import TopicPublisher
from mlops.contracts import Notice
from mlops.errors import SettingError
from mlops.events import APP_PERFORMANCE_EVENT_TYPE
from mlops.monitoring import (
    assess_drift,
    check_performance,
    clean_up_due,
    drift_event_data,
    drift_series_point,
)
from mlops.notices import NoticeKind
from mlops.performance import PerformanceFigure, event_data

from .retention import purge_finished_runs, tick_time
from .submit import ensure_lifecycle

log = logging.getLogger("mlops.monitor")
T = TypeVar("T")
bp = df.Blueprint()


def _publisher() -> TopicPublisher:
    s = runtime.settings()
    if not s.eventgrid_topic_endpoint:
        raise SettingError("MLOPS_EVENTGRID_TOPIC_ENDPOINT", "missing: the drift monitor publishes drift events there")
    return TopicPublisher(s.eventgrid_topic_endpoint, s.eventgrid_topic_key)


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
    """Check every model with a policy and keep each tick's figures (the drift-over-time chart); publish a drift
    event for each that drifted. Blocking I/O."""
    assessed = _each_model("drift check", lambda model: assess_drift(runtime.platform(), runtime.policy(model), now))
    for model, figure in assessed.items():
        try:
            runtime.feedback().record_figure(model, drift_series_point(figure), series="drift")
        except Exception:  # the event below matters more; a figure not kept shows as a gap in the chart
            log.exception("keeping the drift figures failed", extra={"model": model})
    drifted = {model: drift_event_data(figure) for model, figure in assessed.items() if figure["drifted"]}
    for model, drift in drifted.items():
        _publisher().drift_detected(drift)
        log.warning("drift detected", extra={"model": model, "version": drift["version"]})
        drifted_features = sorted(f for f, figures in drift["features"].items() if figures.get("drifted"))
        # the drift event above is the notice's event; the webhook message goes out beside it
        runtime.notifier().send(Notice(NoticeKind.DRIFT_DETECTED, model, f"monitor-{now:%Y%m%dT%H%M%S}",
                                       f"the live inputs of v{drift['version']} drifted from its training baseline "
                                       f"({', '.join(drifted_features) or 'predictions'}); the policy's on_drift "
                                       "decides what follows", drift["version"]), event=False)
    return list(drifted)


def scan_performance(now: datetime) -> list[str]:
    """Check every model with ``monitoring.performance`` and keep each figure; publish the performance event for
    each champion that newly degraded (once per version: later ticks carry ``announced`` forward). Blocking I/O."""
    figures = _each_model("performance check",
                          lambda model: check_performance(runtime.platform(), runtime.feedback(), runtime.policy(model),
                                                          now))
    announced = []
    for model, figure in figures.items():
        try:
            told = figure.degraded and (_announced_before(model, figure) or _announce_decay(model, figure, now))
            runtime.feedback().record_figure(model, {**figure.to_dict(), "announced": told})
        except Exception:  # the other models go on; a figure not kept shows as a gap
            log.exception("keeping the performance figure failed", extra={"model": model})
            continue
        if told:
            announced.append(model)
    return announced


def _announced_before(model: str, figure: PerformanceFigure) -> bool:
    """True when the previous tick already announced this version's decay."""
    last = runtime.feedback().figures(model, limit=1)
    return bool(last and last[-1].get("announced") and last[-1].get("version") == figure.version)


def _announce_decay(model: str, figure: PerformanceFigure, now: datetime) -> bool:
    """The app's performance event (``on_drift_event`` acts on it), and the webhook message beside it; False when
    the event could not be published (the next tick tries again)."""
    section = runtime.policy(model).monitoring.performance
    action = section.action if section is not None else "alert"
    try:
        _publisher().notice(APP_PERFORMANCE_EVENT_TYPE, f"models/{model}:{figure.version}",
                            event_data(figure, action))
    except Exception:
        log.exception("publishing the performance event failed", extra={"model": model})
        return False
    log.warning("performance degraded", extra={"model": model, "version": figure.version, "metric": figure.metric,
                                                "value": figure.value})
    runtime.notifier().send(Notice(NoticeKind.PERFORMANCE_DEGRADED, model, f"monitor-{now:%Y%m%dT%H%M%S}",
                                   f"{figure.reason}; the policy's monitoring.performance.action is {action}",
                                   figure.version, {"metric": figure.metric, "value": figure.value,
                                                    "registered": figure.registered}), event=False)
    return True


@bp.timer_trigger(schedule="%MLOPS_MONITOR_SCHEDULE%", arg_name="timer", run_on_startup=False, use_monitor=True)
@bp.durable_client_input(client_name="client")
async def monitor(timer: func.TimerRequest, client: df.DurableOrchestrationClient) -> None:
    """Drift and performance checks (in a worker thread: they block on I/O), then the reconciler."""
    now, tick = datetime.now(UTC), tick_time(timer)  # tick: on the host's clock, which stamps the instances
    await asyncio.to_thread(scan_and_publish, now)
    await asyncio.to_thread(scan_performance, now)
    for model in await asyncio.to_thread(models_to_reconcile, now):
        try:
            await ensure_lifecycle(client, model, unless_ended_since=tick)
        except Exception:
            log.exception("lifecycle start failed", extra={"model": model})
    await purge_finished_runs(client, tick)  # retention: at most hourly; never raises


def models_to_reconcile(now: datetime) -> list[str]:
    """Models whose lifecycle should run at ``now``: requests pending, or clean-up due. Blocking I/O.

    Requests pending for a model without a policy are left alone, logged: its lifecycle could
    not act on them, and they run if the policy appears.
    """
    known = set(runtime.models())
    try:
        pending = set(runtime.control().models_with_pending())
    except Exception:  # the clean-up checks below still run
        log.exception("listing pending requests failed")
        pending = set()
    for model in sorted(pending - known):
        log.error("requests pending for model %r, which has no policy: left alone", model, extra={"model": model})
    return sorted((pending & known) | set(models_due_for_cleanup(now)))


def models_due_for_cleanup(now: datetime) -> list[str]:
    """Models with a deployment to delete at ``now``. Blocking I/O."""
    return list(_each_model("clean-up check",
                            lambda model: clean_up_due(runtime.platform(), runtime.policy(model), now) or None))
