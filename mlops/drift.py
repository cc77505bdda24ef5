"""Drift statistics, vectorised with numpy/scipy.

Numeric features: Population Stability Index (PSI, decile bins of the reference) and the
two-sample Kolmogorov-Smirnov test. Categorical features and predictions: Jensen-Shannon
distance and the chi-squared test of homogeneity. A feature drifts when PSI is above its
threshold and the KS p-value is below its threshold (numeric), or when the JS distance is
above its threshold (categorical).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import stats
from scipy.spatial.distance import jensenshannon

EPS = 1e-6
PREDICTION = "__prediction__"


def psi(reference: np.ndarray, current: np.ndarray, bins: int = 10) -> np.ndarray:
    """PSI per column of 2-D arrays (rows x features), with quantile bins taken from the reference."""
    ref = np.asarray(reference, dtype=float)
    cur = np.asarray(current, dtype=float)
    if ref.ndim == 1:
        ref, cur = ref[:, None], cur[:, None]
    qs = np.linspace(0, 1, bins + 1)[1:-1]
    edges = np.quantile(ref, qs, axis=0)  # (bins-1) x features
    out = np.empty(ref.shape[1])
    for j in range(ref.shape[1]):
        e = np.unique(edges[:, j])
        r = np.bincount(np.searchsorted(e, ref[:, j], side="right"), minlength=len(e) + 1) / len(ref)
        c = np.bincount(np.searchsorted(e, cur[:, j], side="right"), minlength=len(e) + 1) / len(cur)
        r, c = np.clip(r, EPS, None), np.clip(c, EPS, None)
        out[j] = float(np.sum((c - r) * np.log(c / r)))
    return out


def ks(reference: np.ndarray, current: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two-sample KS statistic and p-value per column (scipy's exact/asymptotic choice)."""
    ref = np.asarray(reference, dtype=float)
    cur = np.asarray(current, dtype=float)
    if ref.ndim == 1:
        ref, cur = ref[:, None], cur[:, None]
    result = stats.ks_2samp(ref, cur, axis=0)
    return np.atleast_1d(result.statistic), np.atleast_1d(result.pvalue)


def categorical(reference: list[Any], current: list[Any]) -> tuple[float, float, float]:
    """(Jensen-Shannon distance base 2, chi-squared statistic, p-value) of two categorical samples."""
    cats = sorted({str(v) for v in reference} | {str(v) for v in current})
    r = np.array([sum(1 for v in reference if str(v) == k) for k in cats], dtype=float)
    c = np.array([sum(1 for v in current if str(v) == k) for k in cats], dtype=float)
    js = float(jensenshannon(r / r.sum(), c / c.sum(), base=2)) if r.sum() and c.sum() else 0.0
    table = np.vstack([r, c])
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2:
        return js, 0.0, 1.0
    chi2, p, _, _ = stats.chi2_contingency(table)
    return js, float(chi2), float(p)


@dataclass(frozen=True)
class FeatureDrift:
    """Drift of one feature."""

    feature: str
    kind: str  # numeric | categorical
    drifted: bool
    psi: float | None = None
    ks_statistic: float | None = None
    ks_pvalue: float | None = None
    js_distance: float | None = None
    chi2_pvalue: float | None = None


@dataclass(frozen=True)
class DriftReport:
    """Per-feature results and the overall verdict."""

    features: list[FeatureDrift]

    @property
    def drifted(self) -> bool:
        """True when any feature (or the predictions) drifted."""
        return any(f.drifted for f in self.features)

    def features_dict(self) -> dict[str, dict[str, Any]]:
        """Feature name -> its numbers (the drift event's ``features``)."""
        return {f.feature: {k: v for k, v in asdict(f).items() if k != "feature"} for f in self.features}


def _is_number(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, (int, float)):
        return True
    try:
        float(value)
        return True
    except (TypeError, ValueError):
        return False


def drift_report(reference: list[dict[str, Any]], current: list[dict[str, Any]], monitoring: Any,
                 label: str | None = None) -> DriftReport:
    """Compare current rows with reference rows, feature by feature (plus ``__prediction__``)."""
    if not reference or not current:
        return DriftReport([])
    names = [k for k in reference[0] if k != label and not (k.startswith("__") and k != PREDICTION)]
    numeric = [n for n in names if n != PREDICTION and all(_is_number(r.get(n)) for r in reference[:200])]
    results: list[FeatureDrift] = []
    if numeric:
        ref = np.array([[float(r[n]) for n in numeric] for r in reference])
        cur = np.array([[float(r.get(n, np.nan)) for n in numeric] for r in current])
        cur = cur[~np.isnan(cur).any(axis=1)]
        if len(cur):
            p = psi(ref, cur)
            stat, pval = ks(ref, cur)
            for j, n in enumerate(numeric):
                drifted = bool(p[j] > monitoring.psi_threshold and pval[j] < monitoring.ks_pvalue_threshold)
                results.append(FeatureDrift(n, "numeric", drifted, psi=float(p[j]), ks_statistic=float(stat[j]),
                                            ks_pvalue=float(pval[j])))
    for n in names:
        if n in numeric:
            continue
        js, _, p_chi = categorical([r.get(n) for r in reference], [r.get(n) for r in current if n in r])
        results.append(FeatureDrift(n, "categorical", js > monitoring.categorical_js_threshold, js_distance=js,
                                    chi2_pvalue=p_chi))
    return DriftReport(results)
