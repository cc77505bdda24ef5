"""Pure pieces of a retrain: its stages, the jobs it asks for, and the lineage a registered version carries."""

from __future__ import annotations

import json
from typing import Any

from .policy import Policy
from .ports import DataCheckRequest, DataRef, EvaluationRequest, JobStatus, ModelVersion, PromptVersion, TrainRequest

STAGES = ["validate", "train", "evaluate", "gates", "approval", "register"]
EXAMPLE_JOB = ""  # TrainRequest.job for the built-in example job (examples/credit-risk/job.yaml)


def train_request(policy: Policy, data: DataRef, run_id: str) -> TrainRequest:
    """The training job a policy asks for: its own job YAML, or the example job configured by the shortcut."""
    training = policy.training
    return TrainRequest(model=policy.model, data=data, label=policy.label, job=training.job or EXAMPLE_JOB,
                        inputs=dict(training.inputs), algorithm=training.algorithm, params=dict(training.params),
                        run_id=run_id, policy_hash=policy.policy_hash, test_fraction=training.test_fraction,
                        seed=training.seed, timeout_minutes=training.timeout_minutes, chat=policy.is_chat)


def data_check_request(policy: Policy, data: DataRef, run_id: str) -> DataCheckRequest:
    """A chat model's data check job: tokens against the base model's context, PII per ``data.pii``."""
    return DataCheckRequest(model=policy.model, data=data, run_id=run_id, pii=policy.data.pii,
                            max_tokens=policy.data.max_tokens, timeout_minutes=policy.training.timeout_minutes)


def checked_data(landed: DataRef, job: JobStatus) -> DataRef:
    """The data a chat model trains on: what the data check job wrote (masked, when the policy masks PII)."""
    url = job.outputs.get("data", "")
    if not url:
        raise ValueError(f"the data check job {job.job_id} wrote no data output")
    return DataRef(url, sha256=str(job.report.get("data_sha256", "")), content_length=landed.content_length)


def data_check_tags(report: dict[str, Any]) -> dict[str, str]:
    """What lineage records of a chat model's data check: token figures and PII counts (never values)."""
    pii = report.get("pii") or {}
    tokens = report.get("tokens") or {}
    return {"pii_action": str(pii.get("action", "")),
            "pii_entities": json.dumps(pii.get("entities") or {}, sort_keys=True, separators=(",", ":")),
            "train_examples": str(report.get("examples", "")), "tokens_max": str(tokens.get("max", "")),
            "tokens_total": str(tokens.get("total", ""))}


def evaluation_request(policy: Policy, job: JobStatus, champion: ModelVersion | None,
                       prompt: PromptVersion | None = None) -> EvaluationRequest:
    """The evaluation job for a trained candidate: it and the champion on the job's held-out part (a chat model:
    on its evaluation set, both answering through the live ``prompt``, if it has one)."""
    text = json.dumps(prompt.template) if prompt else ""
    return EvaluationRequest(model=policy.model, training_job=job.job_id, candidate_uri=job.model_uri,
                             candidate_run=job.tracking_run_id, label=policy.label,
                             champion_uri=champion.model_uri if champion else "",
                             model_type=policy.evaluation.model_type,
                             baseline_rows=policy.evaluation.baseline_rows,
                             timeout_minutes=policy.training.timeout_minutes,
                             eval_set=policy.evaluation.eval_set or "",
                             max_new_tokens=policy.evaluation.max_new_tokens,
                             candidate_prompt=text, champion_prompt=text,
                             judge_metrics=list(policy.evaluation.judge.metrics) if policy.evaluation.judge else [])


def lineage_tags(data: DataRef, run_id: str, policy_hash: str, job: JobStatus,
                 metrics: dict[str, float], approved_by: str = "",
                 extra: dict[str, str] | None = None) -> dict[str, str]:
    """The tags that say where a version came from: data, split, job (its YAML, code and environment), run,
    policy, who approved it, its metrics on the held-out part (or a chat model's evaluation set), and ``extra``
    (a chat model's data check)."""
    tags = {"data_url": data.url, "data_etag": data.etag, "data_sha256": data.sha256, "run_id": run_id,
            "policy_hash": policy_hash, "training_job": job.job_id, "tracking_run_id": job.tracking_run_id,
            **(extra or {})}
    if approved_by:
        tags["approved_by"] = approved_by
    tags.update({key: _text(value) for key, value in sorted(job.lineage.items())})
    tags.update({f"metric.{k}": f"{v:.6f}" for k, v in metrics.items()})
    return tags


def _text(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, separators=(",", ":"))
    return text[:5000]  # MLflow's tag value limit is 8000; Azure ML's is lower for some fields
