"""Entry point of the Azure ML command job: the same training as locally, arguments in, ./outputs out.

Azure ML sets MLFLOW_TRACKING_URI for the job, so params, metrics and the model land in the
workspace's tracking store; the model is also left under ./outputs/model for registration.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

from training.__main__ import train


def main() -> int:
    """Turn the job's arguments into a job directory and train."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", required=True)
    parser.add_argument("--label", required=True)
    parser.add_argument("--algorithm", required=True)
    parser.add_argument("--test-fraction", type=float, default=0.25)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--params", default="{}")
    parser.add_argument("--output", default="./outputs")
    args = parser.parse_args()
    job_dir = Path(args.output)
    job_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy(args.data, job_dir / "data.csv")
    (job_dir / "request.json").write_text(json.dumps({
        "model": os.environ.get("AZUREML_EXPERIMENT_NAME", "model"), "label": args.label,
        "algorithm": args.algorithm, "params": json.loads(args.params), "test_fraction": args.test_fraction,
        "seed": args.seed, "data": {"url": args.data}, "job_id": os.environ.get("AZUREML_RUN_ID", "job"),
        "tracking_uri": os.environ.get("MLFLOW_TRACKING_URI", ""), "artifact_root": None,
        "state_dir": str(job_dir)}))
    train(job_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
