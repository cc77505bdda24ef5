"""The monitor's decisions: is a model's live traffic drifting from its training baseline, and is clean-up due.

Each reads the platform through its port only; the timer trigger runs them per model and
publishes what they find.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from . import cleanup
from .drift import drift_report
from .policy import Policy
from .ports import Platform
from .runs import deployment_name
from .vocabulary import Alias

log = logging.getLogger("mlops.monitor")
ROW_LIMIT = 5000  # the newest scoring rows compared per tick; enough for the tests' power, bounded in memory


def check_drift(platform: Platform, policy: Policy, now: datetime) -> dict[str, Any] | None:
    """The drift event's data if the champion's recent traffic drifted from its baseline, else None."""
    champion = platform.get_alias(policy.model, Alias.CHAMPION)
    if champion is None:
        return None
    start = (now - timedelta(minutes=policy.monitoring.window_minutes)).isoformat()
    rows = platform.recent_inputs(policy.release.endpoint, deployment_name(policy.model, champion.version), start,
                                  now.isoformat(), limit=ROW_LIMIT)
    if len(rows) < policy.monitoring.min_rows:  # too little traffic to tell drift from noise
        log.info("not enough traffic for drift", extra={"model": policy.model, "rows": len(rows)})
        return None
    baseline = platform.baseline(policy.model, champion.version)
    report = drift_report(baseline, rows, policy.monitoring, label=policy.label)
    if not report.drifted:
        return None
    return {"model": policy.model, "version": champion.version, "features": report.features_dict(),
            "window": {"start": start, "end": now.isoformat()}}


def clean_up_due(platform: Platform, policy: Policy, now: datetime) -> bool:
    """True when the model has a deployment to delete at ``now`` (the lifecycle then deletes it)."""
    return bool(cleanup.plan(platform, policy.model, policy.release.endpoint, now))
