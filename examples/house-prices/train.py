"""House prices: a gradient-boosted regressor over a CSV file, saved as an MLflow model."""

from __future__ import annotations

import argparse
from importlib.metadata import version

import mlflow
import pandas as pd
from mlflow.models import infer_signature
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.metrics import root_mean_squared_error
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OrdinalEncoder

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
    parser.add_argument("--max_iter", type=int, default=200)
    parser.add_argument("--learning_rate", type=float, default=0.1)
    parser.add_argument("--max_leaf_nodes", type=int, default=31)
    parser.add_argument("--validation_fraction", type=float, default=0.2,
                        help="rows kept out of fitting to report validation RMSE as training goes")
    parser.add_argument("--model_dir", required=True)
    args = parser.parse_args()

    frame = pd.read_csv(args.training_data)
    x, y = frame.drop(columns=[args.label]), frame[args.label].astype(float)
    categorical = [c for c in x.columns if not pd.api.types.is_numeric_dtype(x[c])]
    prep = ColumnTransformer([("cat", OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1),
                               categorical)], remainder="passthrough")
    gbr = HistGradientBoostingRegressor(max_iter=args.max_iter, learning_rate=args.learning_rate,
                                        max_leaf_nodes=args.max_leaf_nodes, early_stopping=False, warm_start=True,
                                        random_state=0)
    model = Pipeline([("prep", prep), ("gbr", gbr)])
    x_fit, x_val, y_fit, y_val = train_test_split(x, y, test_size=args.validation_fraction, random_state=0)
    with mlflow.start_run():
        mlflow.log_params({"max_iter": args.max_iter, "learning_rate": args.learning_rate,
                           "max_leaf_nodes": args.max_leaf_nodes, "rows": len(frame)})
        # boosted 20 iterations at a time (warm start), the validation RMSE logged at each step: what a
        # sweep's early termination policy reads to stop a trial that is not going anywhere
        for step, iterations in enumerate(range(20, args.max_iter + 20, 20)):
            model.set_params(gbr__max_iter=min(iterations, args.max_iter))
            model.fit(x_fit, y_fit)
            mlflow.log_metric("validation_root_mean_squared_error",
                              float(root_mean_squared_error(y_val, model.predict(x_val))), step=step)
        mlflow.log_metric("training_root_mean_squared_error",
                          float(root_mean_squared_error(y_fit, model.predict(x_fit))))
        mlflow.sklearn.save_model(model, args.model_dir, signature=infer_signature(x, model.predict(x)),
                                  input_example=x.head(3), serialization_format=FORMAT,
                                  pip_requirements=REQUIREMENTS)


if __name__ == "__main__":
    main()
