"""Score a model on the held-out split of a CSV file: the same split the training job used."""

from __future__ import annotations

from training.split import metrics, read_csv, split


def evaluate_csv(model_uri: str, content: bytes, label: str, test_fraction: float, seed: int) -> dict[str, float]:
    """Metrics of the MLflow model at ``model_uri`` on the held-out part of ``content``."""
    import mlflow.sklearn

    frame = read_csv(content)
    _, x_test, _, y_test = split(frame, label, test_fraction, seed)
    return metrics(mlflow.sklearn.load_model(model_uri), x_test, y_test)
