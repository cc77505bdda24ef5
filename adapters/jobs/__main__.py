"""``python -m adapters.jobs JOB_DIR``: supervise one job of the local runner (see adapters/jobs/runner.py).

Prepares the environment, runs the command with ``MLFLOW_TRACKING_URI`` and ``MLFLOW_RUN_ID`` (the run the
submitter created) set, enforces the timeout and records how the command ended: "ran" (exit 0; the
runner's ``close`` collects what it wrote), or "failed" with the reason. The standard library only: no
MLflow here. It never leaves the job without a status unless it is killed, and then the runner reports
the job failed.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path

from .environment import job_python
from .runner import RAN, JobPlan, write_status

_PR_SET_PDEATHSIG = 1


def _die_with_supervisor() -> None:  # in the command's process, before exec: a killed supervisor takes it along
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _say(line: str) -> None:
    print(f"[runner {time.strftime('%H:%M:%S')}] {line}", flush=True)


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


class _JobFailed(Exception):
    pass


def _sweep(plan: JobPlan, job_dir: Path, env: dict[str, str]) -> int:
    """Run a sweep's trials (adapters/jobs/sweep.py: optuna and MLflow, loaded only for sweeps)."""
    from .sweep import Sweep, SweepFailed

    try:
        result = Sweep(plan, job_dir, env, _say, _die_with_supervisor).run()
    except SweepFailed as exc:
        raise _JobFailed(str(exc)) from exc
    write_status(job_dir, state=RAN, finished=time.time(), **result)
    return 0


def supervise(job_dir: Path) -> int:
    """Run the job in ``job_dir`` until its command ends; 0 when it exited 0."""
    plan = JobPlan(**json.loads((job_dir / "plan.json").read_text()))
    write_status(job_dir, state="running", pid=os.getpid(), started=time.time(),
                 tracking_run_id=plan.tracking_run_id)
    try:
        python, environment = job_python(plan.requirements, Path(plan.env_cache), _say)
        write_status(job_dir, environment=environment, lineage={**plan.lineage, "environment": environment})
        for path in plan.outputs.values():
            Path(path).mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "MLFLOW_TRACKING_URI": plan.tracking_uri, "MLFLOW_RUN_ID": plan.tracking_run_id,
               "MLFLOW_EXPERIMENT_ID": plan.experiment_id,
               "PATH": os.pathsep.join([str(Path(python).parent), os.environ.get("PATH", "")]),
               "PYTHONUNBUFFERED": "1"}
        env.pop("PYTHONPATH", None)  # the user's code sees its own folder and its environment, not ours
        _say(f"{plan.kind} job {plan.job_id}: {plan.command}")
        if plan.sweep:
            return _sweep(plan, job_dir, env)
        code, stopped = _run_command(plan, job_dir, env)
        if json.loads((job_dir / "status.json").read_text()).get("state") == "canceled":
            return 1
        if code is None:
            raise _JobFailed(stopped)
        if code != 0:
            raise _JobFailed(f"the command exited with code {code}: {_last_error(job_dir)}")
        write_status(job_dir, state=RAN, finished=time.time())
        _say("the command exited 0")
        return 0
    except _JobFailed as exc:
        _say(f"failed: {exc}")
        write_status(job_dir, state="failed", finished=time.time(), message=str(exc))
        return 1
    except Exception as exc:  # the runner's own failure: the job still ends with the reason
        traceback.print_exc()
        write_status(job_dir, state="failed", finished=time.time(), message=f"{type(exc).__name__}: {exc}")
        return 1


def main() -> int:
    """Entry point."""
    return supervise(Path(sys.argv[1]).resolve())


if __name__ == "__main__":
    sys.exit(main())
