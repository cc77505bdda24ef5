"""The A/B statistics tested as statistics: simulated experiments with repeated looks, fixed seeds.

Tolerances: a share measured over n simulated experiments has a standard error of at most sqrt(p (1 - p) / n);
each bound below allows three standard errors above the planned rate (false positives) or two below it (power).
"""

from __future__ import annotations

import math
import random

import pytest

from mlops.experiment import Decision, Plan, look, operating_characteristics, srm

PLAN = Plan(min_effect=0.05, outcome_sd=0.46, alpha=0.05, power=0.8)  # a rate of 0.3 has sd 0.46
EXPERIMENTS = 1000


def se(p: float, n: int = EXPERIMENTS) -> float:
    return math.sqrt(p * (1 - p) / n)


def test_with_no_true_difference_looking_every_50_units_keeps_false_positives_within_alpha() -> None:
    c = operating_characteristics(PLAN, effect=0.0, experiments=EXPERIMENTS, every=50, seed=20261202)
    assert c.looks > 50  # repeated looks, not one test at the end
    false_positive = c.share(Decision.SHIP) + c.share(Decision.STOP_FOR_HARM)
    assert false_positive <= PLAN.alpha + 3 * se(PLAN.alpha), c.decisions


def test_with_a_true_effect_of_the_planned_size_the_power_is_the_planned_power() -> None:
    c = operating_characteristics(PLAN, effect=PLAN.min_effect, experiments=EXPERIMENTS, every=50, seed=7)
    assert c.share(Decision.SHIP) >= PLAN.power - 2 * se(PLAN.power), c.decisions
    assert c.share(Decision.STOP_FOR_HARM) == 0.0


def test_a_truly_worse_challenger_is_stopped_for_harm() -> None:
    c = operating_characteristics(PLAN, effect=-PLAN.min_effect, experiments=300, every=50, seed=8)
    assert c.share(Decision.STOP_FOR_HARM) >= PLAN.power - 2 * se(PLAN.power, 300), c.decisions
    assert c.share(Decision.SHIP) <= 3 * se(PLAN.alpha, 300)


def test_a_45_55_split_in_a_50_50_plan_trips_the_sample_ratio_check() -> None:
    c = operating_characteristics(PLAN, effect=0.0, experiments=300, every=50, actual_share_b=0.55, seed=9)
    assert c.share(Decision.HALT_SRM) >= 0.95, c.decisions


def test_lower_is_better_metrics_ship_a_challenger_that_lowers_them() -> None:
    plan = Plan(min_effect=0.05, outcome_sd=0.46, higher_is_better=False)
    c = operating_characteristics(plan, effect=-0.05, experiments=200, every=50, seed=10)
    assert c.share(Decision.SHIP) >= plan.power - 2 * se(plan.power, 200), c.decisions


def units(n: int, rate_a: float, rate_b: float, share_b: float = 0.5, seed: int = 1) -> list[tuple[str, float]]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        arm = "B" if rng.random() < share_b else "A"
        out.append((arm, float(rng.random() < (rate_b if arm == "B" else rate_a))))
    return out


def test_a_look_reports_counts_means_effect_interval_and_srm() -> None:
    result = look(units(4000, 0.3, 0.4), PLAN)
    assert result.decision == Decision.SHIP and "better" in result.reason
    assert result.arms["A"]["n"] + result.arms["B"]["n"] == result.units == 4000
    assert result.arms["B"]["mean"] - result.arms["A"]["mean"] == pytest.approx(0.1, abs=0.03)
    assert result.lower > 0 and result.lower < result.effect < result.upper
    assert result.effect == pytest.approx(0.1, abs=0.03) and result.srm_p_value > 0.001
    assert result.to_dict()["decision"] == "ship"


def test_before_the_minimum_units_nothing_is_decided_even_on_a_huge_difference() -> None:
    result = look(units(50, 0.0, 1.0), PLAN)
    assert result.decision == Decision.CONTINUE and "at least 100 units" in result.reason


def test_at_the_planned_size_with_no_difference_the_champion_is_kept_as_inconclusive() -> None:
    plan = Plan(min_effect=0.05, outcome_sd=0.46, max_units=2000)
    result = look(units(2000, 0.3, 0.3, seed=3), plan)
    assert result.decision == Decision.KEEP_CHAMPION and "inconclusive" in result.reason
    assert result.lower < 0 < result.upper


def test_a_failed_guardrail_stops_for_harm_whatever_the_metric_says() -> None:
    result = look(units(4000, 0.3, 0.4), PLAN, guardrails={"error_rate": False, "latency_p95": True})
    assert result.decision == Decision.STOP_FOR_HARM and result.reason == "guardrail failed: error_rate"


def test_a_broken_assignment_halts_before_anything_else_is_read() -> None:
    result = look(units(4000, 0.3, 0.4, share_b=0.56), PLAN)
    assert result.decision == Decision.HALT_SRM and "sample ratio mismatch" in result.reason
    assert srm(2000, 2000, 0.5).p_value == 1.0 and srm(1800, 2200, 0.5).mismatch


def test_a_plan_that_cannot_be_run_is_refused_with_the_reason() -> None:
    with pytest.raises(ValueError, match="share_b must be between 0 and 1"):
        Plan(share_b=1.0)
    with pytest.raises(ValueError, match="every observation's arm must be 'A'"):
        look([("C", 1.0)], PLAN)
