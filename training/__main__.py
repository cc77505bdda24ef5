"""``python -m training JOB_DIR``: train the job described by JOB_DIR/request.json.

Writes JOB_DIR/status.json atomically as the job moves (running -> succeeded/failed), logs
params, metrics, lineage tags and the model to MLflow, and stores a baseline sample of the
training data (with predictions) for drift monitoring.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from pathlib import Path
from typing import Any


def _status(job_dir: Path, **fields: Any) -> None:
    path = job_dir / "status.json"
    current = json.loads(path.read_text()) if path.exists() else {}
    current.update(fields)
    tmp = job_dir / "status.tmp"
    tmp.write_text(json.dumps(current))
    tmp.replace(path)


def _pipeline(algorithm: str, params: dict[str, Any], numeric: list[str], categorical: list[str]) -> Any:
    """Impute, scale or one-hot encode, then the estimator: nulls validation allowed are filled the same way
    at scoring time (median of a number, most frequent category), since the imputers are part of the model."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    estimators = {"logistic_regression": LogisticRegression, "random_forest": RandomForestClassifier,
                  "gradient_boosting": GradientBoostingClassifier}
    if algorithm not in estimators:
        raise ValueError(f"unknown algorithm {algorithm!r}; expected one of {sorted(estimators)}")
    prep = ColumnTransformer([
        ("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), numeric),
        ("cat", make_pipeline(SimpleImputer(strategy="most_frequent"), OneHotEncoder(handle_unknown="ignore")),
         categorical)])
    return Pipeline([("prep", prep), ("model", estimators[algorithm](**params))])


def train(job_dir: Path) -> None:
    """Run one job."""
    import mlflow
    import pandas as pd

    from training.split import metrics, read_csv, split

    request = json.loads((job_dir / "request.json").read_text())
    _status(job_dir, state="running", pid=os.getpid())
    frame = read_csv((job_dir / "data.csv").read_bytes())
    label = request["label"]
    if label not in frame.columns:
        raise ValueError(f"label column {label!r} is missing from the data")
    x_train, x_test, y_train, y_test = split(frame, label, request["test_fraction"], request["seed"])
    numeric = [c for c in x_train.columns if pd.api.types.is_numeric_dtype(x_train[c])]
    categorical = [c for c in x_train.columns if c not in numeric]
    pipe = _pipeline(request["algorithm"], request.get("params", {}), numeric, categorical)
    from training.tracking import tracking_lock

    mlflow.set_tracking_uri(request["tracking_uri"])
    with tracking_lock(Path(request["state_dir"])):
        exp = mlflow.get_experiment_by_name(request["model"])
        exp_id = exp.experiment_id if exp else mlflow.create_experiment(request["model"],
                                                                       artifact_location=request["artifact_root"])
    data = request["data"]
    tags = {"data_url": data["url"], "data_etag": data.get("etag", ""), "data_sha256": data.get("sha256", ""),
            "run_id": request.get("run_id", ""), "policy_hash": request.get("policy_hash", ""),
            "code_version": request.get("code_version", ""), "job_id": request["job_id"]}
    with mlflow.start_run(experiment_id=exp_id, run_name=request["job_id"], tags=tags) as run:
        mlflow.log_params({"algorithm": request["algorithm"], **request.get("params", {}),
                           "test_fraction": request["test_fraction"], "seed": request["seed"], "rows": len(frame)})
        pipe.fit(x_train, y_train)
        scores = metrics(pipe, x_test, y_test)
        mlflow.log_metrics(scores)
        model_dir = job_dir / "model"
        from mlflow.models import infer_signature

        # skops refuses types it does not know at load time; the imputers keep the numpy dtype they were fit on
        mlflow.sklearn.save_model(pipe, str(model_dir), signature=infer_signature(x_train, pipe.predict(x_train)),
                                  input_example=x_train.head(3), skops_trusted_types=["numpy.dtype"])
        mlflow.log_artifacts(str(model_dir), "model")
        baseline = x_train.sample(min(len(x_train), 5000), random_state=0).copy()
        baseline["__prediction__"] = pipe.predict(baseline)
        (job_dir / "baseline.json").write_text(baseline.to_json(orient="records"))
        mlflow.log_artifact(str(job_dir / "baseline.json"))
        model_uri = f"{run.info.artifact_uri}/model"
    _status(job_dir, state="succeeded", tracking_run_id=run.info.run_id, model_uri=model_uri, metrics=scores,
            message=f"trained {request['algorithm']} on {len(x_train)} rows")


def main() -> int:
    """Entry point: never leaves the job without a terminal status."""
    job_dir = Path(sys.argv[1])
    try:
        train(job_dir)
    except Exception as exc:  # the job failed: say why in its status, for the orchestration
        _status(job_dir, state="failed", message=f"{type(exc).__name__}: {exc}")
        (job_dir / "job.log").open("a").write(traceback.format_exc())
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
