"""Operating characteristics of the A/B decision (``mlops.experiment``), measured by simulation in one run.

Simulates experiments on Bernoulli outcomes (the champion converts at 0.3) with a look every ``--every``
units from the plan's minimum to its planned size, and prints, for the plan (alpha 0.05, power 0.8, minimum
detectable effect 0.05): the false-positive rate with no true difference, the power at the planned effect,
the share of SRM halts with a correct split and with a 45/55 split, and, for comparison, the false-positive
rate of a fixed-sample z-test repeated at every look (what the confidence sequence is for).

    python bench/ab_statistics.py [--experiments 2000] [--every 50] [--seed 20261202]
"""

from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mlops import experiment  # noqa: E402
from mlops.experiment import Decision, Plan, operating_characteristics  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiments", type=int, default=2000)
    parser.add_argument("--every", type=int, default=50)
    parser.add_argument("--seed", type=int, default=20261202)
    args = parser.parse_args()
    plan = Plan(min_effect=0.05, outcome_sd=0.46)
    simulate = functools.partial(operating_characteristics, plan, experiments=args.experiments, every=args.every,
                                 seed=args.seed)
    null, power = simulate(0.0), simulate(plan.min_effect)
    broken = simulate(0.0, actual_share_b=0.55)
    print(f"plan: alpha {plan.alpha}, power {plan.power}, effect {plan.min_effect}, planned size "
          f"{plan.planned_units} units, {null.looks} looks, {args.experiments} experiments each")
    fp = null.share(Decision.SHIP) + null.share(Decision.STOP_FOR_HARM)
    print(f"false-positive rate, no true difference: {fp:.3f} (planned at most {plan.alpha})")
    print(f"power at the planned effect: {power.share(Decision.SHIP):.3f} (planned at least {plan.power})")
    print(f"SRM halts, correct 50/50 split: {null.share(Decision.HALT_SRM):.3f}; 45/55 split: "
          f"{broken.share(Decision.HALT_SRM):.3f}")
    sequence = experiment.radius
    experiment.radius = lambda n, sd, alpha, rho2: np.asarray(sd) * 1.96 / np.sqrt(np.asarray(n, dtype=float))
    try:
        naive = simulate(0.0)
    finally:
        experiment.radius = sequence
    naive_fp = naive.share(Decision.SHIP) + naive.share(Decision.STOP_FOR_HARM)
    print(f"false-positive rate of a fixed-sample z-test at every look: {naive_fp:.3f} "
          f"({naive_fp / max(fp, 1e-9):.1f}x the confidence sequence's)")


if __name__ == "__main__":
    main()
