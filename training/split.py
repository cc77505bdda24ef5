"""The held-out split, shared by training and evaluation so candidate and champion see the same rows."""

from __future__ import annotations

from typing import Any

import pandas as pd
from sklearn.model_selection import train_test_split


def split(frame: pd.DataFrame, label: str, test_fraction: float, seed: int) -> tuple[Any, Any, Any, Any]:
    """(x_train, x_test, y_train, y_test), stratified when every class has two rows or more."""
    y = frame[label]
    x = frame.drop(columns=[label])
    stratify = y if y.value_counts().min() >= 2 else None
    return train_test_split(x, y, test_size=test_fraction, random_state=seed, stratify=stratify)  # type: ignore[no-any-return]


def metrics(model: Any, x: Any, y: Any) -> dict[str, float]:
    """accuracy, macro f1 and (binary) ROC AUC."""
    from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

    predicted = model.predict(x)
    out = {"accuracy": float(accuracy_score(y, predicted)), "f1": float(f1_score(y, predicted, average="macro"))}
    if len(set(y)) == 2 and hasattr(model, "predict_proba"):
        out["roc_auc"] = float(roc_auc_score(y, model.predict_proba(x)[:, 1]))
    return out
