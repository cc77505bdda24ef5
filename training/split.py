"""The data as a job reads it and the held-out split, shared by training and evaluation so candidate and
champion see the same rows and the same nulls."""

from __future__ import annotations

import io
from typing import Any

import pandas as pd
from sklearn.model_selection import train_test_split

# What validation counts as null (mlops.gates.NULL_VALUES, in any case) is read as NaN here, and the
# pipeline imputes it: what validation accepts, training can train on.
_NULLS = ["", "na", "n/a", "nan", "null", "none"]
NA_VALUES = sorted({spelling for v in _NULLS for spelling in (v, v.upper(), v.title())})


def read_csv(content: bytes) -> pd.DataFrame:
    """A landed CSV file as a frame, with validation's null spellings as NaN (surrounding blanks ignored)."""
    return pd.read_csv(io.BytesIO(content), na_values=NA_VALUES, keep_default_na=True, skipinitialspace=True)


def split(frame: pd.DataFrame, label: str, test_fraction: float, seed: int) -> tuple[Any, Any, Any, Any]:
    """(x_train, x_test, y_train, y_test), stratified when every class has two rows or more."""
    y = frame[label]
    x = frame.drop(columns=[label])
    stratify = y if y.value_counts().min() >= 2 else None
    return train_test_split(x, y, test_size=test_fraction, random_state=seed, stratify=stratify)  # type: ignore[no-any-return]


def metrics(model: Any, x: Any, y: Any) -> dict[str, float]:
    """MLflow's names: accuracy_score, macro f1_score and roc_auc (one-vs-rest, macro-averaged, when there are
    more than two classes).

    ROC AUC is left out when the held-out rows do not hold every class the model knows: it is undefined
    for a class with no positive example, and the gate then says it was not measured.
    """
    from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

    predicted = model.predict(x)
    out = {"accuracy_score": float(accuracy_score(y, predicted)),
           "f1_score": float(f1_score(y, predicted, average="macro"))}
    classes = list(getattr(model, "classes_", []))
    if len(classes) >= 2 and set(y) == set(classes) and hasattr(model, "predict_proba"):
        proba = model.predict_proba(x)  # columns in the order of model.classes_
        out["roc_auc"] = float(roc_auc_score(y, proba[:, 1]) if len(classes) == 2
                               else roc_auc_score(y, proba, multi_class="ovr", average="macro", labels=classes))
    return out
