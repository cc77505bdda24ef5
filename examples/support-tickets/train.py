"""Support tickets: TF-IDF over the ticket's text, then logistic regression; saved as an MLflow model."""

from __future__ import annotations

import argparse
from importlib.metadata import version

import mlflow
import pandas as pd
from mlflow.models import infer_signature
from sklearn.compose import ColumnTransformer
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score
from sklearn.pipeline import Pipeline

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
    parser.add_argument("--text_column", default="text")
    parser.add_argument("--C", type=float, default=4.0)
    parser.add_argument("--model_dir", required=True)
    args = parser.parse_args()

    frame = pd.read_csv(args.training_data, keep_default_na=False)
    x, y = frame[[args.text_column]], frame[args.label]
    model = Pipeline([
        ("tfidf", ColumnTransformer([("words", TfidfVectorizer(ngram_range=(1, 2), min_df=2), args.text_column)])),
        ("clf", LogisticRegression(C=args.C, max_iter=1000))])
    with mlflow.start_run():
        mlflow.log_params({"C": args.C, "rows": len(frame)})
        model.fit(x, y)
        mlflow.log_metric("training_accuracy_score", float(accuracy_score(y, model.predict(x))))
        mlflow.sklearn.save_model(model, args.model_dir, signature=infer_signature(x, model.predict(x)),
                                  input_example=x.head(3), serialization_format=FORMAT,
                                  pip_requirements=REQUIREMENTS)


if __name__ == "__main__":
    main()
