"""Pure pieces of a retrain: its stages and the lineage a registered version carries."""

from __future__ import annotations

from .ports import DataRef, JobStatus

STAGES = ["validate", "train", "evaluate", "gates", "approval", "register"]


def lineage_tags(data: DataRef, run_id: str, policy_hash: str, job: JobStatus,
                 metrics: dict[str, float]) -> dict[str, str]:
    """The tags that say where a version came from: data, run, policy, job and its metrics."""
    tags = {"data_url": data.url, "data_etag": data.etag, "data_sha256": data.sha256, "run_id": run_id,
            "policy_hash": policy_hash, "training_job": job.job_id, "tracking_run_id": job.tracking_run_id}
    tags.update({f"metric.{k}": f"{v:.6f}" for k, v in metrics.items()})
    return tags
