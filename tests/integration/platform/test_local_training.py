"""The local platform's training jobs: what validation accepts, the job trains on, and the state is private."""

from __future__ import annotations

import stat
from pathlib import Path

import pandas as pd
import pytest
from platformlab import evaluate, job_log, train

from adapters.local import LocalPlatform
from cli.sampledata import generate, to_csv_bytes
from mlops.gates import validate_data
from mlops.policy import DataChecks
from mlops.smoke import sample_rows


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> LocalPlatform:
    """One local platform (MLflow on SQLite) shared by the module's jobs."""
    return LocalPlatform(tmp_path_factory.mktemp("training") / "mlops")


def _with_nulls(rows: int, every: int) -> bytes:
    """Sample data with a null in ``f0`` and in ``segment`` every ``every`` rows, in validation's spellings."""
    data = generate(rows, seed=5)
    spellings = ["", "NA", "nan", "null"]
    for i in range(0, rows, every):
        data[i]["f0"] = spellings[(i // every) % len(spellings)]
        data[(i + 1) % rows]["segment"] = ""
    return to_csv_bytes(data)


def test_nulls_that_validation_allows_are_imputed_by_the_training_job(platform: LocalPlatform,
                                                                        tmp_path: Path) -> None:
    content = _with_nulls(400, 50)  # 2 % of f0 and of segment
    report = validate_data(DataChecks(max_null_fraction=0.05), "label", content)
    assert report.passed and report.null_fraction["f0"] == 0.02, report
    csv = tmp_path / "nulls.csv"
    csv.write_bytes(content)

    job = train(platform, "nulls", csv)

    assert job.state == "succeeded", job_log(platform, job)
    assert job.metrics["training_accuracy_score"] > 0.8  # what the job logged itself
    evaluation = evaluate(platform, job)
    assert evaluation.state == "succeeded", job_log(platform, evaluation)
    assert evaluation.scores["candidate"]["accuracy_score"] > 0.8
    # the smoke test's rows, nulls included, are what the deployed model answers
    import mlflow.pyfunc

    rows = sample_rows(content, "label", 5, head_bytes=len(content) + 1)
    assert rows[0]["f0"] is None and rows[1]["segment"] is None
    assert len(mlflow.pyfunc.load_model(job.model_uri).predict(pd.DataFrame(rows))) == 5


def test_a_three_class_label_is_trained_and_measured_on_every_gate_metric(platform: LocalPlatform,
                                                                         tmp_path: Path) -> None:
    data = generate(450, seed=9)
    for i, row in enumerate(data):
        row["label"] = 2 if row["segment"] == "c" and i % 3 else row["label"]
    content = to_csv_bytes(data)
    assert validate_data(DataChecks(), "label", content).passed
    csv = tmp_path / "three.csv"
    csv.write_bytes(content)

    job = train(platform, "three", csv)

    assert job.state == "succeeded", job_log(platform, job)
    evaluation = evaluate(platform, job)
    assert evaluation.state == "succeeded", job_log(platform, evaluation)
    held_out = evaluation.scores["candidate"]
    assert {"accuracy_score", "f1_score", "roc_auc", "log_loss"} <= set(held_out), held_out
    assert 0.5 < held_out["roc_auc"] <= 1


def test_the_platform_state_is_readable_by_its_owner_only(platform: LocalPlatform) -> None:
    state = platform.state_dir
    for folder in (state, platform.jobs_dir):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
    databases = list(state.glob("mlflow.db*"))
    assert databases, "no MLflow database"
    for path in databases:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
