"""The one split of a retrain's landed data: a training part for the user's job, a held-out part for evaluation.

Deterministic (the seed and the rows decide it), stratified by the label when every label value has two rows
or more (a classifier's classes; a regression target has mostly unique values and is split at random), and
made once per run by the control plane, so candidate and champion are scored on the same rows whatever the
training code does. Standard library only: in Azure it runs in the Function App, which ships no pandas.
The rows are written back as the csv module reads them, so a value is never reinterpreted.
"""

from __future__ import annotations

import csv
import hashlib
import io
import random
from collections import defaultdict
from dataclasses import dataclass

_MAX_STRATA = 1000  # more distinct label values than this: a regression target, split at random


@dataclass(frozen=True)
class Split:
    """The two parts as CSV bytes (same header), and what lineage records about them."""

    train: bytes
    heldout: bytes
    rows: int
    heldout_rows: int
    seed: int
    stratified: bool

    @property
    def heldout_sha256(self) -> str:
        """The held-out part's hash: the rows candidate and champion were scored on."""
        return hashlib.sha256(self.heldout).hexdigest()

    def lineage(self) -> dict[str, str]:
        """Tags for the registered version."""
        return {"split_seed": str(self.seed), "heldout_sha256": self.heldout_sha256,
                "heldout_rows": str(self.heldout_rows), "train_rows": str(self.rows - self.heldout_rows)}


def split_csv(content: bytes, label: str, test_fraction: float, seed: int) -> Split:
    """Split a validated CSV file; ValueError when it has no ``label`` column or too few rows to split."""
    reader = csv.reader(io.StringIO(content.decode("utf-8-sig"), newline=""))
    header = next(reader, None)
    if header is None or label not in [h.strip() for h in header]:
        raise ValueError(f"label column {label!r} is missing")
    at = [h.strip() for h in header].index(label)
    records = [r for r in reader if r]
    if len(records) < 2:
        raise ValueError(f"{len(records)} rows: at least 2 are needed to hold some out")
    strata: dict[str, list[int]] = defaultdict(list)
    for i, record in enumerate(records):
        strata[record[at].strip() if at < len(record) else ""].append(i)
    rng = random.Random(seed)
    stratified = len(strata) <= _MAX_STRATA and min(len(v) for v in strata.values()) >= 2
    held: list[int] = []
    groups = [strata[k] for k in sorted(strata)] if stratified else [list(range(len(records)))]
    for rows in groups:
        rows = rows[:]
        rng.shuffle(rows)
        n = max(1, round(len(rows) * test_fraction))
        held += rows[:min(n, len(rows) - 1)]
    chosen = set(held)
    return Split(_csv(header, [r for i, r in enumerate(records) if i not in chosen]),
                 _csv(header, [r for i, r in enumerate(records) if i in chosen]),
                 len(records), len(chosen), seed, stratified)


def _csv(header: list[str], rows: list[list[str]]) -> bytes:
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue().encode("utf-8")
