"""Ground truth: label files under ``feedback/<model>/`` in the landing container, and their join to predictions.

A label file is a CSV with a ``request_id`` column and the policy's label column (other columns are ignored).
The request id is the one the scoring endpoint answered with (``x-request-id``; Azure ML's data collector keeps
it as ``correlationid``). A request that scored several rows has one prediction per row: its rows are named
``<request id>#<row>`` (0-based), as ``Platform.predictions_by_id`` keys them.

A file is read whole when its BlobCreated event arrives (``triggers.events``): one that does not fit (not UTF-8
text, no header, a column missing, an empty id or a label of the wrong type) is refused with the first reason,
and none of its labels are kept. The labels of a file that fits go to the feedback store; the monitor joins the
labels that arrived in its window to the champion's predictions (``mlops.monitoring.check_performance``).
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, get_args

from ._json import Json
from .errors import FeedbackError
from .policy import FEEDBACK_FOLDER, Policy, is_model_name

REQUEST_ID_COLUMN = "request_id"
ROW_MARK = "#"  # "<request id>#<row>": a row of a multi-row request (the gateway never puts "#" in an id)
MAX_LABELS_PER_FILE = 200_000  # a bound on what one event reads into memory
UNMATCHED_SHOWN = 5  # unmatched ids named in a figure, to look up
# the ids the gateway hands out or accepts (letters, digits, ._:-, up to 128), and a row suffix
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}(#[0-9]{1,6})?$")
_TRUE, _FALSE = frozenset({"true", "1", "yes"}), frozenset({"false", "0", "no"})
FigureSeries = Literal["performance", "drift"]  # the monitor's figures over time, one series of each per model
FIGURE_SERIES: tuple[FigureSeries, ...] = get_args(FigureSeries)
FIGURE_DAYS = 30  # days of each series kept (the labels are kept as long: adapters.feedback_store)


def feedback_model(blob_name: str) -> str | None:
    """The model a landed blob is ground truth for (``feedback/<model>/<file>``): "" when the path names no valid
    model, None when the blob is not under ``feedback/`` at all."""
    head, _, rest = blob_name.partition("/")
    if head != FEEDBACK_FOLDER:
        return None
    model, slash, name = rest.partition("/")
    return model if slash and name and is_model_name(model) else ""


@dataclass(frozen=True)
class LabelBatch(Json):
    """The labels of one feedback file, as the store keeps them."""

    model: str
    source: str  # the blob's name in the landing container
    url: str
    etag: str
    received_at: str
    labels: dict[str, Any] = field(default_factory=dict)  # request id (or "<id>#<row>") -> label


def label_kind(policy: Policy) -> str:
    """How a label is read: the label column's declared type, else a float for a regressor, a class (kept as
    text) for a classifier."""
    declared = policy.data.required_columns.get(policy.label)
    if declared:
        return declared
    return "float" if policy.evaluation.model_type == "regressor" else "str"


def parse_labels(raw: bytes, label: str, kind: str, source: str = "") -> dict[str, Any]:
    """Request id -> label from a feedback file's bytes; FeedbackError with the first reason it does not fit.

    A later row with the same id replaces an earlier one (a corrected label)."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise FeedbackError("file", f"not UTF-8 text (byte {exc.start}): a feedback file is a CSV", source) from exc
    if "\x00" in text:
        raise FeedbackError("file", "holds NUL bytes: not a CSV", source)
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)  # an unclosed quote is an error, not data
    try:
        header = next(reader, None)
        if not header:
            raise FeedbackError("header", f"missing: the first line must name the columns ({REQUEST_ID_COLUMN}, "
                                          f"{label})", source)
        columns = [c.strip() for c in header]
        missing = [c for c in (REQUEST_ID_COLUMN, label) if c not in columns]
        if missing:
            raise FeedbackError("columns", f"missing {', '.join(missing)} (found {', '.join(columns)})", source)
        at_id, at_label = columns.index(REQUEST_ID_COLUMN), columns.index(label)
        labels: dict[str, Any] = {}
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue  # a blank line
            line = f"line {reader.line_num}"
            if len(row) != len(columns):
                raise FeedbackError(line, f"{len(row)} fields, the header names {len(columns)}", source)
            rid = row[at_id].strip()
            if not _REQUEST_ID.match(rid):
                raise FeedbackError(f"{line}.{REQUEST_ID_COLUMN}", f"{rid!r} is not a request id (letters, digits, "
                                                                   "._:-, up to 128; '#<row>' for a row)", source)
            labels[rid] = _label(row[at_label].strip(), kind, f"{line}.{label}", source)
            if len(labels) > MAX_LABELS_PER_FILE:
                raise FeedbackError("rows", f"more than {MAX_LABELS_PER_FILE} labels: split the file", source)
    except csv.Error as exc:
        raise FeedbackError(f"line {reader.line_num}", f"not CSV: {exc}", source) from exc
    if not labels:
        raise FeedbackError("rows", "no labels (only a header)", source)
    return labels


def _label(text: str, kind: str, where: str, source: str) -> Any:
    """One label cell as its kind; FeedbackError naming the line and column otherwise."""
    if not text:
        raise FeedbackError(where, "empty: every row needs a label", source)
    try:
        if kind == "int":
            value = float(text)
            if not value.is_integer():
                raise ValueError(text)
            return int(value)
        if kind == "float":
            number = float(text)
            if not math.isfinite(number):
                raise ValueError(text)
            return number
    except ValueError:
        raise FeedbackError(where, f"{text!r} is not {'an integer' if kind == 'int' else 'a finite number'}",
                            source) from None
    if kind == "bool":
        if text.lower() in _TRUE | _FALSE:
            return text.lower() in _TRUE
        raise FeedbackError(where, f"{text!r} is not a boolean (true/false, 1/0, yes/no)", source)
    return text


@dataclass(frozen=True)
class Joined:
    """Labels joined to predictions by request id: the (label, prediction) pairs, and what found no prediction."""

    labels: tuple[Any, ...]
    predictions: tuple[Any, ...]
    unmatched: int
    unmatched_ids: tuple[str, ...] = ()  # the first few, sorted, to look up

    @property
    def matched(self) -> int:
        """How many labels found their prediction."""
        return len(self.labels)


def join(labels: Mapping[str, Any], predictions: Mapping[str, Any]) -> Joined:
    """Each label with the prediction of its request id; ids with no prediction are counted, never an error.

    A label named by a bare id also finds the one row of a single-row request logged as ``<id>#0``."""
    matched_labels: list[Any] = []
    matched_predictions: list[Any] = []
    unmatched: list[str] = []
    for rid, label in labels.items():
        key = rid if rid in predictions else f"{rid}{ROW_MARK}0" if f"{rid}{ROW_MARK}0" in predictions else None
        if key is None:
            unmatched.append(rid)
            continue
        matched_labels.append(label)
        matched_predictions.append(predictions[key])
    return Joined(tuple(matched_labels), tuple(matched_predictions), len(unmatched),
                  tuple(sorted(unmatched)[:UNMATCHED_SHOWN]))


def keyed_by_row(request_id: str, row: int, rows: int) -> str:
    """The key of one prediction: the request id, or ``<id>#<row>`` when the request scored several rows."""
    return request_id if rows == 1 else f"{request_id}{ROW_MARK}{row}"


class FeedbackStore(Protocol):
    """Where accepted labels, refused files and the monitor's performance figures are kept."""

    def record_labels(self, batch: LabelBatch) -> bool:
        """Keep a file's labels; False when that version of the file was recorded before (a redelivery)."""
        ...

    def record_refusal(self, model: str, source: str, url: str, etag: str, reason: str, at: str) -> None:
        """Note that a feedback file was refused, and why (no label of it is kept)."""
        ...

    def labels(self, model: str, since: str, until: str) -> dict[str, Any]:
        """Labels of the files received in [since, until], later files winning for the same id."""
        ...

    def files(self, model: str, limit: int = 20) -> list[dict[str, Any]]:
        """The newest feedback files with their outcome (labels kept, or the reason refused), newest first."""
        ...

    def record_figure(self, model: str, figure: dict[str, Any], series: FigureSeries = "performance") -> None:
        """Append one monitor tick's figure (with its ``at``) to a series (``performance`` on ground truth, or
        ``drift``); the store keeps the last ``FIGURE_DAYS`` days of each."""
        ...

    def figures(self, model: str, limit: int = 100, series: FigureSeries = "performance") -> list[dict[str, Any]]:
        """A series' newest figures, oldest first (a metric, or each feature's drift, over time)."""
        ...
