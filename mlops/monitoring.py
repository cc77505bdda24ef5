"""The monitor's decisions: is a model's live traffic drifting from its training baseline, has its champion's
performance on ground truth decayed since registration, and is clean-up due.

Each reads the platform through its port only; the timer trigger runs them per model and
publishes what they find.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from . import cleanup
from .drift import drift_report
from .feedback import FeedbackStore, join
from .performance import PerformanceFigure, assess, registered_value
from .policy import Policy
from .ports import Platform
from .runs import deployment_name
from .vocabulary import Alias

log = logging.getLogger("mlops.monitor")
ROW_LIMIT = 5000  # the newest scoring rows compared per tick; enough for the tests' power, bounded in memory
PREDICTION_LIMIT = 100_000  # predictions read per tick to join labels to, newest first: bounded in memory


def assess_drift(platform: Platform, policy: Policy, now: datetime) -> dict[str, Any] | None:
    """This tick's drift figures of the champion's recent traffic against its baseline, drifted or not:
    ``{"model", "version", "at", "drifted", "rows", "features": {feature: {statistic, value, threshold, drifted}},
    "window"}`` (the monitor keeps each tick's for the drift-over-time chart). None when there is no champion or
    too little traffic to tell drift from noise."""
    champion = platform.get_alias(policy.model, Alias.CHAMPION)
    if champion is None:
        return None
    start = (now - timedelta(minutes=policy.monitoring.window_minutes)).isoformat()
    rows = platform.recent_inputs(policy.release.endpoint, deployment_name(policy.model, champion.version), start,
                                  now.isoformat(), limit=ROW_LIMIT)
    if len(rows) < policy.monitoring.min_rows:
        log.info("not enough traffic for drift", extra={"model": policy.model, "rows": len(rows)})
        return None
    baseline = platform.baseline(policy.model, champion.version)
    report = drift_report(baseline, rows, policy.monitoring, label=policy.label)
    return {"model": policy.model, "version": champion.version, "at": now.isoformat(), "drifted": report.drifted,
            "rows": len(rows), "features": report.features_dict(), "window": {"start": start, "end": now.isoformat()}}


CHART_FIELDS = ("statistic", "value", "threshold", "drifted")  # of a feature, in the figures kept over time


def drift_series_point(figure: dict[str, Any]) -> dict[str, Any]:
    """What the monitor keeps of a tick's drift figures for the chart: per feature only ``CHART_FIELDS`` (the
    event carries the rest): every tick adds a point, and the chart reads a day of them."""
    return {"at": figure["at"], "version": figure["version"], "drifted": figure["drifted"], "rows": figure["rows"],
            "features": {name: {k: f[k] for k in CHART_FIELDS if k in f} for name, f in figure["features"].items()}}


def drift_event_data(figure: dict[str, Any]) -> dict[str, Any]:
    """The app's drift event data from a drifted tick's figures (``assess_drift``)."""
    return {k: figure[k] for k in ("model", "version", "features", "window")}


def check_drift(platform: Platform, policy: Policy, now: datetime) -> dict[str, Any] | None:
    """The drift event's data if the champion's recent traffic drifted from its baseline, else None."""
    figure = assess_drift(platform, policy, now)
    return drift_event_data(figure) if figure is not None and figure["drifted"] else None


def check_performance(platform: Platform, feedback: FeedbackStore, policy: Policy,
                      now: datetime) -> PerformanceFigure | None:
    """The champion's performance figure on the labels that arrived in the window (None: the policy has no
    ``monitoring.performance``, there is no champion, or no label arrived)."""
    section = policy.monitoring.performance
    if section is None:
        return None
    champion = platform.get_alias(policy.model, Alias.CHAMPION)
    if champion is None:
        return None
    since = now - timedelta(hours=section.window_hours)
    labels = feedback.labels(policy.model, since.isoformat(), now.isoformat())
    if not labels:
        return None
    first = since - timedelta(hours=section.label_delay_hours)  # a label may come this long after its prediction
    predictions = platform.predictions_by_id(policy.release.endpoint, deployment_name(policy.model, champion.version),
                                             first.isoformat(), now.isoformat(), limit=PREDICTION_LIMIT)
    metric = policy.performance_metric
    window = {"start": since.isoformat(), "end": now.isoformat(), "predictions_from": first.isoformat()}
    figure = assess(policy.model, champion.version, now.isoformat(), section, metric,
                    registered_value(champion.tags, metric), join(labels, predictions), len(labels), window)
    log.info("performance figure", extra={"model": policy.model, "version": champion.version, "metric": metric,
                                          "value": figure.value, "matched": figure.matched,
                                          "degraded": figure.degraded})
    return figure


def clean_up_due(platform: Platform, policy: Policy, now: datetime) -> bool:
    """True when the model has a deployment to delete at ``now`` (the lifecycle then deletes it)."""
    return bool(cleanup.plan(platform, policy.model, policy.release.endpoint, now))
