"""Pure canary analysis: the candidate against the live deployment over the same window.

Checks, each against the release policy's ``health`` thresholds:
  * error rate (5xx) of the candidate <= ``max_error_rate``;
  * its share of refused requests (4xx) exceeds the live deployment's by at most ``max_error_rate``;
  * p95 latency ratio, candidate / live, <= ``max_p95_latency_ratio``;
  * prediction shift, the Jensen-Shannon distance (base 2, in [0, 1]) between the candidate's
    and live's prediction histograms, <= ``max_prediction_shift``. What is compared depends on the
    predictions (``prediction_shift``): class labels as they are; numbers with many distinct values
    (a regressor's) binned into the live predictions' deciles; a chat model's replies (``text``, which the
    release knows from the policy) by their length in words, each reply's word count binned into the
    deciles of the live replies' word counts (fewer bins for fewer predictions, and none below
    ``MIN_BINNED`` on a side: the check is then skipped). Two chat models never give the same replies word for word,
    so comparing the texts would always say "disjoint"; a candidate that answers much longer (or shorter)
    than live does shift.

Not enough traffic is not evidence. With fewer than ``min_requests`` candidate requests the
step is *inconclusive*, and inconclusive fails safe: ``passed`` is False with
``inconclusive=True``, so the release does not move traffic on without evidence (the operator
can lengthen the bake or lower ``min_requests``). One exception: if the errors seen already
exceed what ``min_requests`` requests could allow, the step fails outright, it is not
inconclusive. The latency and prediction comparisons need ``min_requests`` live requests too;
with fewer (e.g. no live deployment left) they are skipped, and the report says so.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np
from scipy.spatial.distance import jensenshannon

from .policy import Health
from .ports import DeploymentMetrics

_METRIC_FIELDS = {f.name for f in fields(DeploymentMetrics)}


@dataclass(frozen=True)
class HealthCheck:
    """One health check with its numbers; a skipped check passes and says why in ``detail``."""

    name: str
    passed: bool
    value: float | None
    threshold: float
    detail: str
    skipped: bool = False


@dataclass(frozen=True)
class HealthReport:
    """The step's verdict."""

    passed: bool
    reason: str
    checks: list[HealthCheck] = field(default_factory=list)
    inconclusive: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict."""
        return asdict(self)


_DISTINCT_FOR_NUMBERS = 20  # more distinct numeric predictions than this: a regressor's output, binned
_BINS = 10
# Binned comparisons (a regressor's numbers, a chat model's answer lengths) take one bin per _PER_BIN predictions
# of the smaller side, at most _BINS (deciles) and at least 2 (the median): a bin's share estimated from a handful
# of predictions is noise, and the Jensen-Shannon distance of noisy histograms is biased up. Fewer than
# MIN_BINNED predictions on a side and the shift check is skipped, saying so.
_PER_BIN = 10
MIN_BINNED = 2 * _PER_BIN


def _numbers(labels: list[str]) -> np.ndarray | None:
    try:
        values = np.array([float(k) for k in labels])
    except ValueError:
        return None
    return values if len(labels) > _DISTINCT_FOR_NUMBERS and np.isfinite(values).all() else None


def _binned_values(labels: list[str], text: bool) -> np.ndarray | None:
    """What the labels are binned by (answer lengths in words, or numbers), or None: compared as labels."""
    return np.array([len(str(k).split()) for k in labels], dtype=float) if text else _numbers(labels)


def prediction_shift(candidate: Mapping[str, int], live: Mapping[str, int], text: bool = False) -> float:
    """Jensen-Shannon distance (base 2, in [0, 1]) between two prediction histograms; 0 if either is empty.

    Class labels are compared as they are. Numeric predictions with many distinct values (a regressor's) are
    first binned into the live predictions' deciles, so two models that predict near the same prices are
    close, rather than disjoint for never giving exactly the same number. With ``text`` (a chat model's
    replies) the answers are compared by their length in words, binned the same way into the deciles of the
    live replies' lengths. Deciles need 100 predictions on each side; with fewer, the bins are the live values'
    quantiles at one bin per 10 predictions of the smaller side (2 at least: above or below live's median).
    """
    labels = sorted(set(candidate) | set(live), key=str)
    p = np.array([candidate.get(k, 0) for k in labels], dtype=float)
    q = np.array([live.get(k, 0) for k in labels], dtype=float)
    if p.sum() <= 0 or q.sum() <= 0:
        return 0.0
    values = _binned_values(labels, text)
    if values is not None:
        count = int(max(2, min(_BINS, min(p.sum(), q.sum()) // _PER_BIN)))
        edges = np.unique(np.quantile(np.repeat(values, q.astype(int)), np.linspace(0, 1, count + 1)[1:-1]))
        bins = np.searchsorted(edges, values, side="right")
        p = np.bincount(bins, weights=p, minlength=len(edges) + 1)
        q = np.bincount(bins, weights=q, minlength=len(edges) + 1)
    return float(jensenshannon(p / p.sum(), q / q.sum(), base=2))


_NO_TRAFFIC: dict[str, Any] = {"deployment": "", "request_count": 0, "error_count": 0, "latency_p50_ms": 0.0,
                               "latency_p95_ms": 0.0, "latency_p99_ms": 0.0}


def _metrics(value: DeploymentMetrics | Mapping[str, Any]) -> DeploymentMetrics:
    if isinstance(value, DeploymentMetrics):
        return value
    # a figure the platform did not report counts as no traffic: the step then fails safe
    return DeploymentMetrics(**{**_NO_TRAFFIC, **{k: v for k, v in value.items() if k in _METRIC_FIELDS}})


def _latency(policy: Health, cand: DeploymentMetrics, live: DeploymentMetrics) -> HealthCheck:
    limit = policy.max_p95_latency_ratio
    if live.request_count < policy.min_requests or live.latency_p95_ms <= 0:
        return HealthCheck("p95_latency_ratio", True, None, limit,
                           f"skipped: live served {live.request_count} requests, {policy.min_requests} needed", True)
    ratio = cand.latency_p95_ms / live.latency_p95_ms
    return HealthCheck("p95_latency_ratio", ratio <= limit, ratio, limit,
                       f"p95 {cand.latency_p95_ms:.1f} ms vs live {live.latency_p95_ms:.1f} ms")


def _shift(policy: Health, cand: DeploymentMetrics, live: DeploymentMetrics, text: bool) -> HealthCheck:
    limit = policy.max_prediction_shift
    live_n, cand_n = sum(live.predictions.values()), sum(cand.predictions.values())
    if live_n < policy.min_requests or not cand.predictions:
        return HealthCheck("prediction_shift", True, None, limit,
                           f"skipped: {cand_n} candidate and {live_n} live predictions", True)
    if min(cand_n, live_n) < MIN_BINNED and _binned_values([*{**cand.predictions, **live.predictions}],
                                                           text) is not None:
        what = "answer lengths" if text else "binned predictions"
        return HealthCheck("prediction_shift", True, None, limit,
                           f"skipped: {cand_n} candidate and {live_n} live predictions; comparing {what} needs "
                           f"{MIN_BINNED} on each side", True)
    shift = prediction_shift(cand.predictions, live.predictions, text)
    return HealthCheck("prediction_shift", shift <= limit, shift, limit,
                       "Jensen-Shannon distance of the " + ("answer lengths (words)" if text else
                                                            "prediction histograms") + " vs live")


def _refused(policy: Health, cand: DeploymentMetrics, live: DeploymentMetrics) -> HealthCheck:
    """4xx apart from 5xx: a candidate that refuses requests the live model answers (a stricter signature, a
    renamed column) fails its step even though it never errs, so a 400 cannot hide a bad candidate."""
    extra = cand.client_error_rate - live.client_error_rate
    return HealthCheck("refused_requests", extra <= policy.max_error_rate, extra, policy.max_error_rate,
                       f"{cand.client_error_count}/{cand.request_count} refused (4xx) vs "
                       f"{live.client_error_count}/{live.request_count} live")


def analyse_step(health_policy: Health, candidate: DeploymentMetrics | Mapping[str, Any],
                 live: DeploymentMetrics | Mapping[str, Any], text: bool = False) -> HealthReport:
    """Judge one canary (or shadow) step from both deployments' metrics over the same window; ``text``: the
    predictions are a chat model's replies."""
    policy, cand, base = health_policy, _metrics(candidate), _metrics(live)
    n = cand.request_count
    checks = [
        HealthCheck("error_rate", cand.error_rate <= policy.max_error_rate, cand.error_rate, policy.max_error_rate,
                    f"{cand.error_count}/{n} requests failed"),
        _refused(policy, cand, base),
        _latency(policy, cand, base),
        _shift(policy, cand, base, text),
    ]
    if n < policy.min_requests:
        # Fail fast when even a full sample could not bring the error rate under the limit.
        if cand.error_count > policy.max_error_rate * policy.min_requests:
            return HealthReport(False, f"error_rate: {cand.error_count} errors in {n} requests already exceed "
                                       f"{policy.max_error_rate:.1%} of {policy.min_requests}", checks)
        return HealthReport(False, f"inconclusive: {n} candidate requests, at least {policy.min_requests} needed",
                            checks, inconclusive=True)
    failed = [c for c in checks if not c.passed]
    if failed:
        return HealthReport(False, "; ".join(f"{c.name} {c.value:.3f} > {c.threshold:.3f} ({c.detail})"
                                             for c in failed), checks)
    return HealthReport(True, f"healthy over {n} requests", checks)
