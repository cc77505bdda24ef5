"""Unit tests of the pure decisions: data validation and gates, canary health, drift statistics."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon

from mlops import drift, gates, health, sampledata
from mlops.policy import DataChecks, Gates, Health, Monitoring

COLUMNS = {"f0": "float", "f1": "float", "f2": "float", "f3": "float", "f4": "float", "f5": "float",
           "segment": "str", "label": "int"}
CHECKS = DataChecks(required_columns=COLUMNS, min_rows=200, max_null_fraction=0.05)


def rows(n: int = 400, **kw):
    return sampledata.generate(n, seed=3, **kw)


# --------------------------------------------------------------------------------------------- validate_data


def test_good_csv_passes():
    report = gates.validate_data(CHECKS, "label", sampledata.to_csv_bytes(rows()))
    assert report.passed, report.problems
    assert report.problems == []
    assert report.rows == 400
    assert report.columns == list(COLUMNS)
    assert report.null_fraction == {c: 0.0 for c in COLUMNS}
    assert report.to_dict()["passed"] is True


def test_bom_is_accepted():
    content = b"\xef\xbb\xbf" + sampledata.to_csv_bytes(rows())
    assert gates.validate_data(CHECKS, "label", content).passed


def test_schema_break_names_the_column():
    report = gates.validate_data(CHECKS, "label", sampledata.to_csv_bytes(rows(schema_break=True)))
    assert not report.passed
    assert report.problems == ["missing columns: f3"]


def test_too_few_rows():
    report = gates.validate_data(CHECKS, "label", sampledata.to_csv_bytes(rows(150)))
    assert not report.passed
    assert report.problems == ["150 rows, at least 200 required"]


def test_nulls_over_the_limit():
    data = rows()
    for r in data[:40]:  # 10 % of 400
        r["f2"] = ""
    for r in data[40:50]:  # 2.5 %: under the limit
        r["f4"] = "NaN"
    report = gates.validate_data(CHECKS, "label", sampledata.to_csv_bytes(data))
    assert not report.passed
    assert report.null_fraction["f2"] == 0.1
    assert report.null_fraction["f4"] == 0.025
    assert len(report.problems) == 1
    assert "'f2'" in report.problems[0] and "10.0% null" in report.problems[0] and "5.0%" in report.problems[0]


def test_label_missing():
    data = [{k: v for k, v in r.items() if k != "label"} for r in rows()]
    report = gates.validate_data(CHECKS, "label", sampledata.to_csv_bytes(data))
    assert not report.passed
    assert report.problems == ["label column 'label' is missing"]


def test_label_missing_when_not_in_required_columns():
    checks = DataChecks(min_rows=10)
    data = [{k: v for k, v in r.items() if k != "label"} for r in rows(20)]
    report = gates.validate_data(checks, "label", sampledata.to_csv_bytes(data))
    assert report.problems == ["label column 'label' is missing"]


def test_empty_label_values():
    data = rows()
    data[0]["label"] = ""
    report = gates.validate_data(CHECKS, "label", sampledata.to_csv_bytes(data))
    assert not report.passed
    assert report.problems == ["label column 'label' has 1 empty values"]


def test_wrong_type():
    data = rows()
    data[5]["f1"] = "abc"
    data[7]["label"] = "1.5"
    report = gates.validate_data(CHECKS, "label", sampledata.to_csv_bytes(data))
    assert not report.passed
    assert "column 'f1' must be float: 1 values are not (e.g. 'abc')" in report.problems
    assert "column 'label' must be int: 1 values are not (e.g. '1.5')" in report.problems


def test_bool_column():
    checks = DataChecks(required_columns={"flag": "bool", "label": "int"}, min_rows=1)
    ok = gates.validate_data(checks, "label", b"flag,label\ntrue,1\nFalse,0\n1,1\n")
    assert ok.passed, ok.problems
    bad = gates.validate_data(checks, "label", b"flag,label\nyes,1\n")
    assert bad.problems == ["column 'flag' must be bool: 1 values are not (e.g. 'yes')"]


def test_not_utf8_and_empty():
    assert gates.validate_data(CHECKS, "label", b"\xff\xfe\x00bad").problems[0].startswith("not UTF-8 text")
    assert gates.validate_data(CHECKS, "label", b"").problems == ["no header row"]


# --------------------------------------------------------------------------------------------- evaluate_gates

GATES = Gates(min_metrics={"accuracy": 0.75, "f1": 0.7}, max_regression={"accuracy": 0.02})


def test_gates_pass_without_champion():
    report = gates.evaluate_gates(GATES, {"accuracy": 0.9, "f1": 0.88}, None)
    assert report.passed
    assert [(v.name, v.metric) for v in report.verdicts] == [("minimum", "accuracy"), ("minimum", "f1")]


def test_gates_pass_within_allowed_regression():
    report = gates.evaluate_gates(GATES, {"accuracy": 0.84, "f1": 0.8}, {"accuracy": 0.85, "f1": 0.9})
    assert report.passed
    reg = report.verdicts[-1]
    assert reg.name == "no_regression" and reg.passed
    assert reg.champion_value == 0.85
    assert reg.threshold == pytest.approx(0.83)
    assert "within the allowed regression of 0.020" in reg.reason


def test_minimum_fails_with_numbers():
    report = gates.evaluate_gates(GATES, {"accuracy": 0.7, "f1": 0.8}, None)
    assert not report.passed
    failed = [v for v in report.verdicts if not v.passed]
    assert len(failed) == 1
    v = failed[0]
    assert (v.name, v.metric, v.value, v.threshold) == ("minimum", "accuracy", 0.7, 0.75)
    assert v.reason == "accuracy 0.700 < minimum 0.750"


def test_unmeasured_metric_fails():
    report = gates.evaluate_gates(GATES, {"accuracy": 0.9}, None)
    assert not report.passed
    v = next(v for v in report.verdicts if v.metric == "f1")
    assert v.value is None and not v.passed
    assert "f1 was not measured" in v.reason and "0.7" in v.reason


def test_regression_vs_champion_fails_with_both_numbers():
    report = gates.evaluate_gates(GATES, {"accuracy": 0.80, "f1": 0.8}, {"accuracy": 0.85})
    assert not report.passed
    failed = [v for v in report.verdicts if not v.passed]
    assert [v.name for v in failed] == ["no_regression"]
    v = failed[0]
    assert v.value == 0.80 and v.champion_value == 0.85
    assert "0.800" in v.reason and "0.850" in v.reason
    assert "regressed by 0.050" in v.reason and "0.020" in v.reason
    assert v.to_dict()["champion_value"] == 0.85


def test_regression_skipped_when_champion_lacks_metric():
    report = gates.evaluate_gates(GATES, {"accuracy": 0.8, "f1": 0.8}, {"auc": 0.9})
    assert report.passed
    assert all(v.name == "minimum" for v in report.verdicts)


# --------------------------------------------------------------------------------------------- health

HEALTH = Health(max_error_rate=0.02, max_p95_latency_ratio=1.5, max_prediction_shift=0.2, min_requests=20)


def metrics(n=100, errors=0, p95=100.0, predictions=None):
    return {"request_count": n, "error_count": errors, "latency_p95_ms": p95,
            "predictions": predictions if predictions is not None else {"0": 50, "1": 50}}


def test_healthy_step():
    report = health.analyse_step(HEALTH, metrics(errors=1, p95=120), metrics())
    assert report.passed and not report.inconclusive
    assert report.reason == "healthy"
    assert [c.name for c in report.checks] == ["error_rate", "p95_latency_ratio", "prediction_shift"]
    assert report.checks[0].value == pytest.approx(0.01)
    assert report.checks[1].value == pytest.approx(1.2)
    assert report.checks[2].value == pytest.approx(0.0)


def test_error_rate_fails():
    report = health.analyse_step(HEALTH, metrics(errors=5), metrics())
    assert not report.passed and not report.inconclusive
    assert report.reason.startswith("error_rate 0.050 > 0.020")
    assert "5/100 requests failed" in report.reason


def test_latency_ratio_fails():
    report = health.analyse_step(HEALTH, metrics(p95=200), metrics(p95=100))
    assert not report.passed
    check = next(c for c in report.checks if c.name == "p95_latency_ratio")
    assert check.value == pytest.approx(2.0) and not check.passed
    assert "p95_latency_ratio 2.000 > 1.500" in report.reason


def test_latency_skipped_without_live_traffic():
    report = health.analyse_step(HEALTH, metrics(p95=500), metrics(n=0, p95=0, predictions={}))
    assert report.passed
    assert "p95_latency_ratio" not in [c.name for c in report.checks]


def test_prediction_shift_fails():
    cand, live = {"0": 90, "1": 10}, {"0": 20, "1": 80}
    report = health.analyse_step(HEALTH, metrics(predictions=cand), metrics(predictions=live))
    assert not report.passed
    check = next(c for c in report.checks if c.name == "prediction_shift")
    expected = jensenshannon([0.9, 0.1], [0.2, 0.8], base=2)
    assert check.value == pytest.approx(expected)
    assert check.value > 0.2
    assert report.reason.startswith("prediction_shift")


def test_prediction_shift_helper():
    assert health.prediction_shift({}, {}) == 0.0
    assert health.prediction_shift({"a": 0}, {"a": 3}) == 0.0
    assert health.prediction_shift({"a": 10}, {"b": 10}) == pytest.approx(1.0)
    assert health.prediction_shift({"a": 1, "b": 3}, {"a": 2, "b": 6}) == pytest.approx(0.0, abs=1e-7)


def test_inconclusive_with_too_few_requests():
    report = health.analyse_step(HEALTH, metrics(n=19, errors=19), metrics())
    assert not report.passed and report.inconclusive
    assert report.checks == []
    assert report.reason == "inconclusive: 19 candidate requests, at least 20 needed"
    assert report.to_dict()["inconclusive"] is True


def test_analyse_step_accepts_objects():
    class M:
        def __init__(self, **kw):
            self.__dict__.update(kw)

    report = health.analyse_step(HEALTH, M(**metrics()), M(**metrics()))
    assert report.passed


# --------------------------------------------------------------------------------------------- drift: ks


def test_ks_matches_scipy_per_column():
    rng = np.random.default_rng(0)
    ref = rng.normal(size=(300, 3))
    cur = rng.normal(size=(200, 3)) + np.array([0.0, 0.3, 1.0])
    stat, pval = drift.ks(ref, cur)
    assert stat.shape == pval.shape == (3,)
    for j in range(3):
        expected = stats.ks_2samp(ref[:, j], cur[:, j])
        assert stat[j] == pytest.approx(expected.statistic)
        assert pval[j] == pytest.approx(expected.pvalue)


def test_ks_one_dimensional():
    a, b = np.arange(50.0), np.arange(50.0) + 10
    stat, pval = drift.ks(a, b)
    expected = stats.ks_2samp(a, b)
    assert stat.shape == (1,)
    assert stat[0] == pytest.approx(expected.statistic) and pval[0] == pytest.approx(expected.pvalue)


# --------------------------------------------------------------------------------------------- drift: psi


def _psi_by_hand(ref_share: list[float], cur_share: list[float]) -> float:
    total = 0.0
    for r, c in zip(ref_share, cur_share, strict=True):
        r, c = max(r, drift.EPS), max(c, drift.EPS)
        total += (c - r) * math.log(c / r)
    return total


def test_psi_two_bins_by_hand():
    # Reference median 2.5: bins (-inf, 2.5) and [2.5, inf); shares 2/4, 2/4 vs 3/4, 1/4.
    ref, cur = [1.0, 2.0, 3.0, 4.0], [1.0, 1.0, 1.0, 4.0]
    expected = (0.75 - 0.5) * math.log(0.75 / 0.5) + (0.25 - 0.5) * math.log(0.25 / 0.5)
    assert expected == pytest.approx(0.25 * math.log(3))
    assert drift.psi(np.array(ref), np.array(cur), bins=2)[0] == pytest.approx(expected)


def test_psi_four_bins_by_hand():
    # Quartile edges of 1..8 (linear interpolation): 2.75, 4.5, 6.25 -> reference shares 1/4 each.
    ref = np.arange(1.0, 9.0)
    cur = np.array([1.0, 1.0, 1.0, 1.0, 3.0, 5.0, 7.0, 8.0])  # 4, 1, 1, 2 per bin
    expected = _psi_by_hand([0.25] * 4, [0.5, 0.125, 0.125, 0.25])
    assert expected == pytest.approx(0.5 * math.log(2))
    assert drift.psi(ref, cur, bins=4)[0] == pytest.approx(expected)


def test_psi_empty_bins_are_clipped():
    ref = np.arange(1.0, 9.0)
    cur = np.array([1.0, 1.0, 2.0, 2.0])  # all in the first bin
    expected = _psi_by_hand([0.25] * 4, [1.0, 0.0, 0.0, 0.0])
    assert math.isfinite(expected)
    assert drift.psi(ref, cur, bins=4)[0] == pytest.approx(expected)


def test_psi_per_column():
    ref = np.column_stack([np.arange(1.0, 5.0), np.arange(1.0, 5.0)])
    cur = np.column_stack([[1.0, 1.0, 1.0, 4.0], [1.0, 2.0, 3.0, 4.0]])
    out = drift.psi(ref, cur, bins=2)
    assert out.shape == (2,)
    assert out[0] == pytest.approx(0.25 * math.log(3))
    assert out[1] == pytest.approx(0.0)


def test_psi_zero_for_identical_samples():
    x = np.random.default_rng(1).normal(size=(500, 4))
    assert np.allclose(drift.psi(x, x), 0.0)


def test_psi_large_for_shifted_samples():
    rng = np.random.default_rng(2)
    ref = rng.normal(size=(1000, 2))
    same = rng.normal(size=(1000, 2))
    shifted = rng.normal(size=(1000, 2)) + 2.0
    assert np.all(drift.psi(ref, same) < 0.1)
    assert np.all(drift.psi(ref, shifted) > 1.0)


# --------------------------------------------------------------------------------------------- drift: categorical


def test_categorical_matches_scipy():
    ref = ["a"] * 50 + ["b"] * 30 + ["c"] * 20
    cur = ["a"] * 20 + ["b"] * 30 + ["c"] * 40 + ["d"] * 10
    js, chi2, p = drift.categorical(ref, cur)
    r, c = np.array([50, 30, 20, 0.0]), np.array([20, 30, 40, 10.0])
    assert js == pytest.approx(jensenshannon(r, c, base=2))
    assert js == pytest.approx(jensenshannon(r / r.sum(), c / c.sum(), base=2))
    expected = stats.chi2_contingency(np.vstack([r, c]))
    assert chi2 == pytest.approx(expected.statistic)
    assert p == pytest.approx(expected.pvalue)


def test_categorical_identical_and_mixed_types():
    js, chi2, p = drift.categorical([1, 2, 2, "x"], ["1", "2", "2", "x"])  # compared as strings
    assert js == pytest.approx(0.0, abs=1e-7)
    assert chi2 == pytest.approx(0.0)
    assert p == pytest.approx(1.0)


def test_categorical_single_category_and_empty():
    assert drift.categorical(["a", "a"], ["a"]) == (0.0, 0.0, 1.0)
    js, _, p = drift.categorical(["a"], [])
    assert js == 0.0 and p == 1.0


# --------------------------------------------------------------------------------------------- drift_report


def _same_population(n: int = 500):
    # generate(rows) draws its population with make_classification(n_samples=rows), so only tables of the same
    # size come from the same distribution: take the current window as a part of a same-size table.
    return sampledata.generate(1000, seed=0), sampledata.generate(1000, seed=1)[:n]


def test_drift_report_flags_shifted_feature_only():
    reference, current = _same_population()
    for r in current:
        r["f0"] = r["f0"] + 3.0
    report = drift.drift_report(reference, current, Monitoring(), label="label")
    by_name = {f.feature: f for f in report.features}
    assert set(by_name) == {"f0", "f1", "f2", "f3", "f4", "f5", "segment"}
    assert report.drifted
    assert by_name["f0"].drifted and by_name["f0"].kind == "numeric"
    assert by_name["f0"].psi > 0.2 and by_name["f0"].ks_pvalue < 0.01
    for name in ("f1", "f2", "f3", "f4", "f5"):
        assert not by_name[name].drifted, by_name[name]
        assert by_name[name].psi < 0.2
    assert by_name["segment"].kind == "categorical" and not by_name["segment"].drifted
    features = report.features_dict()
    assert features["f0"]["drifted"] is True and "feature" not in features["f0"]


def test_drift_report_no_drift_on_same_distribution():
    reference, current = _same_population()
    report = drift.drift_report(reference, current, Monitoring(), label="label")
    assert not report.drifted


def test_drift_report_prediction_column_is_categorical():
    reference = [{"x": float(i % 10), drift.PREDICTION: i % 2, "__meta": "skip"} for i in range(200)]
    current = [{"x": float(i % 10), drift.PREDICTION: 1, "__meta": "skip"} for i in range(200)]
    report = drift.drift_report(reference, current, Monitoring())
    by_name = {f.feature: f for f in report.features}
    assert set(by_name) == {"x", drift.PREDICTION}
    assert by_name[drift.PREDICTION].kind == "categorical"
    assert by_name[drift.PREDICTION].drifted
    assert not by_name["x"].drifted


def test_drift_report_empty():
    assert drift.drift_report([], [{"a": 1}], Monitoring()).features == []
    assert not drift.drift_report([{"a": 1}], [], Monitoring()).drifted
