"""A small, real tabular dataset for offline runs, with knobs that make it worse.

A binary "credit risk"-like table from scikit-learn's ``make_classification``: numeric
columns f0..f5, one categorical column ``segment`` (a/b/c) and the label ``label`` (0/1).
Deterministic by seed.

Knobs: ``label_noise`` flips that fraction of labels (a worse model), ``schema_break``
drops a required column, ``drift`` shifts the numeric features (for scoring traffic).
"""

from __future__ import annotations

import csv
import functools
import io
from typing import Any

import numpy as np
from sklearn.datasets import make_classification

FEATURES = [f"f{i}" for i in range(6)]
POPULATION = 20_000
LABEL = "label"


@functools.cache
def _population() -> tuple[np.ndarray, np.ndarray]:
    x, y = make_classification(n_samples=POPULATION, n_features=6, n_informative=4, n_redundant=1, class_sep=2.0,
                               flip_y=0.01, random_state=1234)
    return x, y


def generate(rows: int = 1000, seed: int = 0, label_noise: float = 0.0, drift: float = 0.0,
             schema_break: bool = False) -> list[dict[str, Any]]:
    """Rows as dicts; the same seed gives the same data."""
    # One fixed population, sampled by seed: tables of any size come from the same distribution.
    x, y = _population()
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(x), size=rows, replace=False) if rows <= len(x) else rng.integers(0, len(x), rows)
    x, y = x[idx] + rng.normal(0, 0.05, size=x[idx].shape), y[idx].copy()
    x = x + drift
    if label_noise:
        flip = rng.random(rows) < label_noise
        y[flip] = 1 - y[flip]
    segments = np.where(x[:, 0] > 0.5, "a", np.where(x[:, 1] > 0, "b", "c"))
    out = []
    for i in range(rows):
        row: dict[str, Any] = {name: round(float(x[i, j]), 5) for j, name in enumerate(FEATURES)}
        row["segment"] = str(segments[i])
        row[LABEL] = int(y[i])
        if schema_break:
            row.pop("f3")
        out.append(row)
    return out


def to_csv_bytes(rows: list[dict[str, Any]]) -> bytes:
    """CSV with a header."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue().encode()


def scoring_rows(n: int, seed: int = 1, drift: float = 0.0) -> list[dict[str, Any]]:
    """Feature rows (no label) for live scoring traffic."""
    return [{k: v for k, v in r.items() if k != LABEL} for r in generate(n, seed=seed, drift=drift)]
