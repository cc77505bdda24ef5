"""Training jobs: a scikit-learn pipeline trained in its own process, tracked in MLflow."""
