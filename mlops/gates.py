"""Pure decisions of the retrain run: is the data usable, and does the candidate pass the gates.

Data validation uses the standard library's csv reader, so the Function App in Azure does
not need pandas for it.
"""

from __future__ import annotations

import csv
import io
from dataclasses import asdict, dataclass, field
from typing import Any

from .policy import DataChecks, Gates

_NULLS = {"", "na", "nan", "null", "none"}


@dataclass(frozen=True)
class DataReport:
    """The verdict on a landed file."""

    passed: bool
    rows: int
    columns: list[str]
    null_fraction: dict[str, float]
    problems: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict."""
        return asdict(self)


def _fits(value: str, kind: str) -> bool:
    try:
        if kind == "int":
            int(value)
        elif kind == "float":
            float(value)
        elif kind == "bool":
            return value.lower() in ("true", "false", "0", "1")
        return True
    except ValueError:
        return False


def validate_data(checks: DataChecks, label: str, content: bytes) -> DataReport:
    """Check columns and types, row count, null fraction and the label."""
    problems: list[str] = []
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return DataReport(False, 0, [], {}, [f"not UTF-8 text: {exc}"])
    reader = csv.DictReader(io.StringIO(text))
    columns = list(reader.fieldnames or [])
    if not columns:
        return DataReport(False, 0, [], {}, ["no header row"])
    rows = list(reader)
    wanted = dict(checks.required_columns)
    if label not in wanted:
        wanted[label] = "str"
    missing = [c for c in wanted if c not in columns]
    if label in missing:
        problems.append(f"label column {label!r} is missing")
    others = [c for c in missing if c != label]
    if others:
        problems.append(f"missing columns: {', '.join(others)}")
    if len(rows) < checks.min_rows:
        problems.append(f"{len(rows)} rows, at least {checks.min_rows} required")
    nulls: dict[str, float] = {}
    for col in columns:
        values = [(r.get(col) or "").strip() for r in rows]
        empty = sum(1 for v in values if v.lower() in _NULLS)
        nulls[col] = round(empty / len(values), 4) if values else 0.0
        if col == label and empty:
            problems.append(f"label column {label!r} has {empty} empty values")
        elif nulls[col] > checks.max_null_fraction:
            problems.append(f"column {col!r} is {nulls[col]:.1%} null, at most {checks.max_null_fraction:.1%} allowed")
        kind = wanted.get(col)
        if kind and kind != "str":
            bad = [v for v in values if v.lower() not in _NULLS and not _fits(v, kind)]
            if bad:
                problems.append(f"column {col!r} must be {kind}: {len(bad)} values are not (e.g. {bad[0]!r})")
    return DataReport(not problems, len(rows), columns, nulls, problems)


@dataclass(frozen=True)
class GateVerdict:
    """One gate check with its numbers."""

    name: str
    metric: str
    passed: bool
    value: float | None
    threshold: float
    champion_value: float | None = None
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict."""
        return asdict(self)


@dataclass(frozen=True)
class GateReport:
    """All gate verdicts; passed only if every one passed."""

    verdicts: list[GateVerdict]

    @property
    def passed(self) -> bool:
        """True when every gate passed."""
        return all(v.passed for v in self.verdicts)


def evaluate_gates(gates: Gates, candidate: dict[str, float], champion: dict[str, float] | None) -> GateReport:
    """Absolute minimums, then no regression beyond the allowance against the champion (if any)."""
    verdicts: list[GateVerdict] = []
    for metric, minimum in sorted(gates.min_metrics.items()):
        value = candidate.get(metric)
        if value is None:
            verdicts.append(GateVerdict("minimum", metric, False, None, minimum,
                                        reason=f"{metric} was not measured (required minimum {minimum})"))
            continue
        ok = value >= minimum
        verdicts.append(GateVerdict("minimum", metric, ok, value, minimum,
                                    reason=f"{metric} {value:.3f} {'>=' if ok else '<'} minimum {minimum:.3f}"))
    if champion:
        for metric, allowed in sorted(gates.max_regression.items()):
            value, best = candidate.get(metric), champion.get(metric)
            if value is None or best is None:
                continue
            floor = best - allowed
            ok = value >= floor
            drop = best - value
            reason = (f"{metric} {value:.3f} vs champion {best:.3f}: "
                      + (f"within the allowed regression of {allowed:.3f}" if ok else
                         f"regressed by {drop:.3f}, more than the allowed {allowed:.3f} "
                         f"({value:.3f} < {best:.3f} - {allowed:.3f})"))
            verdicts.append(GateVerdict("no_regression", metric, ok, value, floor, best, reason))
    return GateReport(verdicts)
