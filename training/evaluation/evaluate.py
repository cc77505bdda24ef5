"""The evaluation job: candidate and champion scored on the same held-out rows, and the drift baseline.

``mlflow.models.evaluate`` computes the metrics of the ``--model_type`` (``classifier``: accuracy_score,
f1_score, roc_auc, log_loss, ...; ``regressor``: root_mean_squared_error, mean_absolute_error, r2_score,
...), each model in a nested run of this job's run, with MLflow's plots as artifacts. The scores go to
``<evaluation>/scores.json``; the baseline (a bounded sample of the training part's features with the
candidate's predictions) is logged beside the candidate's model, where the monitor reads it.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import tempfile
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd

NULLS = ["", "na", "n/a", "nan", "null", "none"]  # what the control plane's validation counts as null
NA_VALUES = sorted({s for v in NULLS for s in (v, v.upper(), v.title())})


def read(path: str) -> pd.DataFrame:
    """A split part as the training job read it."""
    return pd.read_csv(path, na_values=NA_VALUES, keep_default_na=True, skipinitialspace=True)


def score(model: Any, heldout: pd.DataFrame, label: str, model_type: str, name: str) -> dict[str, float]:
    """MLflow's metrics for one model (a loaded pyfunc), in a nested run named after it."""
    with mlflow.start_run(run_name=name, nested=True):
        result = mlflow.models.evaluate(model, data=heldout, targets=label, model_type=model_type,
                                        evaluator_config={"log_model_explainability": False})
    return {k: float(v) for k, v in result.metrics.items()
            if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)}


def baseline(model: Any, train: pd.DataFrame, label: str, rows: int) -> list[dict[str, Any]]:
    """Sample training rows (features only) with the candidate's prediction under ``__prediction__``."""
    sample = train.drop(columns=[label]).sample(min(len(train), rows), random_state=0)
    predictions = model.predict(sample)
    out = sample.copy()
    out["__prediction__"] = list(predictions.iloc[:, 0] if hasattr(predictions, "iloc") and predictions.ndim == 2
                                 else predictions)
    return list(json.loads(out.to_json(orient="records")))


def main() -> None:
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    parser = argparse.ArgumentParser()
    for arg in ("heldout", "train", "label", "model_type", "candidate", "candidate_run", "champion", "evaluation"):
        parser.add_argument(f"--{arg}", required=True)
    parser.add_argument("--baseline_rows", type=int, default=5000)
    args = parser.parse_args()
    heldout, train = read(args.heldout), read(args.train)
    candidate = mlflow.pyfunc.load_model(args.candidate)  # loaded once: scored, then it predicts the baseline
    with mlflow.start_run():  # the job's run (MLFLOW_RUN_ID); each model in a nested run of it
        scores = {"candidate": score(candidate, heldout, args.label, args.model_type, "candidate")}
        if args.champion != "none":
            champion = mlflow.pyfunc.load_model(args.champion)
            scores["champion"] = score(champion, heldout, args.label, args.model_type, "champion")
        mlflow.log_metrics({f"{who}_{k}": v for who, metrics in scores.items() for k, v in metrics.items()})
    out = Path(args.evaluation)
    out.mkdir(parents=True, exist_ok=True)
    (out / "scores.json").write_text(json.dumps(scores, indent=2))
    if args.candidate_run != "none" and args.baseline_rows > 0:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "baseline.json"
            path.write_text(json.dumps(baseline(candidate, train, args.label, args.baseline_rows)))
            mlflow.tracking.MlflowClient().log_artifact(args.candidate_run, str(path))
    print("scores:", json.dumps(scores))


if __name__ == "__main__":
    main()
