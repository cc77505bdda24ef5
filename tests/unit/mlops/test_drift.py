"""mlops.drift: statistics equal scipy's and hand-computed values; verdicts need effect and significance."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon

from mlops import drift
from mlops.drift import EPS, PREDICTION, DriftThresholds, categorical, drift_report, ks_2samp, psi
from mlops.policy import Monitoring


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20240501)


# --------------------------------------------------------------------------------------------- KS


@pytest.mark.parametrize(("n1", "n2", "decimals"), [
    (40, 60, None),         # exact p-value
    (500, 300, 1),          # exact, many ties
    (12_000, 15_000, None),  # asymptotic p-value
    (20_000, 11_000, 1),     # asymptotic, many ties
    (7, 7, 0),               # tiny and tied: scipy falls back from exact to asymp
])
@pytest.mark.filterwarnings("ignore:ks_2samp. Exact calculation unsuccessful:RuntimeWarning")
def test_ks_equals_scipy_column_by_column(rng, n1, n2, decimals) -> None:
    ref, cur = rng.normal(size=(n1, 3)), rng.normal(0.05, 1.1, size=(n2, 3))
    if decimals is not None:
        ref, cur = np.round(ref, decimals), np.round(cur, decimals)
    d, p = ks_2samp(ref, cur)
    for j in range(3):
        expected = stats.ks_2samp(ref[:, j], cur[:, j])
        assert d[j] == expected.statistic
        assert p[j] == expected.pvalue


def test_ks_takes_one_dimensional_samples_and_drops_nan(rng) -> None:
    ref, cur = rng.normal(size=300), rng.normal(0.5, 1, size=200)
    d, p = ks_2samp(np.append(ref, [np.nan, np.nan]), np.append(cur, np.nan))
    expected = stats.ks_2samp(ref, cur)
    assert (d.shape, d[0], p[0]) == ((1,), expected.statistic, expected.pvalue)


# --------------------------------------------------------------------------------------------- PSI


def test_psi_with_two_bins_by_hand() -> None:
    # median of 1..4 is 2.5: the reference is 1/2 | 1/2, the current 3/4 | 1/4
    expected = (0.75 - 0.5) * math.log(0.75 / 0.5) + (0.25 - 0.5) * math.log(0.25 / 0.5)
    assert psi([1, 2, 3, 4], [1, 1, 1, 4], bins=2)[0] == pytest.approx(expected, rel=1e-12)


def test_psi_with_four_bins_and_an_empty_bin_by_hand() -> None:
    # quartile edges of 1..8 are 2.75, 4.5, 6.25: each reference bin holds 1/4;
    # the current holds 1/4, 1/2, nothing (-> EPS), 1/4
    expected = (0.5 - 0.25) * math.log(0.5 / 0.25) + (EPS - 0.25) * math.log(EPS / 0.25)
    assert psi(np.arange(1, 9), [1, 2, 3, 3, 3, 3, 8, 8], bins=4)[0] == pytest.approx(expected, rel=1e-12)


def test_psi_puts_a_value_on_an_edge_in_the_upper_bin() -> None:
    # edge 2.5; the current's 2.5 joins [2.5, inf): shares 1/4 | 3/4
    expected = (0.25 - 0.5) * math.log(0.25 / 0.5) + (0.75 - 0.5) * math.log(0.75 / 0.5)
    assert psi([1, 2, 3, 4], [1, 2.5, 3, 4], bins=2)[0] == pytest.approx(expected, rel=1e-12)


def test_psi_is_zero_for_identical_samples_and_per_column_for_2d(rng) -> None:
    a = rng.normal(size=(1000, 2))
    b = a.copy()
    b[:, 1] += 1.0
    values = psi(a, b)
    assert values[0] == 0.0
    assert values[1] > 0.5


def test_psi_of_a_constant_reference_uses_one_edge() -> None:
    # every reference value sits on the single edge 5: 0 | 1; the current 1/2 | 1/2
    expected = (0.5 - EPS) * math.log(0.5 / EPS) + (0.5 - 1) * math.log(0.5 / 1)
    assert psi([5, 5, 5, 5], [4, 4, 5, 6])[0] == pytest.approx(expected, rel=1e-12)


# --------------------------------------------------------------------------------------------- large samples


def _large_samples(kind: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Samples that go through the bucketed path, including the shapes that make buckets uneven."""
    n1, n2 = 60_000, 45_000
    if kind == "normal shifted":
        return rng.normal(size=n1), rng.normal(0.03, 1.0, size=n2)
    if kind == "identical distribution":
        return rng.normal(size=n1), rng.normal(size=n2)
    if kind == "rounded, many ties":
        return np.round(rng.normal(size=n1), 1), np.round(rng.normal(0.1, 1.2, size=n2), 1)
    if kind == "integers":
        return rng.integers(0, 5, size=n1).astype(float), rng.integers(0, 6, size=n2).astype(float)
    if kind == "half zeros":
        r, c = rng.normal(size=n1), rng.normal(0.2, 1.0, size=n2)
        r[: n1 // 2] = 0.0
        c[: n2 // 3] = 0.0
        return r, c
    if kind == "heavy tail with outliers":
        r, c = rng.lognormal(0, 2, size=n1), rng.lognormal(0.1, 2, size=n2)
        r[:3] = [1e12, -1e9, 5e11]
        return r, c
    if kind == "disjoint ranges":
        return rng.uniform(0, 1, size=n1), rng.uniform(2, 3, size=n2)
    if kind == "a few reference values":
        return rng.normal(size=5), rng.normal(size=n2)
    if kind == "values on the decile edges":
        r = np.repeat(np.arange(10.0), n1 // 10)
        return r, np.concatenate([r[: n2 // 2], rng.uniform(0, 9, size=n2 - n2 // 2)])
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["normal shifted", "identical distribution", "rounded, many ties", "integers",
                                  "half zeros", "heavy tail with outliers", "disjoint ranges",
                                  "a few reference values", "values on the decile edges"])
def test_large_samples_give_the_same_psi_and_ks_as_sorting_them(rng, kind) -> None:
    ref, cur = _large_samples(kind, rng)
    assert len(ref) + len(cur) >= drift._BUCKETED_MIN_N  # the bucketed path, not the sorted one
    fast = drift._psi_and_ks_bucketed(ref, cur, 10)
    assert fast is not None
    r, c = np.sort(ref), np.sort(cur)
    assert fast == (drift._psi_sorted(r, c, 10), drift._ks_statistic_sorted(r, c))  # to the last bit
    assert fast[1] == stats.ks_2samp(ref, cur, method="asymp").statistic


@pytest.mark.parametrize("bins", [2, 4, 10, 20])
def test_large_sample_deciles_equal_numpy_quantile(rng, bins) -> None:
    ref = np.round(rng.normal(size=50_001), 3)
    r = np.sort(ref)
    edges = drift._decile_edges(bins)
    virtual = (len(r) - 1) * edges
    prev = np.floor(virtual).astype(np.intp)
    ours = drift._lerp(r[prev], r[np.minimum(prev + 1, len(r) - 1)], virtual - prev)
    assert np.array_equal(ours, np.quantile(r, edges))


def test_samples_with_one_value_in_all_are_compared_by_sorting() -> None:
    same = np.full(30_000, 2.5)
    assert drift._psi_and_ks_bucketed(same, same, 10) is None  # no scale to cut
    assert psi(same, same)[0] == 0.0
    assert ks_2samp(same, same)[0][0] == 0.0


# --------------------------------------------------------------------------------------------- categorical


def test_categorical_statistics_equal_scipy(rng) -> None:
    ref = rng.choice(["a", "b", "c"], p=[0.5, 0.3, 0.2], size=400)
    cur = rng.choice(["a", "b", "c", "d"], p=[0.3, 0.3, 0.3, 0.1], size=300)
    result = categorical(ref, cur)
    table = np.array([[np.sum(ref == k) for k in "abcd"], [np.sum(cur == k) for k in "abcd"]])
    chi2 = stats.chi2_contingency(table)
    assert result.chi2_statistic == pytest.approx(chi2.statistic, rel=1e-12)
    assert result.chi2_pvalue == pytest.approx(chi2.pvalue, rel=1e-12)
    assert result.js_distance == pytest.approx(jensenshannon(table[0] / 400, table[1] / 300, base=2), rel=1e-12)


def test_categorical_compares_values_as_strings_and_skips_nulls() -> None:
    same = categorical([1, "1", None, 2.0, float("nan")], ["1", 1, "2.0"])
    assert (same.js_distance, same.chi2_pvalue) == (0.0, 1.0)


def test_categorical_with_one_category_or_no_values_is_no_drift() -> None:
    assert categorical(["a", "a"], ["a"]).chi2_pvalue == 1.0
    assert categorical([], ["a"]).js_distance == 0.0


# --------------------------------------------------------------------------------------------- drift_report


def _data(rng: np.random.Generator, n: int, shift: float) -> dict[str, np.ndarray]:
    return {"stable": rng.normal(size=n), "moved": rng.normal(shift, 1, size=n),
            "segment": rng.choice(["a", "b"], p=[0.5 + shift / 4, 0.5 - shift / 4], size=n)}


def test_report_flags_only_the_features_that_moved(rng) -> None:
    report = drift_report(_data(rng, 3000, 0.0), _data(rng, 2000, 1.0), DriftThresholds())
    assert report.drifted
    assert {f.feature: f.drifted for f in report.features} == {"stable": False, "moved": True, "segment": True}
    moved = report.feature("moved")
    assert (moved.kind, moved.statistic, moved.value, moved.threshold) == ("numeric", "psi", moved.psi, 0.2)
    assert moved.ks_pvalue is not None and moved.ks_pvalue < 1e-10
    assert report.feature("segment").kind == "categorical"


def test_same_distribution_does_not_drift(rng) -> None:
    report = drift_report(_data(rng, 3000, 0.0), _data(rng, 3000, 0.0), DriftThresholds())
    assert not report.drifted


def test_a_large_psi_without_significance_is_not_drift() -> None:
    # 10 rows each: PSI is large by chance of binning, KS cannot call it significant
    ref, cur = {"x": np.arange(10.0)}, {"x": np.array([0, 0, 1, 1, 2, 2, 3, 9, 9, 9.0])}
    f = drift_report(ref, cur, DriftThresholds()).feature("x")
    assert f.psi is not None and f.psi > 0.2
    assert f.ks_pvalue is not None and f.ks_pvalue > 0.01
    assert not f.drifted


def test_a_tiny_significant_shift_is_not_drift(rng) -> None:
    n = 200_000
    f = drift_report({"x": rng.normal(size=n)}, {"x": rng.normal(0.03, 1, size=n)}, DriftThresholds()).feature("x")
    assert f.ks_pvalue is not None and f.ks_pvalue < 1e-6
    assert not f.drifted


def test_a_2d_array_with_names_gives_the_same_report_as_a_dict(rng) -> None:
    ref, cur = rng.normal(size=(500, 2)), rng.normal(0.8, 1, size=(400, 2))
    by_array = drift_report(ref, cur, DriftThresholds(), names=["a", "b"])
    by_dict = drift_report({"a": ref[:, 0], "b": ref[:, 1]}, {"a": cur[:, 0], "b": cur[:, 1]}, DriftThresholds())
    assert by_array == by_dict


def test_a_2d_array_needs_one_name_per_column(rng) -> None:
    with pytest.raises(ValueError, match="one name per column"):
        drift_report(rng.normal(size=(5, 2)), rng.normal(size=(5, 2)), DriftThresholds(), names=["a"])


def test_rows_from_the_request_log_work_with_the_policy_thresholds(rng) -> None:
    ref = [{"f0": float(x), "seg": "ab"[i % 2], PREDICTION: i % 2, "label": 1, "__deployment__": "d"}
           for i, x in enumerate(rng.normal(size=400))]
    cur = [{"f0": float(x) + 2, "seg": "a", PREDICTION: 0} for x in rng.normal(size=300)]
    cur[0]["f0"] = None  # a null in the log is left out, not a failure
    report = drift_report(ref, cur, Monitoring(), label="label")
    assert [f.feature for f in report.features] == ["f0", "seg", PREDICTION]
    assert report.feature(PREDICTION).kind == "categorical"
    assert report.feature("f0").n_current == 299
    assert all(f.drifted for f in report.features)


def test_thresholds_come_from_the_policy_monitoring_section(rng) -> None:
    ref, cur = {"x": rng.normal(size=2000)}, {"x": rng.normal(0.35, 1, size=2000)}
    loose = drift_report(ref, cur, Monitoring(psi_threshold=5.0))
    strict = drift_report(ref, cur, Monitoring(psi_threshold=0.01))
    assert (loose.drifted, strict.drifted) == (False, True)
    assert DriftThresholds.of(Monitoring(categorical_js_threshold=0.3)).categorical_js == 0.3


def test_declared_categorical_features_are_compared_as_categories(rng) -> None:
    codes = {"zip": rng.integers(0, 5, size=500)}
    report = drift_report(codes, codes, DriftThresholds(), categorical_features={"zip"})
    assert report.feature("zip").kind == "categorical"


def test_a_feature_missing_from_current_data_is_not_compared(rng) -> None:
    report = drift_report({"a": rng.normal(size=50), "b": rng.normal(size=50)}, {"a": rng.normal(size=50)},
                          DriftThresholds())
    assert [f.feature for f in report.features] == ["a"]


def test_a_feature_with_no_values_gets_a_note_and_no_verdict() -> None:
    report = drift_report({"a": np.array([np.nan, np.nan])}, {"a": np.array([1.0, 2.0])}, DriftThresholds())
    f = report.feature("a")
    assert (f.drifted, f.value, f.note) == (False, None, "no values to compare")


def test_empty_inputs_give_an_empty_report() -> None:
    report = drift_report([], [{"a": 1}], DriftThresholds())
    assert (report.features, report.drifted) == ((), False)


def test_features_dict_is_the_drift_event_shape(rng) -> None:
    report = drift_report({"x": rng.normal(size=300)}, {"x": rng.normal(2, 1, size=300)}, DriftThresholds())
    features = report.to_dict()["features"]
    assert set(features["x"]) >= {"statistic", "value", "threshold", "drifted", "ks_pvalue"}
    assert features["x"]["statistic"] == "psi" and features["x"]["drifted"] is True
