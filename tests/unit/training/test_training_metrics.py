"""training.split.metrics: every gate metric is measured for binary and multi-class labels alike."""

from __future__ import annotations

import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from training.split import metrics, split


def _frame(classes: int) -> pd.DataFrame:
    rows = [{"x": float(i % classes) + (i % 7) / 10, "y": i % 7, "label": f"c{i % classes}"} for i in range(210)]
    return pd.DataFrame(rows)


@pytest.mark.parametrize("classes", [2, 3])
def test_accuracy_f1_and_roc_auc_are_measured(classes: int) -> None:
    x_train, x_test, y_train, y_test = split(_frame(classes), "label", 0.25, 7)
    scores = metrics(LogisticRegression(max_iter=500).fit(x_train, y_train), x_test, y_test)
    assert set(scores) == {"accuracy_score", "f1_score", "roc_auc"}
    assert all(0 <= v <= 1 for v in scores.values()), scores
    assert scores["roc_auc"] > 0.9  # the classes are separable on x


def test_roc_auc_is_left_out_when_the_held_out_rows_miss_a_class() -> None:
    frame = _frame(3)
    model = LogisticRegression(max_iter=500).fit(frame[["x", "y"]], frame["label"])
    held_out = frame[frame["label"] != "c2"]
    assert set(metrics(model, held_out[["x", "y"]], held_out["label"])) == {"accuracy_score", "f1_score"}
