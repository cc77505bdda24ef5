"""The A/B phase of a release: each arm's answers joined to ground truth, judged by ``mlops.experiment``.

A unit is a request (or a row of a multi-row request) that got a label in ``feedback/<model>/``, or, with
``release.ab.unit_header``, the unit id the request carried (a user: the gateway assigns it its arm by hash,
``gateway.sticky``, and it counts once); its arm is the deployment that answered it (``A`` the champion, ``B``
the challenger), its outcome the policy's metric on that answer. Units enter the experiment in the order their
labels arrived (the feedback store keeps that order), so each look extends the sequence of the one before and the
confidence sequence stays valid however often the release looks. Labels for requests neither arm answered in the
window are counted, never an error.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from .experiment import Plan, look
from .feedback import ROW_MARK
from .performance import as_class
from .policy import AbMetric, AbTest

ARM_CHAMPION, ARM_CHALLENGER = "A", "B"


def outcome(metric: AbMetric, answer: Any, label: Any) -> float | None:
    """One unit's outcome; None when the answer or the label cannot be scored (left out, counted)."""
    if metric == "accuracy":
        return 1.0 if as_class(answer) == as_class(label) else 0.0
    try:
        error = abs(float(answer) - float(label))
    except (TypeError, ValueError):
        return None
    return error if math.isfinite(error) else None


def plan_of(ab: AbTest) -> Plan:
    """The pre-registered plan ``mlops.experiment`` judges with."""
    return Plan(share_b=ab.percent / 100, alpha=ab.alpha, power=ab.power, min_effect=ab.min_effect,
                outcome_sd=ab.outcome_sd, higher_is_better=ab.higher_is_better, min_units=ab.min_units,
                max_units=ab.max_units)


def judge(ab: AbTest, champion: Mapping[str, Any], challenger: Mapping[str, Any], labels: Mapping[str, Any],
          guardrails: Mapping[str, bool] | None = None, units: Mapping[str, str] | None = None) -> dict[str, Any]:
    """One look: the units so far, the decision and the report (n per arm, means, effect and its interval, the
    sample-ratio p-value, the guardrails, and how many answers and labels did not join). With ``unit_header``,
    ``units`` (request id -> unit id) makes a unit of each id: its first scored label counts, later ones are
    counted as ``repeat_labels``, and a unit answered by both arms (stickiness broken) as ``crossed_units``."""
    by_unit = units if ab.unit_header and units else {}
    arms: dict[str, str] = {}  # unit -> the arm of its counted answer
    crossed: set[str] = set()
    counted: list[tuple[str, float]] = []
    unmatched = unscored = repeated = 0
    for request_id, label in labels.items():
        if request_id in challenger:
            arm, answer = ARM_CHALLENGER, challenger[request_id]
        elif request_id in champion:
            arm, answer = ARM_CHAMPION, champion[request_id]
        else:
            unmatched += 1
            continue
        unit = by_unit.get(request_id.split(ROW_MARK, 1)[0])
        if unit is not None and unit in arms:
            repeated += 1
            if arms[unit] != arm:
                crossed.add(unit)
            continue
        value = outcome(ab.metric, answer, label)
        if value is None:
            unscored += 1
            continue
        if unit is not None:
            arms[unit] = arm
        counted.append((arm, value))
    report = look(counted, plan_of(ab), dict(guardrails or {})).to_dict()
    return {**report, "metric": ab.metric, "higher_is_better": ab.higher_is_better,
            "unit": f"header {ab.unit_header}" if ab.unit_header else "request",
            "answered": {ARM_CHAMPION: len(champion), ARM_CHALLENGER: len(challenger)},
            "unmatched_labels": unmatched, "unscored_labels": unscored, "repeat_labels": repeated,
            "crossed_units": len(crossed)}
