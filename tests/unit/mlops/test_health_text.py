"""mlops.health for chat models: prediction shift compares the lengths of their replies, not the texts."""

from __future__ import annotations

import random

import numpy as np
import pytest
from scipy.spatial.distance import jensenshannon

from mlops.health import MIN_BINNED, analyse_step, prediction_shift
from mlops.policy import Health

POLICY = Health(max_error_rate=0.02, max_p95_latency_ratio=1.5, max_prediction_shift=0.2, min_requests=20)
VOCABULARY = ["please", "your", "order", "the", "invoice", "was", "sent", "to", "we", "have", "reset", "account",
              "password", "refund", "ticket"]


def _replies(seed: int, n: int, words: tuple[int, int]) -> dict[str, int]:
    """n distinct replies (as the gateway's metrics count them) with lengths drawn from ``words``."""
    rng = random.Random(seed)
    replies: dict[str, int] = {}
    while len(replies) < n:
        reply = " ".join(rng.choice(VOCABULARY) for _ in range(rng.randint(*words)))
        replies[f"{reply} #{len(replies)}"] = 1  # every reply its own text, as a chat model's are
    return replies


def test_two_models_answering_at_similar_lengths_barely_shift_though_no_reply_is_the_same(make_metrics) -> None:
    candidate, live = _replies(1, 100, (8, 20)), _replies(2, 400, (8, 20))
    assert not set(candidate) & set(live)
    assert prediction_shift(candidate, live, text=True) < POLICY.max_prediction_shift  # sampling noise only
    assert prediction_shift(candidate, live) == pytest.approx(1.0)  # as labels: disjoint, and meaningless
    report = analyse_step(POLICY, make_metrics("cand", 100, predictions=candidate),
                          make_metrics("live", 400, predictions=live), text=True)
    assert report.passed, report.reason


def test_a_model_answering_much_longer_shifts_far_and_fails_its_step(make_metrics) -> None:
    verbose, live = _replies(1, 100, (40, 70)), _replies(2, 400, (8, 20))
    assert prediction_shift(verbose, live, text=True) > 0.7  # every reply past live's longest decile

    report = analyse_step(POLICY, make_metrics("cand", 100, predictions=verbose),
                          make_metrics("live", 400, predictions=live), text=True)
    assert not report.passed
    assert report.reason.startswith(f"prediction_shift {prediction_shift(verbose, live, text=True):.3f} > 0.200")
    assert "answer lengths" in report.reason


def test_a_few_distinct_replies_are_compared_by_length_too(make_metrics) -> None:
    # greedy decoding answers the same question the same way: a canary window may hold only a handful of texts
    live = {"The billing service is codenamed Bluefin.": 6, "Use the Forgot password link.": 6}
    candidate = {"Bluefin is the billing service's codename.": 6, "Click Forgot password on sign-in.": 6}
    assert prediction_shift(candidate, live, text=True) < 0.2
    assert prediction_shift(candidate, live) == pytest.approx(1.0)


def test_reply_lengths_are_binned_into_the_live_replies_deciles() -> None:
    # live: 100 replies of 2..101 words; the candidate's 100 answer 3 words or 40 words
    live = {" ".join(["w"] * n) + f" {n}": 1 for n in range(1, 101)}
    candidate = {"a short reply": 50, " ".join(["long"] * 40): 50}
    live_words = [n + 1 for n in range(1, 101)]

    edges = np.unique(np.quantile(live_words, np.linspace(0, 1, 11)[1:-1]))
    p = np.bincount(np.searchsorted(edges, [3, 40], side="right"), weights=[50, 50], minlength=len(edges) + 1)
    q = np.bincount(np.searchsorted(edges, live_words, side="right"), minlength=len(edges) + 1)
    assert prediction_shift(candidate, live, text=True) == pytest.approx(
        jensenshannon(p / p.sum(), q / q.sum(), base=2))


def test_fewer_replies_get_fewer_bins_one_per_ten_of_the_smaller_side() -> None:
    # 30 live replies, 20 candidate ones: 2 bins, above or below live's median (16.5 words)
    live = {" ".join(["w"] * n) + f" {n}": 1 for n in range(1, 31)}
    split = {"a short reply": 10, " ".join(["long"] * 40): 10}  # half below, half above: as live
    longer = {" ".join(["long"] * 40): 20}  # all above
    assert prediction_shift(split, live, text=True) == pytest.approx(0.0)
    assert prediction_shift(longer, live, text=True) == pytest.approx(
        jensenshannon([0, 1], [0.5, 0.5], base=2))


def test_too_few_replies_to_bin_skip_the_shift_check_and_say_why(make_metrics) -> None:
    live = _replies(2, 400, (8, 20))
    verbose = _replies(1, MIN_BINNED - 1, (40, 70))
    report = analyse_step(POLICY, make_metrics("cand", MIN_BINNED - 1, predictions=verbose),
                          make_metrics("live", 400, predictions=live), text=True)
    shift = next(c for c in report.checks if c.name == "prediction_shift")
    assert shift.skipped and shift.value is None
    assert shift.detail == (f"skipped: {MIN_BINNED - 1} candidate and 400 live predictions; comparing answer "
                            f"lengths needs {MIN_BINNED} on each side")
    enough = analyse_step(POLICY, make_metrics("cand", MIN_BINNED, predictions=_replies(1, MIN_BINNED, (40, 70))),
                          make_metrics("live", 400, predictions=live), text=True)
    assert not enough.passed and enough.reason.startswith("prediction_shift")


def test_many_one_word_class_labels_are_still_compared_as_labels() -> None:
    labels = [f"category{i}" for i in range(30)]
    candidate = {k: 3 for k in labels[:15]}
    live = {k: 3 for k in labels[15:]}
    assert prediction_shift(candidate, live) == pytest.approx(1.0)  # disjoint labels, though all one word long


def test_a_few_multi_word_labels_are_still_compared_as_labels() -> None:
    assert prediction_shift({"billing issue": 9, "technical problem": 1},
                            {"billing issue": 5, "technical problem": 5}) == pytest.approx(
        jensenshannon([0.9, 0.1], [0.5, 0.5], base=2))
