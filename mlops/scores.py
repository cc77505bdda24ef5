"""What an evaluation job's ``scores.json`` says, read the same way by every platform.

``{"candidate": {metric: value}, "champion": {metric: value}, "skipped": {metric: reason}}``: each model's metrics
(the champion's when there was one) and, once for both, the metrics the job was asked for and did not compute, each
with the reason (a chat evaluation's judge metrics when no judge model is configured: docs/llmops.md). ``skipped`` is
a key beside the models so that a reader that predates it finds nothing but numbers under each model; older jobs
write no ``skipped`` at all.
"""

from __future__ import annotations

import math
from typing import Any

SKIPPED = "skipped"


def finite_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """The finite numbers of ``metrics`` (NaN, infinities, booleans and anything else are left out)."""
    return {k: float(v) for k, v in metrics.items()
            if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)}


def read_scores(raw: Any) -> tuple[dict[str, dict[str, float]], dict[str, str]]:
    """Each model's finite metrics, and the skipped metrics with their reasons; ValueError if ``raw`` is no object."""
    if not isinstance(raw, dict):
        raise ValueError(f"scores.json must hold an object of models, not {type(raw).__name__}")
    skipped = raw.get(SKIPPED)
    reasons = {str(metric): str(reason) for metric, reason in skipped.items()} if isinstance(skipped, dict) else {}
    scores = {who: finite_metrics(m) for who, m in raw.items() if who != SKIPPED and isinstance(m, dict)}
    return scores, reasons
