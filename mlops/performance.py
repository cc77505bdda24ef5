"""Performance decay on ground truth: the champion's metric on labelled live traffic against its value at
registration.

The metrics are MLflow's (``mlflow.models.evaluate``, which scored the version when it was registered and left
its figures on the version as ``metric.<name>`` tags), computed here with numpy from the labels and the classes
or numbers the deployment answered: for a classifier ``accuracy_score`` and, as scikit-learn computes them with
MLflow's defaults, ``f1_score``, ``precision_score`` and ``recall_score`` (binary with positive class 1 when
every class is 0 or 1, else averaged over classes weighted by their support); for a regressor the error metrics
and ``r2_score``.

The decision is direction-aware: the decay is how much *worse* the live figure is than the registered one
(lower for a higher-is-better metric, higher for a lower-is-better one), and the model degraded when the decay
is above ``max_decay`` with at least ``min_labels`` labels joined. Fewer labels give a figure but no verdict.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ._json import Json
from .feedback import Joined
from .policy import HIGHER_IS_BETTER, Performance

METRIC_TAG = "metric.{}"  # mlops.retrain.lineage_tags: the version's held-out metrics


def as_class(value: Any) -> str:
    """A label or a predicted class as compared: 1, 1.0, True and "1" are one class."""
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return value
        return str(int(number)) if number.is_integer() else value
    return str(value)


def _per_class(y: np.ndarray, p: np.ndarray, metric: str) -> float:
    """Precision, recall or F1 as scikit-learn computes them with MLflow's defaults (pos_label 1, binary or
    weighted); a class with no predicted (or no true) rows scores 0, as scikit-learn's zero_division warns."""
    classes = np.unique(np.concatenate([y, p]))
    binary = set(classes.tolist()) <= {"0", "1"}
    scored = ["1"] if binary else [c for c in np.unique(y)]
    values, weights = [], []
    for c in scored:
        tp = float(np.sum((p == c) & (y == c)))
        predicted, actual = float(np.sum(p == c)), float(np.sum(y == c))
        precision = tp / predicted if predicted else 0.0
        recall = tp / actual if actual else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        values.append({"precision_score": precision, "recall_score": recall, "f1_score": f1}[metric])
        weights.append(actual)
    if binary:
        return values[0]
    return float(np.average(values, weights=weights)) if sum(weights) else 0.0


def metric_value(metric: str, labels: Sequence[Any], predictions: Sequence[Any]) -> float:
    """``metric`` over labels and predictions (same length, at least one); ValueError for a prediction that is
    not a number where a regressor's metric needs one, or a metric not in ``policy.LABEL_METRICS``."""
    if not labels or len(labels) != len(predictions):
        raise ValueError(f"{len(labels)} labels and {len(predictions)} predictions: need as many, at least one")
    if metric in ("accuracy_score", "f1_score", "precision_score", "recall_score"):
        y = np.array([as_class(v) for v in labels])
        p = np.array([as_class(v) for v in predictions])
        return float(np.mean(y == p)) if metric == "accuracy_score" else _per_class(y, p, metric)
    try:
        y_num = np.array([float(v) for v in labels])
        p_num = np.array([float(v) for v in predictions])
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{metric} needs numbers: {exc}") from exc
    error = p_num - y_num
    if metric == "mean_squared_error":
        return float(np.mean(error ** 2))
    if metric == "root_mean_squared_error":
        return float(np.sqrt(np.mean(error ** 2)))
    if metric == "mean_absolute_error":
        return float(np.mean(np.abs(error)))
    if metric == "max_error":
        return float(np.max(np.abs(error)))
    if metric == "mean_absolute_percentage_error":  # scikit-learn's: |y| floored at machine epsilon
        return float(np.mean(np.abs(error) / np.maximum(np.abs(y_num), np.finfo(float).eps)))
    if metric == "r2_score":
        total = float(np.sum((y_num - y_num.mean()) ** 2))
        residual = float(np.sum(error ** 2))
        return (1.0 if residual == 0 else 0.0) if total == 0 else 1.0 - residual / total
    raise ValueError(f"{metric} cannot be computed from labels and predictions")


def decay(registered: float, live: float, higher_is_better: bool) -> float:
    """How much worse ``live`` is than ``registered`` in the metric's units (negative: better)."""
    return registered - live if higher_is_better else live - registered


@dataclass(frozen=True)
class PerformanceFigure(Json):
    """One monitor tick's performance check of a model's champion: the figures, and the verdict."""

    model: str
    version: str
    at: str
    metric: str
    higher_is_better: bool
    registered: float | None
    value: float | None
    decay: float | None
    max_decay: float
    labels: int  # labels that arrived in the window
    matched: int  # ... of them joined to a prediction of the champion
    unmatched: int
    min_labels: int
    degraded: bool
    window: dict[str, str] = field(default_factory=dict)  # labels' arrival (start, end), predictions' (from)
    unmatched_ids: list[str] = field(default_factory=list)
    note: str = ""

    @property
    def reason(self) -> str:
        """One line: what was measured against what."""
        if self.value is None or self.registered is None:
            return self.note or f"no {self.metric} figure"
        worse = "worse" if (self.decay or 0) > 0 else "not worse"
        return (f"{self.metric} {self.value:.4f} on {self.matched} labelled predictions vs {self.registered:.4f} at "
                f"registration: {abs(self.decay or 0):.4f} {worse} (max_decay {self.max_decay:g})")


def assess(model: str, version: str, at: str, section: Performance, metric: str, registered: float | None,
           joined: Joined, received: int, window: dict[str, str]) -> PerformanceFigure:
    """The figure and verdict of one tick: the metric on the joined pairs against the registered value."""
    none = PerformanceFigure(model, version, at, metric, metric in HIGHER_IS_BETTER, registered, None, None,
                             section.max_decay, received, joined.matched, joined.unmatched, section.min_labels,
                             False, window, list(joined.unmatched_ids))
    if not joined.matched:
        return replace(none, note="no label joined to a prediction of the champion")
    try:
        value = metric_value(metric, joined.labels, joined.predictions)
    except ValueError as exc:
        return replace(none, note=str(exc))
    if not math.isfinite(value):
        return replace(none, note=f"{metric} is not finite")
    if registered is None:
        tag = METRIC_TAG.format(metric)
        return replace(none, value=value, note=f"v{version} has no registered {metric} (tag {tag})")
    worse = decay(registered, value, none.higher_is_better)
    enough = joined.matched >= section.min_labels
    note = "" if enough else f"{joined.matched} labels joined, fewer than min_labels {section.min_labels}: no verdict"
    return replace(none, value=value, decay=worse, degraded=enough and worse > section.max_decay, note=note)


def registered_value(tags: dict[str, str], metric: str) -> float | None:
    """The version's held-out figure of ``metric`` from its tags, or None when it has none (or not a number)."""
    text = tags.get(METRIC_TAG.format(metric))
    try:
        value = float(text) if text is not None else None
    except ValueError:
        return None
    return value if value is not None and math.isfinite(value) else None


def event_data(figure: PerformanceFigure, action: str) -> dict[str, Any]:
    """The ``data`` of the app's performance event (``mlops.events.APP_PERFORMANCE_EVENT_TYPE``)."""
    return {"model": figure.model, "version": figure.version, "metric": figure.metric,
            "higher_is_better": figure.higher_is_better, "registered": figure.registered, "value": figure.value,
            "decay": figure.decay, "max_decay": figure.max_decay, "labels": figure.matched,
            "unmatched": figure.unmatched, "window": figure.window, "action": action, "reason": figure.reason}
