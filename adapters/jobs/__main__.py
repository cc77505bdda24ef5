"""``python -m adapters.jobs JOB_DIR``: supervise one job of the local runner (see adapters/jobs/runner.py).

Creates the job's MLflow run, prepares the environment, runs the command with ``MLFLOW_TRACKING_URI`` and
``MLFLOW_RUN_ID`` set, enforces the timeout, then checks and records what the job wrote: a training job's
MLflow model (logged into the run as ``model``) and metrics; an evaluation job's scores. It never leaves
the job without a terminal status unless it is killed, and then the runner reports the job failed.
"""

from __future__ import annotations

import ctypes
import json
import math
import os
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from .environment import job_python
from .runner import JobPlan, write_status

_PR_SET_PDEATHSIG = 1


def _die_with_supervisor() -> None:  # in the command's process, before exec: a killed supervisor takes it along
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _say(line: str) -> None:
    print(f"[runner {time.strftime('%H:%M:%S')}] {line}", flush=True)


def _client(plan: JobPlan) -> Any:
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=plan.tracking_uri, registry_uri=plan.tracking_uri)


def _start_run(plan: JobPlan) -> Any:
    """The job's MLflow run, in the model's experiment (created under the tracking lock: see training.tracking)."""
    from training.tracking import tracking_lock

    client = _client(plan)
    with tracking_lock(Path(plan.state_dir)):
        exp = client.get_experiment_by_name(plan.model)
        exp_id = exp.experiment_id if exp else client.create_experiment(plan.model,
                                                                        artifact_location=plan.artifact_root)
    run = client.create_run(exp_id, run_name=plan.job_id, tags={**plan.tags, "job_id": plan.job_id,
                                                               "job_kind": plan.kind})
    for key, value in plan.params.items():
        client.log_param(run.info.run_id, key, str(value)[:6000])
    return run


def _run_command(plan: JobPlan, job_dir: Path, env: dict[str, str]) -> tuple[int | None, str]:
    """Run the command in its code folder; (exit code, "") or (None, why it was stopped)."""
    log = (job_dir / "job.log").open("ab")
    proc = subprocess.Popen(["bash", "-c", plan.command], cwd=plan.cwd, env=env, stdout=log,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, preexec_fn=_die_with_supervisor)
    log.close()
    deadline = time.monotonic() + plan.timeout_seconds
    while proc.poll() is None:
        if time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            return None, f"timed out after {plan.timeout_seconds / 60:g} minutes"
        time.sleep(0.2)
    return proc.returncode, ""


def _last_error(job_dir: Path) -> str:
    lines = [ln for ln in (job_dir / "job.log").read_text(errors="replace").splitlines()
             if ln.strip() and not ln.startswith("[runner")]
    return lines[-1][:300] if lines else "no output"


def _finite(metrics: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items()
            if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)}


def _collect_training(plan: JobPlan, run: Any, client: Any) -> dict[str, Any]:
    out = Path(plan.outputs[plan.model_output])
    if not (out / "MLmodel").is_file():
        raise _JobFailed(f"outputs.{plan.model_output}: no MLmodel file there; the job must save an MLflow "
                         f"model into it (e.g. mlflow.sklearn.save_model(model, path))")
    client.log_artifacts(run.info.run_id, str(out), "model")
    metrics = _finite(client.get_run(run.info.run_id).data.metrics)
    return {"model_uri": f"{run.info.artifact_uri}/model", "metrics": metrics,
            "message": f"trained; {len(metrics)} metric(s) logged"}


def _collect_evaluation(plan: JobPlan) -> dict[str, Any]:
    path = Path(plan.outputs["evaluation"]) / "scores.json"
    if not path.is_file():
        raise _JobFailed("the evaluation job wrote no scores.json")
    scores = json.loads(path.read_text())
    return {"scores": {who: _finite(m) for who, m in scores.items() if isinstance(m, dict)},
            "message": "scored " + " and ".join(sorted(scores))}


class _JobFailed(Exception):
    pass


def supervise(job_dir: Path) -> int:
    """Run the job in ``job_dir`` to a terminal status; 0 when it succeeded."""
    plan = JobPlan(**json.loads((job_dir / "plan.json").read_text()))
    write_status(job_dir, state="running", pid=os.getpid(), started=time.time())
    client = _client(plan)
    run = _start_run(plan)
    write_status(job_dir, tracking_run_id=run.info.run_id)
    outcome = "FAILED"
    try:
        python, environment = job_python(plan.requirements, Path(plan.env_cache), _say)
        client.set_tag(run.info.run_id, "environment", json.dumps(environment)[:5000])
        write_status(job_dir, lineage={**plan.lineage, "environment": environment})
        for path in plan.outputs.values():
            Path(path).mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "MLFLOW_TRACKING_URI": plan.tracking_uri, "MLFLOW_RUN_ID": run.info.run_id,
               "MLFLOW_EXPERIMENT_ID": run.info.experiment_id,
               "PATH": os.pathsep.join([str(Path(python).parent), os.environ.get("PATH", "")]),
               "PYTHONUNBUFFERED": "1"}
        env.pop("PYTHONPATH", None)  # the user's code sees its own folder and its environment, not ours
        _say(f"{plan.kind} job {plan.job_id}: {plan.command}")
        code, stopped = _run_command(plan, job_dir, env)
        if json.loads((job_dir / "status.json").read_text()).get("state") == "canceled":
            outcome = "KILLED"
            return 1
        if code is None:
            raise _JobFailed(stopped)
        if code != 0:
            raise _JobFailed(f"the command exited with code {code}: {_last_error(job_dir)}")
        result = _collect_training(plan, run, client) if plan.kind == "training" else _collect_evaluation(plan)
        write_status(job_dir, state="succeeded", finished=time.time(), **result)
        outcome = "FINISHED"
        _say(result["message"])
        return 0
    except _JobFailed as exc:
        _say(f"failed: {exc}")
        write_status(job_dir, state="failed", finished=time.time(), message=str(exc))
        return 1
    except Exception as exc:  # the runner's own failure: the job still ends with the reason
        traceback.print_exc()
        write_status(job_dir, state="failed", finished=time.time(), message=f"{type(exc).__name__}: {exc}")
        return 1
    finally:
        client.set_terminated(run.info.run_id, outcome)


def main() -> int:
    """Entry point."""
    return supervise(Path(sys.argv[1]).resolve())


if __name__ == "__main__":
    sys.exit(main())
