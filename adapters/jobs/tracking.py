"""A local job's MLflow run: created before the job starts, closed with what the job wrote.

Both ends run in the submitter's process (devhost's, which has MLflow loaded for the registry anyway), so
the job's supervisor never imports MLflow. Azure ML does the same for its jobs: it creates the run, sets
``MLFLOW_RUN_ID`` for the command, and collects the outputs.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlops.scores import read_scores
from training.tracking import tracking_lock

from .runner import RAN, JobPlan

_OUTCOME = {RAN: "FINISHED", "canceled": "KILLED"}  # anything else: FAILED


class JobTracking:
    """Start and close local jobs' MLflow runs in one tracking store."""

    def __init__(self, client: Callable[[], Any], state_dir: Path, artifact_root: str) -> None:
        self.client = client
        self.state_dir = Path(state_dir)
        self.artifact_root = artifact_root

    def start(self, model: str, job_id: str, kind: str, tags: dict[str, str],
              params: dict[str, Any]) -> tuple[str, str]:
        """(run id, experiment id) of a new run in the model's experiment, tagged and with its parameters."""
        client = self.client()
        with tracking_lock(self.state_dir):  # the experiment is created once, even by two jobs at once
            exp = client.get_experiment_by_name(model)
            exp_id = exp.experiment_id if exp else client.create_experiment(model,
                                                                            artifact_location=self.artifact_root)
        run = client.create_run(exp_id, run_name=job_id, tags={**tags, "job_id": job_id, "job_kind": kind})
        for key, value in params.items():
            client.log_param(run.info.run_id, key, str(value)[:6000])
        return run.info.run_id, exp_id

    def close(self, plan: JobPlan, status: dict[str, Any]) -> dict[str, Any]:
        """Collect what a job whose command ended wrote, and end its run; the fields to record."""
        client = self.client()
        updates: dict[str, Any] = {}
        if status.get("environment"):
            client.set_tag(plan.tracking_run_id, "environment", json.dumps(status["environment"])[:5000])
        if status["state"] == RAN:
            try:
                collect = {"training": _training, "check": _check}.get(plan.kind, _evaluation)
                updates = collect(plan, status, client)
            except ValueError as exc:
                updates = {"state": "failed", "message": str(exc)}
        client.set_terminated(plan.tracking_run_id, _OUTCOME.get(updates.get("state", status["state"]), "FAILED"))
        return updates


def _finite(metrics: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items()
            if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)}


def _training(plan: JobPlan, status: dict[str, Any], client: Any) -> dict[str, Any]:
    """A command job's model output, or a sweep's best trial's (with the trial table logged into its run)."""
    out = Path(status.get("model_dir") or plan.outputs[plan.model_output])
    if not (out / "MLmodel").is_file():
        raise ValueError(f"outputs.{plan.model_output}: no MLmodel file there; the job must save an MLflow "
                         f"model into it (e.g. mlflow.sklearn.save_model(model, path))")
    client.log_artifacts(plan.tracking_run_id, str(out), "model")
    if plan.sweep:
        client.log_dict(plan.tracking_run_id, {"objective": status["objective"], "trials": status["trials"]},
                        "sweep/trials.json")
        for key, value in status["best_params"].items():
            client.log_param(plan.tracking_run_id, f"best.{key}", str(value))
        for key, value in status["best_metrics"].items():
            client.log_metric(plan.tracking_run_id, key, value)
    run = client.get_run(plan.tracking_run_id)
    metrics = _finite(run.data.metrics)
    message = f"trained; {len(metrics)} metric(s) logged"
    if plan.sweep:
        best = status["best_trial"]
        metric = status["objective"]["primary_metric"]
        completed = sum(1 for t in status["trials"] if t["state"] == "completed")
        message = (f"sweep: {len(status['trials'])} trial(s), {completed} completed; best trial {best} "
                   f"({metric} {metrics.get(metric, float('nan')):.4g})")
    return {"model_uri": f"{run.info.artifact_uri}/model", "metrics": metrics, "message": message}


def _evaluation(plan: JobPlan, status: dict[str, Any], client: Any) -> dict[str, Any]:
    """The scores; a chat evaluation's answers too, with the hash of the set they answered (its report)."""
    folder = Path(plan.outputs["evaluation"])
    if not (folder / "scores.json").is_file():
        raise ValueError("the evaluation job wrote no scores.json")
    scores, skipped = read_scores(json.loads((folder / "scores.json").read_text()))
    found: dict[str, Any] = {"scores": scores, "message": "scored " + " and ".join(sorted(scores))}
    if skipped:
        found["skipped"] = skipped
    if (folder / "answers.json").is_file():
        found["report"] = {**plan.lineage, "answers": json.loads((folder / "answers.json").read_text())}
    return found


def _check(plan: JobPlan, status: dict[str, Any], client: Any) -> dict[str, Any]:
    """A data check job's report, and the data it wrote to train on (none when it blocked the data)."""
    path = Path(plan.outputs["report"]) / "report.json"
    if not path.is_file():
        raise ValueError("the data check job wrote no report.json")
    report = json.loads(path.read_text())
    client.log_dict(plan.tracking_run_id, report, "report.json")  # counts only: the job never reports values
    data = Path(plan.outputs["data"]) / "train.jsonl"
    outputs = {"data": data.as_uri()} if data.is_file() and report.get("passed") else {}
    verdict = "passed" if report.get("passed") else "failed: " + "; ".join(report.get("problems") or [])
    return {"report": report, "outputs": outputs, "message": f"data check {verdict}"[:500]}
