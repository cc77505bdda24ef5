"""Drift statistics: mlops.drift against evidently's data-drift report, on the same data, in one run.

Data: ``--rows`` rows (default 1,000,000) x ``--features`` numeric features (default 20) for the
reference and as many for the current window. Every third feature moves: four drift plainly
(mean shifts, a doubled spread, a new mode), two move a little (+0.01 and +0.1 standard
deviations: significant for KS at this size, immaterial for PSI); the rest do not move.

Both sides compute PSI and the two-sample KS test for every feature with the same thresholds
(PSI 0.2, KS p-value 0.01) and decide per feature as mlops.drift does: drifted when PSI is over
its threshold *and* the KS p-value under its threshold. evidently runs one ``ValueDrift`` metric
per feature and method in one ``Report``. The script prints both timings, the per-feature
verdicts and whether they agree, how close the KS p-values are (both are scipy's test), and as
its last line the speed ratio. Timings exclude data generation and a small untimed warm-up run
of each; evidently's timing includes wrapping the DataFrames in its ``Dataset``.

The PSI values differ by design: mlops.drift bins at the reference's deciles, evidently at
Sturges equal-width bins over both samples; the verdicts are what must agree.

evidently lives in its own virtualenv: evidently 0.7.23 imports
``pandas.core.dtypes.common.infer_dtype_from_object``, which pandas 3 removed, and the project
pins pandas 3.1.1 (requirements-dev.txt). So:

    python3.11 -m venv .venv-bench
    .venv-bench/bin/pip install -r requirements-bench.txt
    .venv-bench/bin/python bench/drift_bench.py [--rows 1000000] [--features 20] [--seed 7]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("DO_NOT_TRACK", "1")  # evidently's usage telemetry: off
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mlops.drift import DriftThresholds, drift_report  # noqa: E402

THRESHOLDS = DriftThresholds(psi=0.2, ks_pvalue=0.01)


def _say(text: str) -> None:
    print(text, flush=True)


# --------------------------------------------------------------------------------------------- data


@dataclass(frozen=True)
class Data:
    """Reference and current samples (rows x features), the names, and how each feature was moved."""

    reference: np.ndarray
    current: np.ndarray
    names: list[str]
    moves: list[str]


def make_data(rows: int, features: int, seed: int) -> Data:
    """Same-distribution features, plus drifted ones of several kinds, plus one hair-thin shift."""
    rng = np.random.default_rng(seed)
    reference = rng.normal(size=(rows, features))
    current = rng.normal(size=(rows, features))
    moves = ["none"] * features
    kinds = ["mean +0.8", "spread x2", "new mode", "mean -0.6", "hair +0.01", "shift +0.1"]
    for j, kind in zip(range(0, features, 3), kinds, strict=False):  # every third feature moves
        col = current[:, j]
        if kind == "mean +0.8":
            col += 0.8
        elif kind == "spread x2":
            col *= 2.0
        elif kind == "new mode":
            pick = rng.random(rows) < 0.3
            col[pick] = rng.normal(3, 0.5, size=int(pick.sum()))
        elif kind == "mean -0.6":
            col -= 0.6
        elif kind == "hair +0.01":
            col += 0.01  # KS calls it significant with a million rows; PSI calls it nothing
        else:
            col += 0.1
        moves[j] = kind
    return Data(reference, current, [f"f{j:02d}" for j in range(features)], moves)


# --------------------------------------------------------------------------------------------- the two sides


def run_mlops(data: Data) -> dict[str, dict[str, Any]]:
    """mlops.drift on the arrays: PSI and KS for every feature."""
    report = drift_report(data.reference, data.current, THRESHOLDS, names=data.names)
    return {f.feature: {"psi": f.psi, "ks_pvalue": f.ks_pvalue, "drifted": f.drifted} for f in report.features}


def run_evidently(reference: Any, current: Any, names: list[str]) -> dict[str, dict[str, Any]]:
    """evidently's Report with a PSI and a KS ValueDrift per feature, the same thresholds and rule."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift

    definition = DataDefinition(numerical_columns=names)
    metrics = [ValueDrift(column=n, method=m, threshold=t) for n in names
               for m, t in (("psi", THRESHOLDS.psi), ("ks", THRESHOLDS.ks_pvalue))]
    snapshot = Report(metrics).run(current_data=Dataset.from_pandas(current, data_definition=definition),
                                   reference_data=Dataset.from_pandas(reference, data_definition=definition))
    out: dict[str, dict[str, Any]] = {n: {} for n in names}
    for metric in snapshot.dict()["metrics"]:
        config = metric["config"]
        out[config["column"]]["psi" if config["method"] == "psi" else "ks_pvalue"] = float(metric["value"])
    for v in out.values():
        # evidently's own rules: PSI drifts at >= threshold, KS when p < threshold
        v["drifted"] = v["psi"] >= THRESHOLDS.psi and v["ks_pvalue"] < THRESHOLDS.ks_pvalue
    return out


# --------------------------------------------------------------------------------------------- main


def main() -> None:
    """Generate, warm up, time both, compare verdicts, print the ratio last."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows per sample (default 1,000,000)")
    parser.add_argument("--features", type=int, default=20, help="numeric features (default 20)")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    try:
        import evidently  # noqa: F401
        import pandas as pd
    except ImportError as exc:
        sys.exit(f"evidently is not importable here ({exc}); see this script's docstring for its virtualenv")

    _say(f"drift bench: {args.rows:,} rows x {args.features} features, reference and current")
    started = time.perf_counter()
    data = make_data(args.rows, args.features, args.seed)
    ref_df = pd.DataFrame(data.reference, columns=data.names)
    cur_df = pd.DataFrame(data.current, columns=data.names)
    _say(f"  data generated in {time.perf_counter() - started:.1f} s")

    warm = min(args.rows, 5000)
    _say(f"  warm-up on {warm:,} rows (untimed)")
    run_mlops(Data(data.reference[:warm], data.current[:warm], data.names, data.moves))
    run_evidently(ref_df.iloc[:warm], cur_df.iloc[:warm], data.names)

    _say("  mlops.drift: PSI + KS ...")
    t0 = time.perf_counter()
    ours = run_mlops(data)
    t_ours = time.perf_counter() - t0
    _say(f"  mlops.drift: {t_ours:.2f} s")

    _say("  evidently: Report of ValueDrift(psi) + ValueDrift(ks) per feature ...")
    t0 = time.perf_counter()
    theirs = run_evidently(ref_df, cur_df, data.names)
    t_theirs = time.perf_counter() - t0
    _say(f"  evidently: {t_theirs:.2f} s")

    _say("")
    _say(f"{'feature':<8}{'moved':<13}{'psi mlops':>10}{'psi evid.':>10}{'ks p mlops':>12}{'ks p evid.':>12}"
         f"{'mlops':>8}{'evid.':>8}  agree")
    agree = 0
    worst_p = 0.0
    for name, move in zip(data.names, data.moves, strict=True):
        a, b = ours[name], theirs[name]
        same = a["drifted"] == b["drifted"]
        agree += same
        worst_p = max(worst_p, abs(a["ks_pvalue"] - b["ks_pvalue"]))
        _say(f"{name:<8}{move:<13}{a['psi']:>10.4f}{b['psi']:>10.4f}{a['ks_pvalue']:>12.3g}{b['ks_pvalue']:>12.3g}"
             f"{'drift' if a['drifted'] else '-':>8}{'drift' if b['drifted'] else '-':>8}  {'yes' if same else 'NO'}")
    _say("")
    _say(f"verdicts agree on {agree}/{len(data.names)} features; largest KS p-value difference {worst_p:.3g}")
    _say(f"timings: mlops.drift {t_ours:.2f} s, evidently {t_theirs:.2f} s ({args.rows:,} rows x {args.features})")
    _say(f"ratio: mlops.drift is {t_theirs / t_ours:.1f}x faster than evidently")


if __name__ == "__main__":
    main()
