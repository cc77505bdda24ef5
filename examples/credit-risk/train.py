"""Train a scikit-learn pipeline on a CSV file and save it as an MLflow model.

A user's job in the shape the control plane expects (docs/jobs.md): it reads ``--training_data``,
predicts ``--label``, logs its parameters and its own training metrics to the active MLflow run (the
runner, like Azure ML, sets MLFLOW_RUN_ID), and saves the fitted pipeline with its signature into
``--model``. Nulls are imputed inside the pipeline, so scoring treats them as training did.
"""

from __future__ import annotations

import argparse
import json
from importlib.metadata import version

import mlflow
import pandas as pd
from mlflow.models import infer_signature
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

ESTIMATORS = {"logistic_regression": LogisticRegression, "random_forest": RandomForestClassifier,
              "gradient_boosting": GradientBoostingClassifier}
NULLS = ["", "na", "n/a", "nan", "null", "none"]  # what the control plane's validation counts as null
NA_VALUES = sorted({s for v in NULLS for s in (v, v.upper(), v.title())})
# What the saved model needs to load, stated rather than inferred: MLflow infers it by loading the model in a
# subprocess, which took 8 of this job's 13 seconds.
# cloudpickle, not MLflow's default skops: importing skops walks every scikit-learn module (and imports torch when
# it is installed), which cost 4.5 s in every process that saves or loads the model (docs/decisions.md). Whoever
# can write this model can already run code through this job, so a pickle adds no way in.
FORMAT = "cloudpickle"
REQUIREMENTS = [f"{name}=={version(name)}" for name in ("mlflow", "scikit-learn", "cloudpickle", "pandas")]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--training_data", required=True)
    parser.add_argument("--label", required=True)
    parser.add_argument("--algorithm", default="logistic_regression", choices=sorted(ESTIMATORS))
    parser.add_argument("--params", default="{}", help="estimator keyword arguments, as JSON")
    parser.add_argument("--model", required=True, help="folder to save the MLflow model into")
    args = parser.parse_args()

    frame = pd.read_csv(args.training_data, na_values=NA_VALUES, keep_default_na=True, skipinitialspace=True)
    x, y = frame.drop(columns=[args.label]), frame[args.label]
    numeric = [c for c in x.columns if pd.api.types.is_numeric_dtype(x[c])]
    categorical = [c for c in x.columns if c not in numeric]
    prep = ColumnTransformer([
        ("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), numeric),
        ("cat", make_pipeline(SimpleImputer(strategy="most_frequent"), OneHotEncoder(handle_unknown="ignore")),
         categorical)])
    params = json.loads(args.params)
    pipe = Pipeline([("prep", prep), ("model", ESTIMATORS[args.algorithm](**params))])
    with mlflow.start_run():
        mlflow.log_params({"algorithm": args.algorithm, **params, "rows": len(frame)})
        pipe.fit(x, y)
        mlflow.log_metric("training_accuracy_score", float(accuracy_score(y, pipe.predict(x))))
        mlflow.sklearn.save_model(pipe, args.model, signature=infer_signature(x, pipe.predict(x)),
                                  input_example=x.head(3), serialization_format=FORMAT,
                                  pip_requirements=REQUIREMENTS)


if __name__ == "__main__":
    main()
