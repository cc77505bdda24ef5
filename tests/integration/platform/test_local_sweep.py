"""A sweep job on the local job runner: its trials run as real processes, each in a child MLflow run, and the
candidate is the best completed trial by the objective."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pytest
import yaml
from platformlab import job_log, train

from adapters.local import LocalPlatform

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "house-prices"


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> LocalPlatform:
    return LocalPlatform(tmp_path_factory.mktemp("sweep") / "mlops")


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the house-prices example (its sweep.yaml, train.py) and 600 rows of its data."""
    copy = tmp_path_factory.mktemp("their-job") / "house-prices"
    shutil.copytree(EXAMPLE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    spec = importlib.util.spec_from_file_location("make_houses", copy / "make_data.py")
    assert spec and spec.loader
    make = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make)
    (copy / "data.csv").write_text(make.to_csv(make.rows(600, 1)))
    return copy


@pytest.mark.timeout(600)
def test_the_example_sweep_runs_six_trials_and_its_candidate_is_the_best_by_the_objective(
        platform: LocalPlatform, folder: Path) -> None:
    job = train(platform, "houses", folder / "data.csv", timeout=500, job=str(folder / "sweep.yaml"), label="price")

    assert job.state == "succeeded", job_log(platform, job)
    metric = "validation_root_mean_squared_error"
    assert len(job.trials) == 6 and {t["state"] for t in job.trials} <= {"completed", "early terminated"}
    completed = [t for t in job.trials if t["state"] == "completed"]
    assert len(completed) >= 2
    best = min(completed, key=lambda t: t[metric])
    assert job.metrics[metric] == best[metric]  # the candidate is the best trial's, with its metrics
    assert f"best trial {best['trial']}" in job.message
    client = platform._client()
    parent = client.get_run(job.tracking_run_id)
    assert {k.removeprefix("best."): v for k, v in parent.data.params.items() if k.startswith("best.")} == \
        {k: str(v) for k, v in best["params"].items()}
    for trial in job.trials:  # each trial its own run, a child of the sweep's
        run = client.get_run(trial["run_id"])
        assert run.data.tags["mlflow.parentRunId"] == job.tracking_run_id
        assert run.info.status == ("FINISHED" if trial["state"] == "completed" else "KILLED")
        assert {k: str(v) for k, v in trial["params"].items()} == {k: run.data.params[k] for k in trial["params"]}
    assert "sweep/trials.json" in {a.path for a in client.list_artifacts(job.tracking_run_id, "sweep")}
    assert (Path(job.model_uri.removeprefix("file://")) / "MLmodel").is_file()


def test_a_sweep_whose_trials_all_fail_fails_with_each_trial_s_reason(platform: LocalPlatform, folder: Path) -> None:
    sweep = yaml.safe_load((folder / "sweep.yaml").read_text())
    sweep["trial"]["command"] = "python -c 'import sys; sys.exit(3)' ${{search_space.max_iter}} ${{outputs.model}}"
    sweep["limits"] = {"max_total_trials": 2, "max_concurrent_trials": 2}
    broken = folder / "broken-sweep.yaml"
    broken.write_text(yaml.safe_dump(sweep))

    job = train(platform, "houses", folder / "data.csv", job=str(broken), label="price")

    assert job.state == "failed"
    assert "no trial completed: trial 0 failed: exited with code 3" in job.message, job.message
    assert "trial 1 failed: exited with code 3" in job.message
