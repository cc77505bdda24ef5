"""Ground truth in: feedback files parsed (or refused with the reason), and labels joined to predictions by id."""

from __future__ import annotations

import pytest

from mlops.errors import FeedbackError
from mlops.events import landing_blob, parse_blob_created
from mlops.feedback import feedback_model, join, label_kind, parse_labels
from mlops.policy import Policy


def test_a_feedback_file_gives_each_request_id_its_label_and_ignores_other_columns() -> None:
    raw = b"request_id,label,comment\nreq-1,1,late\nreq-2,0,\nreq-3#1,1,second row\n\n"
    assert parse_labels(raw, "label", "int") == {"req-1": 1, "req-2": 0, "req-3#1": 1}


def test_a_corrected_label_later_in_the_file_wins() -> None:
    assert parse_labels(b"label,request_id\nyes,r1\nno,r1\n", "label", "bool") == {"r1": False}


@pytest.mark.parametrize(("raw", "kind", "message"), [
    (b"id,label\nr1,1\n", "int", "columns: missing request_id (found id, label)"),
    (b"request_id,target\nr1,1\n", "int", "columns: missing label (found request_id, target)"),
    (b"request_id,label\nr1,1\nr2,maybe\n", "int", "line 3.label: 'maybe' is not an integer"),
    (b"request_id,label\nr1,1.5\n", "int", "line 2.label: '1.5' is not an integer"),
    (b"request_id,label\nr1,nan\n", "float", "line 2.label: 'nan' is not a finite number"),
    (b"request_id,label\nr1,\n", "str", "line 2.label: empty"),
    (b"request_id,label\nr 1,1\n", "int", "line 2.request_id: 'r 1' is not a request id"),
    (b"request_id,label\nr1,1,extra\n", "int", "line 2: 3 fields, the header names 2"),
    (b"request_id,label\n", "int", "rows: no labels"),
    (b"", "int", "header: missing"),
    (b"\x89PNG\r\n\x1a\n\x00\x00", "int", "file: not UTF-8 text"),
    (b"request_id,label\nr1,\x00\n", "int", "file: holds NUL bytes"),
    (b'request_id,label\nr1,"1\n', "int", "not CSV"),
])
def test_a_malformed_feedback_file_is_refused_with_its_first_reason(raw: bytes, kind: str, message: str) -> None:
    with pytest.raises(FeedbackError, match=message.replace("(", r"\(").replace(")", r"\)")) as err:
        parse_labels(raw, "label", kind, source="feedback/credit/x.csv")
    assert str(err.value).startswith("feedback/credit/x.csv: ")


def test_labels_join_predictions_by_request_id_and_unmatched_ids_are_counted_not_raised() -> None:
    predictions = {"a": 1, "b": 0, "c#0": 1, "c#1": 0, "single#0": 1}
    joined = join({"a": 1, "b": 1, "c#1": 0, "single": 0, "zz": 1, "yy": 0}, predictions)
    assert joined.matched == 4 and joined.unmatched == 2
    assert list(zip(joined.labels, joined.predictions, strict=True)) == [(1, 1), (1, 0), (0, 0), (0, 1)]
    assert joined.unmatched_ids == ("yy", "zz")


def test_nothing_matched_is_an_empty_join() -> None:
    joined = join({"x": 1}, {})
    assert (joined.matched, joined.unmatched, joined.labels) == (0, 1, ())


def test_feedback_blobs_are_told_apart_from_training_data(event_grid, blob_data) -> None:
    assert feedback_model("feedback/credit/2026-01-01.csv") == "credit"
    assert feedback_model("feedback/credit/sub/labels.csv") == "credit"
    assert feedback_model("feedback/Bad_Name/labels.csv") == ""
    assert feedback_model("feedback/labels.csv") == ""
    assert feedback_model("credit/feedback/labels.csv") is None
    subject = "/blobServices/default/containers/landing/blobs/feedback/credit/labels.csv"
    event = parse_blob_created(event_grid("Microsoft.Storage.BlobCreated", blob_data, subject=subject))
    assert event.model == "feedback"
    assert landing_blob(event, "landing") is None  # never training data, so never a retrain


def test_a_label_is_read_as_the_declared_column_type_or_by_model_type() -> None:
    declared = Policy.from_dict({"model": "m", "label": "y", "data": {"required_columns": {"y": "bool"}}})
    regressor = Policy.from_dict({"model": "m", "label": "y", "evaluation": {"model_type": "regressor"},
                                  "gates": {"metrics": [{"name": "mean_absolute_error", "threshold": 3}]}})
    assert label_kind(declared) == "bool"
    assert label_kind(regressor) == "float"
    assert label_kind(Policy.from_dict({"model": "m", "label": "y"})) == "str"
