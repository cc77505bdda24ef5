"""Drift statistics, vectorised with numpy/scipy: no statistic loops over rows in Python.

Numeric features
  * PSI, the Population Stability Index: bins at the reference's quantiles (deciles by default),
    ``sum((c - r) * ln(c / r))`` over bin shares, with an empty bin's share raised to ``EPS``.
  * The two-sample Kolmogorov-Smirnov test, equal to ``scipy.stats.ks_2samp`` (statistic and
    two-sided p-value, method ``auto``); the p-values of all columns come from one vectorised call.

Small samples are sorted, and the sorted samples serve both PSI and KS. Large ones (20,000
values or more) are not sorted: equal-width bucket counts give both empirical CDFs exactly at
every bucket end, and only the few buckets that could hold the KS maximum or a decile are sorted
(``_psi_and_ks_bucketed``). The results are the same to the last bit; the tests check that.

Categorical features (strings, booleans, and the predictions ``__prediction__``)
  * the Jensen-Shannon distance (base 2, in [0, 1]) of the category shares;
  * the chi-squared test of homogeneity (``scipy.stats.chi2_contingency``) on the 2 x k counts.

Verdict: a statistic alone is not drift. With thousands of rows KS and chi-squared call the
smallest harmless shift significant, and with a few dozen rows PSI and JS are noise. So a
feature drifts when the effect is material *and* significant: PSI above ``psi`` and KS
p-value below ``ks_pvalue`` (numeric), JS distance above ``categorical_js`` and chi-squared
p-value below ``ks_pvalue`` (categorical; the one significance level serves both tests).
"""

from __future__ import annotations

import warnings
from collections.abc import Collection, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal, Protocol

import numpy as np
from scipy import stats
from scipy.spatial.distance import jensenshannon

EPS = 1e-4  # share given to an empty bin, so that ln(c / r) stays finite
PREDICTION = "__prediction__"
_NONE = np.array(None, dtype=object)  # compared elementwise with object columns
_KS_EXACT_MAX_N = 10_000  # scipy's ks_2samp method="auto" is exact up to this sample size, asymptotic above

Columns = Mapping[str, Any] | np.ndarray | Sequence[Mapping[str, Any]]


class _MonitoringThresholds(Protocol):
    psi_threshold: float
    ks_pvalue_threshold: float
    categorical_js_threshold: float


@dataclass(frozen=True)
class DriftThresholds:
    """When a feature counts as drifted (defaults as in the policy's ``monitoring``)."""

    psi: float = 0.2
    ks_pvalue: float = 0.01
    categorical_js: float = 0.1

    @classmethod
    def of(cls, source: DriftThresholds | _MonitoringThresholds) -> DriftThresholds:
        """From a policy's ``monitoring`` section (or thresholds already)."""
        if isinstance(source, DriftThresholds):
            return source
        return cls(source.psi_threshold, source.ks_pvalue_threshold, source.categorical_js_threshold)


# --------------------------------------------------------------------------------------------- statistics


def _finite(x: Any) -> np.ndarray:
    """The sample as a contiguous float array, without NaN and infinities."""
    a = np.ascontiguousarray(np.asarray(x, dtype=float).ravel())
    return a if np.isfinite(a).all() else a[np.isfinite(a)]


def _psi_from_counts(below_ref: np.ndarray, n_ref: int, below_cur: np.ndarray, n_cur: int) -> float:
    # below_*: how many values lie under each edge; values in [e_i, e_i+1) share a bin
    r = np.diff(below_ref, prepend=0, append=n_ref) / n_ref
    c = np.diff(below_cur, prepend=0, append=n_cur) / n_cur
    r, c = np.where(r > 0, r, EPS), np.where(c > 0, c, EPS)
    return float(np.sum((c - r) * np.log(c / r)))


def _decile_edges(bins: int) -> np.ndarray:
    return np.linspace(0, 1, bins + 1)[1:-1]


def _psi_sorted(ref: np.ndarray, cur: np.ndarray, bins: int) -> float:
    edges = np.unique(np.quantile(ref, _decile_edges(bins)))
    return _psi_from_counts(np.searchsorted(ref, edges, side="left"), len(ref),
                            np.searchsorted(cur, edges, side="left"), len(cur))


def _ks_statistic_sorted(ref: np.ndarray, cur: np.ndarray) -> float:
    # The sup of F_ref - F_cur is reached just after a reference point and its inf just after a
    # current point, so two searches suffice. Within a run of ties, (i + 1) / n undercounts
    # every element but the last, which carries the right value, so the maximum is exact.
    n1, n2 = len(ref), len(cur)
    above = np.arange(1, n1 + 1) / n1 - np.searchsorted(cur, ref, side="right") / n2
    below = np.arange(1, n2 + 1) / n2 - np.searchsorted(ref, cur, side="right") / n1
    return float(max(np.clip(below.max(), 0, 1), above.max()))


def _lerp(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    """numpy.quantile's interpolation (method "linear"), to the last bit."""
    diff = b - a
    out = np.asarray(a + diff * t, dtype=float)
    np.subtract(b, diff * (1 - t), out=out, where=t >= 0.5)
    return out


_BUCKETS = 8192  # equal-width buckets of the bucketed comparison
_BUCKETED_MIN_N = 20_000  # below this many values in all, sorting both samples is as quick


def _psi_and_ks_bucketed(ref: np.ndarray, cur: np.ndarray, bins: int) -> tuple[float, float] | None:
    """PSI and the KS statistic of two unsorted samples, equal to the sorted computation, without sorting them.

    Both samples are cut into equal-width buckets on a shared scale. The cut is monotone
    (x < y never puts y in a lower bucket), so the bucket counts give both empirical CDFs
    exactly at every bucket end. Inside a bucket |F_ref - F_cur| can grow by at most the bucket's
    own shares, so only the few buckets that could beat the best bucket-end value, and those
    holding the deciles, are sorted and searched. Returns None when the scale is unusable (all
    values equal, or a range that overflows); the caller then sorts.
    """
    n1, n2 = len(ref), len(cur)
    lo, hi = min(ref.min(), cur.min()), max(ref.max(), cur.max())
    width = hi - lo
    if not (np.isfinite(width) and width > 0):
        return None
    scale = _BUCKETS / width

    def bucket(x: np.ndarray) -> np.ndarray:
        return np.minimum(((x - lo) * scale).astype(np.intp), _BUCKETS - 1)

    b1, b2 = bucket(ref), bucket(cur)
    h1, h2 = np.bincount(b1, minlength=_BUCKETS), np.bincount(b2, minlength=_BUCKETS)
    c1, c2 = np.cumsum(h1), np.cumsum(h2)
    ends = c1 / n1 - c2 / n2  # F_ref - F_cur after each bucket: exact
    starts = np.concatenate([[0.0], ends[:-1]])
    best = float(np.abs(ends).max())
    reach = np.maximum(starts + h1 / n1, h2 / n2 - starts)  # the most |F_ref - F_cur| can be inside
    chosen = np.zeros(_BUCKETS, dtype=bool)
    chosen[reach > best] = True
    # the reference's order statistics that numpy.quantile interpolates between, and every bucket
    # from one to the next (the edge lies there, and so may current values)
    virtual = (n1 - 1) * _decile_edges(bins)
    prev = np.floor(virtual).astype(np.intp)
    nxt = np.minimum(prev + 1, n1 - 1)
    lo_b, hi_b = np.searchsorted(c1, prev, side="right"), np.searchsorted(c1, nxt, side="right")
    for first, last in zip(lo_b, hi_b, strict=True):
        chosen[first:last + 1] = True
    # the chosen values, sorted; off[b] turns a rank among them into a rank in the whole sample
    s1, s2 = np.sort(ref[chosen[b1]]), np.sort(cur[chosen[b2]])
    off1 = (c1 - h1) - (np.cumsum(np.where(chosen, h1, 0)) - np.where(chosen, h1, 0))
    off2 = (c2 - h2) - (np.cumsum(np.where(chosen, h2, 0)) - np.where(chosen, h2, 0))
    # KS: the sorted computation, on the chosen values only, with their ranks in the whole samples
    d = best
    if len(s1):
        k1 = bucket(s1)
        above = (off1[k1] + np.arange(1, len(s1) + 1)) / n1 - (off2[k1] + np.searchsorted(s2, s1, "right")) / n2
        d = max(d, float(above.max()))
    if len(s2):
        k2 = bucket(s2)
        below = (off2[k2] + np.arange(1, len(s2) + 1)) / n2 - (off1[k2] + np.searchsorted(s1, s2, "right")) / n1
        d = max(d, float(below.max()))
    # PSI: the deciles from their order statistics, and the counts under each edge
    edges = np.unique(_lerp(s1[prev - off1[lo_b]], s1[nxt - off1[hi_b]], virtual - prev))
    ke = bucket(edges)
    under1 = off1[ke] + np.searchsorted(s1, edges, side="left")
    under2 = off2[ke] + np.searchsorted(s2, edges, side="left")
    return _psi_from_counts(under1, n1, under2, n2), float(np.clip(d, 0, 1))


def _psi_and_ks(ref: np.ndarray, cur: np.ndarray, bins: int) -> tuple[float, float]:
    """PSI and the KS statistic of two finite, non-empty, unsorted samples."""
    if len(ref) + len(cur) >= _BUCKETED_MIN_N:
        result = _psi_and_ks_bucketed(ref, cur, bins)
        if result is not None:
            return result
    r, c = np.sort(ref), np.sort(cur)
    return _psi_sorted(r, c, bins), _ks_statistic_sorted(r, c)


def _ks_asymptotic_pvalues(d: np.ndarray, n1: np.ndarray, n2: np.ndarray) -> np.ndarray:
    # scipy's two-sided asymptotic p-value: kstwo.sf(D, round(n1 * n2 / (n1 + n2)))
    en = np.round(n1 * n2 / (n1 + n2))
    return np.asarray(np.clip(stats.kstwo.sf(d, en), 0, 1), dtype=float)


def psi(reference: Any, current: Any, bins: int = 10) -> np.ndarray:
    """PSI per column of 1-D or 2-D (rows x features) arrays; bins at the reference's quantiles.

    A value on an edge belongs to the upper bin; NaN and infinite values are left out.
    """
    ref, cur = _as_2d(reference), _as_2d(current)
    return np.array([_psi_and_ks(_finite(ref[:, j]), _finite(cur[:, j]), bins)[0] for j in range(ref.shape[1])])


def ks_2samp(reference: Any, current: Any) -> tuple[np.ndarray, np.ndarray]:
    """Two-sample KS statistic and two-sided p-value per column, equal to ``scipy.stats.ks_2samp``.

    NaN and infinite values are left out first (they are missing values in a request log).
    """
    ref, cur = _as_2d(reference), _as_2d(current)
    _, d, p = _numeric_columns([(_finite(ref[:, j]), _finite(cur[:, j])) for j in range(ref.shape[1])], 10)
    return d, p


def _numeric_columns(pairs: Sequence[tuple[np.ndarray, np.ndarray]],
                     bins: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """PSI, KS statistic and KS p-value of each (reference, current) pair of finite, non-empty samples."""
    both = [_psi_and_ks(r, c, bins) for r, c in pairs]
    psis = np.array([v for v, _ in both], dtype=float)
    d = np.array([v for _, v in both], dtype=float)
    n1 = np.array([len(r) for r, _ in pairs], dtype=float)
    n2 = np.array([len(c) for _, c in pairs], dtype=float)
    p = _ks_asymptotic_pvalues(d, n1, n2) if len(pairs) else np.empty(0)
    for j, (r, c) in enumerate(pairs):
        if max(len(r), len(c)) <= _KS_EXACT_MAX_N:
            # small samples: scipy's exact distribution (cheap at this size), as method="auto" does;
            # it also snaps D to its grid of multiples of 1 / lcm(n1, n2), so take both from it
            with warnings.catch_warnings():
                # where the exact computation fails scipy falls back to asymp, as auto means; no news
                warnings.filterwarnings("ignore", "ks_2samp: Exact calculation unsuccessful", RuntimeWarning)
                exact = stats.ks_2samp(r, c)
            d[j], p[j] = float(exact.statistic), float(exact.pvalue)
    return psis, d, p


def _as_2d(x: Any) -> np.ndarray:
    a = np.asarray(x, dtype=float)
    return a[:, None] if a.ndim == 1 else a


@dataclass(frozen=True)
class CategoricalDrift:
    """Jensen-Shannon distance (base 2) and chi-squared test of two categorical samples."""

    js_distance: float
    chi2_statistic: float
    chi2_pvalue: float


def categorical(reference: Any, current: Any) -> CategoricalDrift:
    """Compare two samples of categories (compared as strings; None/NaN are left out)."""
    ref, cur = _categories(reference), _categories(current)
    if not len(ref) or not len(cur):
        return CategoricalDrift(0.0, 0.0, 1.0)
    _, codes = np.unique(np.concatenate([ref, cur]), return_inverse=True)
    k = int(codes.max()) + 1
    table = np.vstack([np.bincount(codes[: len(ref)], minlength=k),
                       np.bincount(codes[len(ref):], minlength=k)]).astype(float)
    js = float(jensenshannon(table[0] / table[0].sum(), table[1] / table[1].sum(), base=2))
    if k < 2:
        return CategoricalDrift(js, 0.0, 1.0)  # one category on both sides: nothing can differ
    chi2 = stats.chi2_contingency(table)
    return CategoricalDrift(js, float(chi2.statistic), float(chi2.pvalue))


def _categories(x: Any) -> np.ndarray:
    """The sample as strings, without None and NaN."""
    a = np.asarray(x).ravel()
    if a.dtype.kind == "O":
        # elementwise in C: None is left out, and NaN, the one value not equal to itself
        a = a[np.not_equal(a, _NONE) & np.equal(a, a)]
    elif a.dtype.kind == "f":
        a = a[~np.isnan(a)]
    return a.astype(str)


# --------------------------------------------------------------------------------------------- the report


@dataclass(frozen=True)
class FeatureDrift:
    """Drift of one feature: its verdict, the statistic that decided it, and every figure computed."""

    feature: str
    kind: Literal["numeric", "categorical"]
    drifted: bool
    statistic: Literal["psi", "js"]
    value: float | None
    threshold: float
    n_reference: int
    n_current: int
    psi: float | None = None
    ks_statistic: float | None = None
    ks_pvalue: float | None = None
    js_distance: float | None = None
    chi2_statistic: float | None = None
    chi2_pvalue: float | None = None
    note: str = ""


@dataclass(frozen=True)
class DriftReport:
    """Per-feature results and the overall verdict."""

    features: tuple[FeatureDrift, ...]

    @property
    def drifted(self) -> bool:
        """True when any feature (or the predictions) drifted."""
        return any(f.drifted for f in self.features)

    def feature(self, name: str) -> FeatureDrift:
        """The result of one feature; KeyError if it was not compared."""
        for f in self.features:
            if f.feature == name:
                return f
        raise KeyError(name)

    def features_dict(self) -> dict[str, dict[str, Any]]:
        """Feature -> {statistic, value, threshold, drifted, ...}: the ``features`` of the app's drift event."""
        return {f.feature: {k: v for k, v in asdict(f).items() if k != "feature" and v not in (None, "")}
                for f in self.features}

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict."""
        return {"drifted": self.drifted, "features": self.features_dict()}


def _columns(data: Columns, names: Sequence[str] | None, exclude: Collection[str]) -> dict[str, np.ndarray]:
    """Any accepted input as name -> 1-D array."""
    if isinstance(data, np.ndarray):
        a = data[:, None] if data.ndim == 1 else data
        if names is None or len(names) != a.shape[1]:
            raise ValueError(f"a 2-D array needs one name per column: {a.shape[1]} columns, names {names}")
        return {n: a[:, j] for j, n in enumerate(names) if n not in exclude}
    if isinstance(data, Mapping):
        return {str(n): np.asarray(v) for n, v in data.items() if n not in exclude}
    rows = list(data)
    if not rows:
        return {}
    keys = [k for k in (names or rows[0]) if k not in exclude and (k == PREDICTION or not str(k).startswith("__"))]
    return {k: np.array([r.get(k) for r in rows], dtype=object) for k in keys}


def _numeric(a: np.ndarray) -> np.ndarray | None:
    """The column as floats (None -> NaN), or None if it holds categories (strings, booleans)."""
    if a.dtype.kind in "iuf":
        return a.astype(float, copy=False)
    if a.dtype.kind != "O":
        return None
    present = a[np.not_equal(a, _NONE)]
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in present[:1000]):
        return None
    try:
        return np.where(np.equal(a, _NONE), np.nan, a).astype(float)
    except (TypeError, ValueError):
        return None  # a category further down the column


def drift_report(reference: Columns, current: Columns, thresholds: DriftThresholds | _MonitoringThresholds,
                 *, names: Sequence[str] | None = None, categorical_features: Collection[str] = (),
                 label: str | None = None, bins: int = 10) -> DriftReport:
    """Compare current data with the reference, feature by feature.

    ``reference``/``current``: name -> 1-D array, a 2-D array (rows x features) with ``names``,
    or a list of row dicts (the columns are the first reference row's keys, without ``label``
    and ``__``-prefixed keys other than ``__prediction__``). Features in ``categorical_features``,
    ``__prediction__``, strings and booleans are categorical; other numbers are numeric.
    """
    limits = DriftThresholds.of(thresholds)
    exclude = {label} if label else set()
    ref_cols = _columns(reference, names, exclude)
    # rows of current data are read by the reference's columns, so a key missing in a row is a null
    rows = not isinstance(current, np.ndarray | Mapping)
    cur_cols = _columns(current, list(ref_cols) if rows else names, exclude)
    results: dict[str, FeatureDrift] = {}
    numeric: list[tuple[str, np.ndarray, np.ndarray]] = []
    for name, ref in ref_cols.items():
        cur = cur_cols.get(name)
        if cur is None:
            continue  # the current data does not have it: nothing to compare
        r_num = None if name == PREDICTION or name in categorical_features else _numeric(ref)
        c_num = None if r_num is None else _numeric(cur)
        if r_num is not None and c_num is not None:
            numeric.append((name, _finite(r_num), _finite(c_num)))
        else:
            results[name] = _categorical_feature(name, ref, cur, limits)
    results.update(_numeric_features(numeric, limits, bins))
    return DriftReport(tuple(results[n] for n in ref_cols if n in results))


def _numeric_features(columns: list[tuple[str, np.ndarray, np.ndarray]], limits: DriftThresholds,
                      bins: int) -> dict[str, FeatureDrift]:
    out: dict[str, FeatureDrift] = {}
    usable = [(n, r, c) for n, r, c in columns if len(r) and len(c)]
    for name, r, c in columns:
        if not (len(r) and len(c)):
            out[name] = FeatureDrift(name, "numeric", False, "psi", None, limits.psi, len(r), len(c),
                                     note="no values to compare")
    values, d, p = _numeric_columns([(r, c) for _, r, c in usable], bins)
    for j, (name, r, c) in enumerate(usable):
        value = float(values[j])
        drifted = value > limits.psi and p[j] < limits.ks_pvalue
        out[name] = FeatureDrift(name, "numeric", bool(drifted), "psi", value, limits.psi, len(r), len(c), psi=value,
                                 ks_statistic=float(d[j]), ks_pvalue=float(p[j]))
    return out


def _categorical_feature(name: str, ref: np.ndarray, cur: np.ndarray, limits: DriftThresholds) -> FeatureDrift:
    result = categorical(ref, cur)
    drifted = result.js_distance > limits.categorical_js and result.chi2_pvalue < limits.ks_pvalue
    return FeatureDrift(name, "categorical", bool(drifted), "js", result.js_distance, limits.categorical_js,
                        len(_categories(ref)), len(_categories(cur)), js_distance=result.js_distance,
                        chi2_statistic=result.chi2_statistic, chi2_pvalue=result.chi2_pvalue)
