"""A/B statistics: sample-ratio mismatch, an always-valid confidence sequence, and the decision at each look.

An A/B phase splits live traffic between the champion (arm ``A``) and the challenger (arm ``B``) at fixed
weights and looks at the outcomes as they arrive, on a durable timer. Looking often must not inflate false
positives, so the effect is judged with a confidence sequence, which covers the true effect at every look at
once, rather than with a fixed-sample test repeated at each look.

- **Effect.** Each assigned unit ``i`` with outcome ``y_i`` and arm ``z_i`` (1 for ``B``) gives
  ``phi_i = (y_i - c_i) * (z_i / p - (1 - z_i) / (1 - p))``, with ``p`` the planned share of ``B`` and ``c_i``
  the mean outcome before unit ``i`` (a predictable centre, which keeps the mean of ``phi`` at the effect
  ``E[y | B] - E[y | A]`` and lowers its variance): the inverse-propensity-weighted estimator of the average
  treatment effect of a randomised experiment.
- **Confidence sequence.** The two-sided Gaussian-mixture asymptotic confidence sequence of Waudby-Smith,
  Arnold, Wu, Howard and Ramdas, *Time-uniform central limit theory and asymptotic confidence sequences*
  (Annals of Statistics, 2024; arXiv:2103.06476, Theorem 2.2): ``mean_t +- sd_t * sqrt(2 (t r^2 + 1) /
  (t^2 r^2) * log(sqrt(t r^2 + 1) / alpha))``, with ``r`` tuned so the sequence is tightest at the planned
  sample size (their eq. for the optimal ``rho``).
- **Sample-ratio mismatch.** A chi-square goodness-of-fit test of the arms' counts against the planned split
  (``scipy.stats.chisquare``); below ``p = 0.001`` the experiment halts, as GrowthBook's SRM check does
  (https://docs.growthbook.io/using/experimenting#sample-ratio-mismatch-srm): a broken assignment makes every
  other figure meaningless.
- **Decision.** Halt on SRM; stop for harm when a guardrail fails or the sequence lies below zero; ship when
  it lies above zero; keep the champion (inconclusive) at the planned size; otherwise continue.

``operating_characteristics`` simulates experiments with repeated looks to measure the false-positive rate,
the power and the SRM detection of a plan; the tests hold them to the plan.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np
from scipy import stats

SRM_P_VALUE = 0.001  # GrowthBook's default SRM threshold


class Decision(StrEnum):
    """What a look decides."""

    CONTINUE = "continue"
    SHIP = "ship"  # the challenger is better: promote it
    STOP_FOR_HARM = "stop_for_harm"  # the challenger is worse, or a guardrail failed
    KEEP_CHAMPION = "keep_champion"  # the planned size was reached without a difference: inconclusive
    HALT_SRM = "halt_srm"  # the assignment is broken: nothing else can be trusted


@dataclass(frozen=True)
class Plan:
    """A pre-registered A/B plan: split, error rates and the effect it must be able to see."""

    share_b: float = 0.5  # planned share of units assigned to the challenger
    alpha: float = 0.05  # two-sided: the chance, over all looks, of calling a difference that is not there
    power: float = 0.8  # the chance of shipping a challenger better by ``min_effect``
    min_effect: float = 0.05  # minimum detectable effect, in the metric's units (challenger - champion)
    outcome_sd: float = 0.5  # the outcome's standard deviation, for planning (0.5 is the worst case of a rate)
    higher_is_better: bool = True  # the primary metric's direction
    min_units: int = 100  # no decision before this many units (the sequence is asymptotic)
    max_units: int = 0  # the planned size; 0: computed from the effect, alpha and power

    def __post_init__(self) -> None:
        if not 0 < self.share_b < 1:
            raise ValueError(f"share_b must be between 0 and 1, got {self.share_b}")
        if not 0 < self.alpha < 0.5 or not 0.5 <= self.power < 1:
            raise ValueError(f"alpha must be in (0, 0.5) and power in [0.5, 1), got {self.alpha}, {self.power}")
        if self.min_effect <= 0 or self.outcome_sd <= 0:
            raise ValueError("min_effect and outcome_sd must be positive")

    @property
    def planned_units(self) -> int:
        """The planned size: ``max_units``, or the smallest n whose sequence excludes zero with probability
        ``power`` when the effect is ``min_effect`` (normal approximation of the estimate at the last look)."""
        return self.max_units or planned_size(self)

    @property
    def tuning(self) -> float:
        """The mixture's ``rho^2``, tightest at the planned size (Waudby-Smith et al., section 2.3)."""
        n = self.max_units or _fixed_size(self)
        log_term = -2 * math.log(self.alpha)
        return (log_term + math.log(log_term + 1)) / n


def _phi_sd(plan: Plan) -> float:
    """Standard deviation of one unit's ``phi`` when the outcome's is ``outcome_sd``."""
    p = plan.share_b
    return plan.outcome_sd * math.sqrt(1 / p + 1 / (1 - p))


def _fixed_size(plan: Plan) -> int:
    """The fixed-sample size of a two-sided z-test at ``alpha`` with ``power``: where the mixture is tuned."""
    z = stats.norm.ppf(1 - plan.alpha / 2) + stats.norm.ppf(plan.power)
    return max(plan.min_units, math.ceil((z * _phi_sd(plan) / plan.min_effect) ** 2))


def radius(n: int | np.ndarray, sd: float | np.ndarray, alpha: float, rho2: float) -> Any:
    """Half-width of the asymptotic confidence sequence after ``n`` units with sample sd ``sd`` (Theorem 2.2)."""
    n = np.asarray(n, dtype=float)
    width = np.sqrt(2 * (n * rho2 + 1) / (n ** 2 * rho2) * np.log(np.sqrt(n * rho2 + 1) / alpha))
    return np.asarray(sd) * width


def planned_size(plan: Plan) -> int:
    """The smallest n at which the sequence's lower bound clears zero with probability ``power`` for an effect of
    ``min_effect``: ``min_effect - radius(n) >= z_power * sd / sqrt(n)``."""
    sd, z, rho2 = _phi_sd(plan), stats.norm.ppf(plan.power), plan.tuning
    n = plan.min_units
    while plan.min_effect - float(radius(n, sd, plan.alpha, rho2)) < z * sd / math.sqrt(n):
        n = math.ceil(n * 1.02) + 1
        if n > 10 ** 9:
            raise ValueError("the planned effect is too small to detect")
    return n


@dataclass(frozen=True)
class Srm:
    """The sample-ratio-mismatch check."""

    counts: dict[str, int]
    expected: dict[str, float]
    p_value: float

    @property
    def mismatch(self) -> bool:
        """True when the split is not what was planned (p below 0.001)."""
        return self.p_value < SRM_P_VALUE


def srm(count_a: int, count_b: int, share_b: float) -> Srm:
    """Chi-square goodness of fit of the arms' counts against the planned split."""
    total = count_a + count_b
    expected = {"A": total * (1 - share_b), "B": total * share_b}
    p_value = 1.0 if total == 0 else float(stats.chisquare([count_a, count_b],
                                                          f_exp=[expected["A"], expected["B"]]).pvalue)
    return Srm({"A": count_a, "B": count_b}, expected, p_value)


@dataclass(frozen=True)
class Look:
    """One look at the experiment: counts, means, the effect's sequence, SRM and the decision."""

    decision: Decision
    reason: str
    units: int
    planned_units: int
    arms: dict[str, dict[str, float]]  # arm -> {n, mean}
    effect: float  # challenger - champion, in the metric's units
    lower: float
    upper: float
    srm_p_value: float
    guardrails: dict[str, bool] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (the run's detail, the API)."""
        return {**asdict(self), "decision": str(self.decision)}


def _phi(arms: np.ndarray, outcomes: np.ndarray, share_b: float) -> np.ndarray:
    """Each unit's ``phi``, with the mean of the outcomes before it as its centre (0 for the first)."""
    before = np.concatenate([[0.0], np.cumsum(outcomes)[:-1]])
    centre = before / np.maximum(np.arange(len(outcomes)), 1)
    weight = np.where(arms == 1, 1 / share_b, -1 / (1 - share_b))
    return np.asarray((outcomes - centre) * weight)


def look(observations: Sequence[tuple[str, float]], plan: Plan, guardrails: dict[str, bool] | None = None) -> Look:
    """Judge the experiment from its units in assignment order: (arm ``"A"`` or ``"B"``, outcome)."""
    guardrails = dict(guardrails or {})
    arms = np.array([1 if arm == "B" else 0 for arm, _ in observations], dtype=int)
    if any(arm not in ("A", "B") for arm, _ in observations):
        raise ValueError("every observation's arm must be 'A' (champion) or 'B' (challenger)")
    outcomes = np.array([float(y) for _, y in observations], dtype=float)
    sign = 1.0 if plan.higher_is_better else -1.0
    n, planned = len(outcomes), plan.planned_units
    summary = {name: {"n": int((arms == k).sum()),
                      "mean": float(outcomes[arms == k].mean()) if (arms == k).any() else 0.0}
               for name, k in (("A", 0), ("B", 1))}
    check = srm(int(summary["A"]["n"]), int(summary["B"]["n"]), plan.share_b)
    effect, lower, upper = 0.0, -math.inf, math.inf
    if n >= 2:
        phi = _phi(arms, outcomes, plan.share_b)
        effect = float(phi.mean())
        half = float(radius(n, phi.std(ddof=1), plan.alpha, plan.tuning))
        lower, upper = effect - half, effect + half
    decision, reason = _decide(n, planned, plan, check, sign * lower if sign > 0 else -upper,
                               sign * upper if sign > 0 else -lower, guardrails)
    return Look(decision, reason, n, planned, summary, effect, lower, upper, check.p_value, guardrails)


def _decide(n: int, planned: int, plan: Plan, check: Srm, better_low: float, better_high: float,
            guardrails: dict[str, bool]) -> tuple[Decision, str]:
    """The decision from the sequence oriented so that positive means "the challenger is better"."""
    if check.mismatch:
        return Decision.HALT_SRM, (f"sample ratio mismatch: {check.counts} against a planned "
                                   f"{1 - plan.share_b:.0%}/{plan.share_b:.0%} split (p = {check.p_value:.2g})")
    failed = sorted(name for name, ok in guardrails.items() if not ok)
    if failed:
        return Decision.STOP_FOR_HARM, f"guardrail failed: {', '.join(failed)}"
    if n < plan.min_units:
        return Decision.CONTINUE, f"{n} of at least {plan.min_units} units before any decision"
    if better_low > 0:
        return Decision.SHIP, f"the challenger is better: the effect's sequence is above zero after {n} units"
    if better_high < 0:
        return Decision.STOP_FOR_HARM, f"the challenger is worse: the effect's sequence is below zero after {n} units"
    if n >= planned:
        return Decision.KEEP_CHAMPION, f"no difference found in the planned {planned} units: inconclusive"
    return Decision.CONTINUE, f"{n} of {planned} planned units, no difference yet"


# --------------------------------------------------------------------------------------------- simulation
@dataclass(frozen=True)
class Characteristics:
    """How often simulated experiments with repeated looks ended each way."""

    experiments: int
    looks: int
    decisions: dict[str, float]  # decision -> share of experiments

    def share(self, decision: Decision) -> float:
        """The share of experiments that ended with ``decision``."""
        return self.decisions.get(str(decision), 0.0)


def _srm_p_values(n_a: np.ndarray, n_b: np.ndarray, share_b: float) -> np.ndarray:
    """``srm``'s p-values for many looks at once (the chi-square statistic with one degree of freedom)."""
    total = n_a + n_b
    exp_a, exp_b = total * (1 - share_b), total * share_b
    chi2 = (n_a - exp_a) ** 2 / exp_a + (n_b - exp_b) ** 2 / exp_b
    return np.asarray(stats.chi2.sf(chi2, df=1))


def operating_characteristics(plan: Plan, effect: float, *, base_rate: float = 0.3, experiments: int = 1000,
                              every: int = 50, actual_share_b: float | None = None,
                              seed: int = 0) -> Characteristics:
    """Simulate ``experiments`` A/B tests on Bernoulli outcomes (the champion converts at ``base_rate``, the
    challenger at ``base_rate + effect``), looking every ``every`` units from ``min_units`` to the planned size,
    with assignment at ``actual_share_b`` (default: as planned). The first look that decides ends an experiment;
    each look decides as ``look`` does (the same sequence, SRM check and order of rules)."""
    rng = np.random.default_rng(seed)
    planned = plan.planned_units
    share = plan.share_b if actual_share_b is None else actual_share_b
    points = np.unique(np.append(np.arange(plan.min_units, planned, every), planned))
    sign = 1.0 if plan.higher_is_better else -1.0
    counts: dict[str, int] = {}
    for _ in range(experiments):
        arms = (rng.random(planned) < share).astype(int)
        outcomes = (rng.random(planned) < np.where(arms == 1, base_rate + effect, base_rate)).astype(float)
        phi = _phi(arms, outcomes, plan.share_b)
        n = points.astype(float)
        mean = np.cumsum(phi)[points - 1] / n
        sd = np.sqrt(np.maximum(np.cumsum(phi ** 2)[points - 1] - n * mean ** 2, 0.0) / (n - 1))
        half = radius(points, sd, plan.alpha, plan.tuning)
        better_low = np.where(sign > 0, mean - half, -(mean + half))
        better_high = np.where(sign > 0, mean + half, -(mean - half))
        n_b = np.cumsum(arms)[points - 1].astype(float)
        halted = _srm_p_values(n - n_b, n_b, plan.share_b) < SRM_P_VALUE
        # the rules of _decide, in its order, at every look; the first look that decides ends the experiment
        verdicts = np.select([halted, better_low > 0, better_high < 0],
                             [str(Decision.HALT_SRM), str(Decision.SHIP), str(Decision.STOP_FOR_HARM)],
                             default=str(Decision.CONTINUE))
        decided = np.flatnonzero(verdicts != str(Decision.CONTINUE))
        decision = str(verdicts[decided[0]]) if len(decided) else str(Decision.KEEP_CHAMPION)
        counts[decision] = counts.get(decision, 0) + 1
    return Characteristics(experiments, len(points), {k: v / experiments for k, v in sorted(counts.items())})
