"""mlops.health: canary steps pass on good numbers, fail with the numbers, and fail safe without evidence."""

from __future__ import annotations

import pytest
from scipy.spatial.distance import jensenshannon

from mlops.health import analyse_step, prediction_shift
from mlops.policy import Health

POLICY = Health(max_error_rate=0.02, max_p95_latency_ratio=1.5, max_prediction_shift=0.2, min_requests=20)


def test_a_healthy_candidate_passes_every_check(make_metrics) -> None:
    report = analyse_step(POLICY, make_metrics("cand", 100, 1, 60.0), make_metrics("live", 400, 2, 50.0))
    assert report.passed and not report.inconclusive
    assert report.reason == "healthy over 100 requests"
    assert {c.name: c.passed for c in report.checks} == {"error_rate": True, "refused_requests": True,
                                                          "p95_latency_ratio": True, "prediction_shift": True}
    assert [c.value for c in report.checks][0] == 0.01
    assert next(c.value for c in report.checks if c.name == "p95_latency_ratio") == pytest.approx(1.2)


def test_too_many_errors_fail_with_the_rate(make_metrics) -> None:
    report = analyse_step(POLICY, make_metrics("cand", 100, 5), make_metrics("live", 400))
    assert not report.passed
    assert report.reason == "error_rate 0.050 > 0.020 (5/100 requests failed)"


def test_a_slow_candidate_fails_with_both_latencies(make_metrics) -> None:
    report = analyse_step(POLICY, make_metrics("cand", 100, p95=200.0), make_metrics("live", 400, p95=100.0))
    assert not report.passed
    assert report.reason == "p95_latency_ratio 2.000 > 1.500 (p95 200.0 ms vs live 100.0 ms)"


def test_shifted_predictions_fail_with_the_jensen_shannon_distance(make_metrics) -> None:
    report = analyse_step(POLICY, make_metrics("cand", 100, predictions={"0": 90, "1": 10}),
                          make_metrics("live", 400, predictions={"0": 200, "1": 200}))
    assert not report.passed
    shift = next(c for c in report.checks if c.name == "prediction_shift")
    assert shift.value == pytest.approx(jensenshannon([0.9, 0.1], [0.5, 0.5], base=2))
    assert report.reason.startswith("prediction_shift 0.3")


def test_prediction_shift_compares_histograms_over_the_union_of_labels() -> None:
    assert prediction_shift({"a": 10}, {"a": 5}) == 0.0
    assert prediction_shift({"a": 10}, {"b": 10}) == pytest.approx(1.0)
    assert prediction_shift({"a": 3, "b": 1}, {"a": 1, "c": 1}) == pytest.approx(
        jensenshannon([0.75, 0.25, 0.0], [0.5, 0.0, 0.5], base=2))
    assert prediction_shift({}, {"a": 1}) == 0.0


def test_too_few_candidate_requests_are_inconclusive_and_fail_safe(make_metrics) -> None:
    report = analyse_step(POLICY, make_metrics("cand", 5), make_metrics("live", 400))
    assert (report.passed, report.inconclusive) == (False, True)
    assert report.reason == "inconclusive: 5 candidate requests, at least 20 needed"


def test_errors_beyond_what_a_full_sample_allows_fail_outright(make_metrics) -> None:
    report = analyse_step(POLICY, make_metrics("cand", 5, errors=3), make_metrics("live", 400))
    assert (report.passed, report.inconclusive) == (False, False)
    assert report.reason == "error_rate: 3 errors in 5 requests already exceed 2.0% of 20"


def test_comparisons_with_live_are_skipped_when_live_has_no_traffic(make_metrics) -> None:
    report = analyse_step(POLICY, make_metrics("cand", 100, p95=500.0, predictions={"1": 100}),
                          make_metrics("live", 0, p95=0.0, predictions={}))
    assert report.passed
    skipped = {c.name: c.detail for c in report.checks if c.skipped}
    assert skipped == {"p95_latency_ratio": "skipped: live served 0 requests, 20 needed",
                       "prediction_shift": "skipped: 100 candidate and 0 live predictions"}


def test_metrics_as_activity_dicts_are_accepted(make_metrics) -> None:
    cand, live = make_metrics("cand", 100, 5).to_dict(), make_metrics("live", 400).to_dict()
    assert analyse_step(POLICY, cand, live).reason == "error_rate 0.050 > 0.020 (5/100 requests failed)"


def test_a_dict_without_counts_is_treated_as_no_traffic(make_metrics) -> None:
    report = analyse_step(POLICY, {"deployment": "cand"}, make_metrics("live", 400))
    assert report.inconclusive


def test_the_report_is_json_safe(make_metrics) -> None:
    data = analyse_step(POLICY, make_metrics("cand", 5), make_metrics("live", 400)).to_dict()
    assert data["inconclusive"] is True and len(data["checks"]) == 4


def test_a_candidate_that_refuses_requests_live_answers_fails_though_it_never_errs(make_metrics) -> None:
    from dataclasses import replace

    candidate = replace(make_metrics("cand", 100), client_error_count=12)
    live = replace(make_metrics("live", 400), client_error_count=4)
    report = analyse_step(POLICY, candidate, live)
    assert not report.passed
    assert report.reason == "refused_requests 0.110 > 0.020 (12/100 refused (4xx) vs 4/400 live)"
    same = analyse_step(POLICY, replace(make_metrics("cand", 100), client_error_count=1), live)
    assert same.passed  # refusing what live refuses too is not the candidate's fault


def test_a_regressors_predictions_are_compared_binned_not_as_labels() -> None:
    import numpy as np

    rng = np.random.default_rng(3)
    live = {f"{v:.1f}": 1 for v in rng.normal(300_000, 50_000, 400)}
    close = {f"{v:.1f}": 1 for v in rng.normal(302_000, 50_000, 200)}  # no value equal to a live one
    shifted = {f"{v:.1f}": 1 for v in rng.normal(450_000, 50_000, 200)}
    assert prediction_shift(close, live) < 0.2 < prediction_shift(shifted, live)
