"""Pure pieces of a retrain: its stages, the jobs it asks for, and the lineage a registered version carries."""

from __future__ import annotations

import json
from typing import Any

from .policy import Policy
from .ports import DataRef, EvaluationRequest, JobStatus, ModelVersion, TrainRequest

STAGES = ["validate", "train", "evaluate", "gates", "approval", "register"]
EXAMPLE_JOB = ""  # TrainRequest.job for the built-in example job (examples/credit-risk/job.yaml)


def train_request(policy: Policy, data: DataRef, run_id: str) -> TrainRequest:
    """The training job a policy asks for: its own job YAML, or the example job configured by the shortcut."""
    training = policy.training
    return TrainRequest(model=policy.model, data=data, label=policy.label, job=training.job or EXAMPLE_JOB,
                        inputs=dict(training.inputs), algorithm=training.algorithm, params=dict(training.params),
                        run_id=run_id, policy_hash=policy.policy_hash, test_fraction=training.test_fraction,
                        seed=training.seed, timeout_minutes=training.timeout_minutes)


def evaluation_request(policy: Policy, job: JobStatus, champion: ModelVersion | None) -> EvaluationRequest:
    """The evaluation job for a trained candidate: it and the champion on the job's held-out part."""
    return EvaluationRequest(model=policy.model, training_job=job.job_id, candidate_uri=job.model_uri,
                             candidate_run=job.tracking_run_id, label=policy.label,
                             champion_uri=champion.model_uri if champion else "",
                             model_type=policy.evaluation.model_type,
                             baseline_rows=policy.evaluation.baseline_rows,
                             timeout_minutes=policy.training.timeout_minutes)


def lineage_tags(data: DataRef, run_id: str, policy_hash: str, job: JobStatus,
                 metrics: dict[str, float], approved_by: str = "") -> dict[str, str]:
    """The tags that say where a version came from: data, split, job (its YAML, code and environment), run,
    policy, who approved it, and its metrics on the held-out part."""
    tags = {"data_url": data.url, "data_etag": data.etag, "data_sha256": data.sha256, "run_id": run_id,
            "policy_hash": policy_hash, "training_job": job.job_id, "tracking_run_id": job.tracking_run_id}
    if approved_by:
        tags["approved_by"] = approved_by
    tags.update({key: _text(value) for key, value in sorted(job.lineage.items())})
    tags.update({f"metric.{k}": f"{v:.6f}" for k, v in metrics.items()})
    return tags


def _text(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, separators=(",", ":"))
    return text[:5000]  # MLflow's tag value limit is 8000; Azure ML's is lower for some fields
