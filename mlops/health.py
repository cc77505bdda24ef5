"""Pure canary analysis: the candidate against the live deployment over the same window.

Checks: error rate under the threshold, p95 latency ratio (candidate / live) under the
threshold, and the Jensen-Shannon distance between their prediction distributions under
the threshold. With fewer requests than ``min_requests`` the step is inconclusive, which
fails safe: the release does not move on without evidence.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy.spatial.distance import jensenshannon

from .policy import Health


@dataclass(frozen=True)
class Check:
    """One health check with its numbers."""

    name: str
    passed: bool
    value: float
    threshold: float
    detail: str


@dataclass(frozen=True)
class HealthReport:
    """The step's verdict."""

    passed: bool
    reason: str
    checks: list[Check] = field(default_factory=list)
    inconclusive: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict."""
        return asdict(self)


def prediction_shift(a: dict[str, int], b: dict[str, int]) -> float:
    """Jensen-Shannon distance (base 2, in [0, 1]) between two label-count histograms."""
    labels = sorted(set(a) | set(b))
    if not labels:
        return 0.0
    p = np.array([a.get(k, 0) for k in labels], dtype=float)
    q = np.array([b.get(k, 0) for k in labels], dtype=float)
    if p.sum() == 0 or q.sum() == 0:
        return 0.0
    return float(jensenshannon(p / p.sum(), q / q.sum(), base=2))


def _get(metrics: Any, key: str) -> Any:
    return metrics[key] if isinstance(metrics, dict) else getattr(metrics, key)


def analyse_step(policy: Health, candidate: Any, live: Any) -> HealthReport:
    """Judge a canary step from the two deployments' metrics (dicts or DeploymentMetrics)."""
    n = int(_get(candidate, "request_count"))
    if n < policy.min_requests:
        return HealthReport(False, f"inconclusive: {n} candidate requests, at least {policy.min_requests} needed",
                            [], inconclusive=True)
    errors = int(_get(candidate, "error_count"))
    error_rate = errors / n if n else 0.0
    checks = [Check("error_rate", error_rate <= policy.max_error_rate, error_rate, policy.max_error_rate,
                    f"{errors}/{n} requests failed")]
    live_p95 = float(_get(live, "latency_p95_ms") or 0.0)
    cand_p95 = float(_get(candidate, "latency_p95_ms") or 0.0)
    if int(_get(live, "request_count")) > 0 and live_p95 > 0:
        ratio = cand_p95 / live_p95
        checks.append(Check("p95_latency_ratio", ratio <= policy.max_p95_latency_ratio, ratio,
                            policy.max_p95_latency_ratio, f"p95 {cand_p95:.1f} ms vs live {live_p95:.1f} ms"))
    shift = prediction_shift(dict(_get(candidate, "predictions")), dict(_get(live, "predictions")))
    checks.append(Check("prediction_shift", shift <= policy.max_prediction_shift, shift, policy.max_prediction_shift,
                        "Jensen-Shannon distance of predictions vs live"))
    failed = [c for c in checks if not c.passed]
    if failed:
        reason = "; ".join(f"{c.name} {c.value:.3f} > {c.threshold:.3f} ({c.detail})" for c in failed)
        return HealthReport(False, reason, checks)
    return HealthReport(True, "healthy", checks)
