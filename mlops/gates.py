"""Pure decisions of the retrain run: is the landed data usable, and does the candidate pass the gates.

Data validation streams the file through the standard library's csv reader: it runs in the
Function App in Azure, where pandas would add tens of megabytes and seconds of cold start for
what is a single pass of counting. Gates follow ``mlflow.models.MetricThreshold`` (any metric, with its
direction); the Function App applies them without importing MLflow, and a unit test checks that the
verdicts agree with ``mlflow.validate_evaluation_results``. A gate on a metric the evaluation skipped, with its
reason (a chat model's judge metric when no judge model is configured), is neither passed nor failed: its verdict
says ``skipped`` with that reason, and it does not fail the run.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from ._json import Json
from .policy import DataChecks, Gates, MetricGate

NULL_VALUES = frozenset({"", "na", "n/a", "nan", "null", "none"})  # any case; the training job reads them as NaN
_BOOLS = frozenset({"true", "false", "0", "1"})  # what pandas and the training job read as booleans
_MAX_LABEL_CLASSES = 1000  # stop counting classes past this: it is a regression target, or an id


# --------------------------------------------------------------------------------------------- data


@dataclass(frozen=True)
class DataReport(Json):
    """The verdict on a landed file; ``problems`` says what is wrong, in words."""

    passed: bool
    rows: int
    columns: list[str]
    null_fraction: dict[str, float]
    problems: list[str] = field(default_factory=list)


def _fits(value: str, kind: str) -> bool:
    if kind == "bool":
        return value.lower() in _BOOLS
    try:
        if kind == "int":
            int(value)
        elif kind == "float":
            return math.isfinite(float(value))
    except ValueError:
        return False
    return True


@dataclass
class _Column:
    kind: str | None
    nulls: int = 0
    bad: int = 0
    first_bad: str = ""


def validate_chat_data(checks: DataChecks, content: bytes) -> DataReport:
    """A chat model's landed JSONL against its format rules (mlops.chatdata), as a data report: ``rows`` are the
    examples. Tokens and PII are the data check job's, which needs the base model's tokenizer."""
    from .chatdata import check_chat_data

    found = check_chat_data(content, checks.min_rows)
    return DataReport(found.passed, found.examples, ["messages"], {}, list(found.problems))


def validate_data(checks: DataChecks, label: str, content: bytes) -> DataReport:
    """Check the header, column types, row count, null fractions and the label column of a CSV file."""
    try:
        text = content.decode("utf-8-sig")  # Excel writes a byte-order mark
    except UnicodeDecodeError as exc:
        return DataReport(False, 0, [], {}, [f"not UTF-8 text: {exc}"])
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        return DataReport(False, 0, [], {}, ["empty file: no header row"])
    except csv.Error as exc:
        return DataReport(False, 0, [], {}, [f"not CSV: {exc}"])
    wanted = dict(checks.required_columns)
    problems = _header_problems(header, wanted, label)
    scan = _Scan(header, wanted, label)
    try:
        scan.read(reader)
    except csv.Error as exc:
        problems.append(f"not CSV at row {scan.rows + 1}: {exc}")
    if scan.ragged:
        problems.append(f"{scan.ragged} rows do not have {len(header)} fields")
    if scan.rows < checks.min_rows:
        problems.append(f"{scan.rows} rows, at least {checks.min_rows} required")
    nulls = scan.null_fractions()
    problems += _column_problems(scan, nulls, label, checks.max_null_fraction)
    return DataReport(not problems, scan.rows, header, nulls, problems)


def _header_problems(header: list[str], wanted: Mapping[str, str], label: str) -> list[str]:
    problems = []
    duplicates = sorted({h for h in header if header.count(h) > 1})
    if duplicates:
        problems.append(f"duplicate columns: {', '.join(duplicates)}")
    if label not in header:
        problems.append(f"label column {label!r} is missing")
    others = [c for c in wanted if c not in header and c != label]
    if others:
        problems.append(f"missing columns: {', '.join(others)}")
    return problems


class _Scan:
    """One pass over the rows: counts of rows, ragged rows, nulls and bad values per column, label classes."""

    def __init__(self, header: list[str], wanted: Mapping[str, str], label: str) -> None:
        self.header = header
        self.columns = [_Column(wanted.get(h)) for h in header]
        self.label_at = header.index(label) if label in header else -1
        self.classes: set[str] = set()
        self.rows = self.ragged = 0

    def read(self, reader: Any) -> None:
        """Count every record of ``reader`` (a csv.reader past the header)."""
        for record in reader:
            if not record:
                continue  # a blank line, e.g. at the end
            self.rows += 1
            if len(record) != len(self.header):
                self.ragged += 1
                continue
            for raw, col in zip(record, self.columns, strict=True):
                value = raw.strip()
                if value.lower() in NULL_VALUES:
                    col.nulls += 1
                elif col.kind and col.kind != "str" and not _fits(value, col.kind):
                    col.bad += 1
                    col.first_bad = col.first_bad or value
            if self.label_at >= 0 and len(self.classes) <= _MAX_LABEL_CLASSES:
                self.classes.add(record[self.label_at].strip())

    @property
    def good_rows(self) -> int:
        """Rows with as many fields as the header."""
        return self.rows - self.ragged

    def null_fractions(self) -> dict[str, float]:
        """Column -> its share of null values among the good rows."""
        good = self.good_rows
        return {name: round(col.nulls / good, 4) if good else 0.0
                for name, col in zip(self.header, self.columns, strict=True)}


def _column_problems(scan: _Scan, nulls: dict[str, float], label: str, max_null_fraction: float) -> list[str]:
    problems = []
    for name, col in zip(scan.header, scan.columns, strict=True):
        if name == label and col.nulls:
            problems.append(f"label column {label!r} has {col.nulls} empty values")
        elif nulls[name] > max_null_fraction:
            problems.append(f"column {name!r} is {nulls[name]:.1%} null, at most {max_null_fraction:.1%} allowed")
        if col.bad:
            problems.append(f"column {name!r} must be {col.kind}: {col.bad} values are not (e.g. {col.first_bad!r})")
    known = scan.classes - {v for v in scan.classes if v.lower() in NULL_VALUES}
    if scan.label_at >= 0 and scan.good_rows and len(known) < 2:
        problems.append(f"label column {label!r} has a single class ({', '.join(sorted(known)) or 'none'}): "
                        "nothing to learn")
    return problems


# --------------------------------------------------------------------------------------------- gates


GateName = Literal["threshold", "no_regression", "min_absolute_change", "min_relative_change"]


@dataclass(frozen=True)
class GateVerdict:
    """One gate check with its numbers and a sentence that has all of them.

    ``threshold`` is the bound the candidate's value was held to (absent when it could not be computed);
    ``greater_is_better`` says which side of it passes. A ``skipped`` check was not made, because the evaluation
    skipped its metric (``reason`` says why): it has not passed, and it does not fail the report.
    """

    name: GateName
    passed: bool
    metric: str
    value: float | None
    threshold: float | None
    champion_value: float | None = None
    reason: str = ""
    greater_is_better: bool = True
    skipped: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict."""
        return asdict(self)


@dataclass(frozen=True)
class GateReport:
    """All gate verdicts; passed only if every one passed or was skipped."""

    verdicts: tuple[GateVerdict, ...]

    @property
    def passed(self) -> bool:
        """True when every gate passed or was skipped (none failed)."""
        return not self.failed

    @property
    def failed(self) -> list[GateVerdict]:
        """The verdicts that failed."""
        return [v for v in self.verdicts if not v.passed and not v.skipped]

    @property
    def skipped(self) -> list[GateVerdict]:
        """The verdicts on a metric the evaluation skipped, with its reason."""
        return [v for v in self.verdicts if v.skipped]

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict: the overall verdict and each check."""
        return {"passed": self.passed, "verdicts": [v.to_dict() for v in self.verdicts]}


def _measured(metrics: dict[str, float] | None, metric: str) -> float | None:
    value = (metrics or {}).get(metric)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None  # NaN (e.g. roc_auc on a one-class split) is as good as not measured
    return float(value)


def _better_or_equal(value: float, bound: float, higher: bool) -> bool:
    return value >= bound if higher else value <= bound


def _threshold(gate: MetricGate, value: float | None) -> GateVerdict:
    metric, bound, higher = gate.name, float(gate.threshold or 0.0), gate.higher_is_better
    side = ">=" if higher else "<="
    if value is None:
        return GateVerdict("threshold", False, metric, None, bound, reason=f"{metric} was not measured "
                           f"(must be {side} {bound:g})", greater_is_better=higher)
    ok = _better_or_equal(value, bound, higher)
    reason = (f"{metric} {value:.4g} {side} {bound:g}" if ok else
              f"{metric} {value:.4g} is {'below' if higher else 'above'} the threshold {bound:g}")
    return GateVerdict("threshold", ok, metric, value, bound, reason=reason, greater_is_better=higher)


def _against_champion(gate: MetricGate, kind: GateName, value: float | None, best: float | None) -> GateVerdict:
    """max_regression (how much worse the candidate may be), or MLflow's min_absolute_change /
    min_relative_change (how much better it must be), against the champion on the same held-out rows."""
    metric, higher = gate.name, gate.higher_is_better
    if value is None:
        return GateVerdict(kind, False, metric, None, None, best, greater_is_better=higher,
                           reason=f"{metric} was not measured, so it cannot be compared with the champion")
    if best is None:
        # The champion predates this metric: there is nothing to compare against.
        return GateVerdict(kind, True, metric, value, None, None, greater_is_better=higher,
                           reason=f"champion has no {metric}: not compared")
    sign = 1.0 if higher else -1.0
    gain = sign * (value - best)  # > 0: the candidate is better
    if kind == "no_regression":
        allowed = float(gate.max_regression or 0.0)
        bound, rule = best - sign * allowed, f"at most {allowed:g} worse allowed"
        ok = _better_or_equal(value, bound, higher)
    elif kind == "min_absolute_change":
        step = float(gate.min_absolute_change or 0.0)
        bound, rule = best + sign * step, f"at least {step:g} better required"
        ok = _better_or_equal(value, bound, higher)
    else:
        share = float(gate.min_relative_change or 0.0)
        bound, rule = best + sign * share * abs(best), f"at least {share:.1%} better required"
        # as MLflow decides it: the gain relative to |champion|, or, for a zero champion, strictly better
        ok = gain / abs(best) >= share if best else gain >= 1e-10
    change = f"{'+' if gain >= 0 else '-'}{abs(gain):.4g} {'better' if gain >= 0 else 'worse'}"
    verb = "within bounds" if ok else ("regressed" if gain < 0 else "did not improve enough")
    reason = (f"{metric} {verb}: {value:.4g} vs champion {best:.4g} ({change}; {rule}, bound {bound:.4g})")
    return GateVerdict(kind, ok, metric, value, bound, best, reason, higher)


def _skipped(gate: MetricGate, kind: GateName, why: str, champion_metrics: dict[str, float] | None) -> GateVerdict:
    """The check ``kind`` of a gate whose metric the evaluation skipped: not made, with the evaluation's reason."""
    bound = float(gate.threshold) if kind == "threshold" and gate.threshold is not None else None
    best = _measured(champion_metrics, gate.name) if kind != "threshold" else None
    return GateVerdict(kind, False, gate.name, None, bound, best, f"{gate.name} skipped: {why}",
                       gate.higher_is_better, skipped=True)


_CHANGES: tuple[tuple[GateName, str], ...] = (
    ("no_regression", "max_regression"), ("min_absolute_change", "min_absolute_change"),
    ("min_relative_change", "min_relative_change"))


def evaluate_gates(gates: Gates, candidate_metrics: dict[str, float],
                   champion_metrics: dict[str, float] | None,
                   skipped: dict[str, str] | None = None) -> GateReport:
    """For each metric: its threshold, then the comparison with the champion (when there is one). A metric the
    candidate has no value for and the evaluation ``skipped`` (metric -> reason) gives skipped checks instead."""
    verdicts = []
    for gate in gates.metrics:
        value = _measured(candidate_metrics, gate.name)
        why = (skipped or {}).get(gate.name) if value is None else None
        if why is not None:
            kinds: list[GateName] = ["threshold"] if gate.threshold is not None else []
            if champion_metrics is not None:
                kinds += [kind for kind, field_name in _CHANGES if getattr(gate, field_name) is not None]
            verdicts += [_skipped(gate, kind, why, champion_metrics) for kind in kinds]
            continue
        if gate.threshold is not None:
            verdicts.append(_threshold(gate, value))
        if champion_metrics is None:
            continue
        best = _measured(champion_metrics, gate.name)
        verdicts += [_against_champion(gate, kind, value, best) for kind, field_name in _CHANGES
                     if getattr(gate, field_name) is not None]
    return GateReport(tuple(verdicts))
