"""What the lifecycle does about an alert: roll back, retrain, or both, as the model's policy says.

``monitoring.on_drift`` governs drift only (the app's monitor and Azure ML's
DatasetDriftDetected). A health alert (Azure Monitor) or an operator's rollback never starts a
retrain: new data would not mend a broken deployment (docs/policy.md, ``monitoring.on_drift``).
A performance decay on ground truth does what ``monitoring.performance.action`` says: retrain
(the champion stays), roll back (no retrain follows), or alert only (the monitor's notice).
"""

from __future__ import annotations

from typing import Literal

from .events import DriftDetected, ModelPerformanceDegraded
from .policy import Policy
from .ports import ModelVersion
from .vocabulary import DRIFT_SOURCES

DriftAction = Literal["rollback", "retrain"]
SignalAction = Literal["rollback", "retrain", "alert"]


def drift_action(on_drift: str) -> DriftAction:
    """What a drift event starts: a retrain only (the champion stays), or a rollback (maybe then a retrain)."""
    # an older model would meet the drifted inputs no better, so "retrain" keeps the champion
    return "retrain" if on_drift == "retrain" else "rollback"


def signal_action(policy: Policy, signal: DriftDetected | ModelPerformanceDegraded) -> SignalAction:
    """What a monitoring signal starts under the model's policy: a rollback, a retrain, or nothing but the alert
    already sent (a performance signal whose policy has since turned performance monitoring off)."""
    if isinstance(signal, DriftDetected):
        return drift_action(policy.monitoring.on_drift)
    section = policy.monitoring.performance
    return section.action if section is not None else "alert"


def retrain_after_rollback(on_drift: str, source: str) -> bool:
    """True when a rollback caused by ``source`` should queue a retrain on the newest data."""
    return source in DRIFT_SOURCES and on_drift in ("retrain", "rollback_and_retrain")


def nothing_to_roll_back(model: str, champion: ModelVersion | None, previous: ModelVersion | None,
                         about: str | None) -> str | None:
    """Why a rollback has nothing to do (None: it has). ``about`` is the version the alert named."""
    if champion is None:
        return "no champion is deployed"
    if about and champion.version != str(about):
        return f"v{about} is no longer the champion (now v{champion.version}): already rolled back"
    if previous is None or previous.version == champion.version:
        return f"there is no earlier version of {model} to roll back to"
    return None
