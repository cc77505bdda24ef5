"""training.split.read_csv: every value validation counts as null, the training job reads as NaN."""

from __future__ import annotations

from mlops.gates import NULL_VALUES, validate_data
from mlops.policy import DataChecks
from training.split import read_csv


def test_every_null_validation_allows_is_nan_for_the_training_job() -> None:
    spellings = sorted({s for v in NULL_VALUES for s in (v, v.upper(), v.title(), f" {v}")})
    content = ("x,label\n" + "".join(f"{s},{i % 2}\n" for i, s in enumerate(spellings)) + "1.5,0\n").encode()
    report = validate_data(DataChecks(min_rows=1, max_null_fraction=1), "label", content)
    assert report.null_fraction["x"] == round(len(spellings) / (len(spellings) + 1), 4)
    frame = read_csv(content)
    assert frame["x"].isna().sum() == len(spellings)
    assert frame["x"].dtype.kind == "f"  # still a number column, not text
