"""The local job runner: Azure ML's stand-in for compute. A job is a folder under the jobs directory:

    <jobs>/<job id>/plan.json     what to run (written once, by ``submit``)
                   /status.json   queued -> running -> ran -> succeeded; or failed / canceled (written atomically)
                   /job.log       the command's output, and the supervisor's own lines
                   /supervisor.pid
                   /data/         the inputs the control plane bound (the split of the landed data)
                   /outputs/<n>/  one folder per output of the job YAML

``submit`` starts a supervisor process (``python -m adapters.jobs <folder>``, in its own session, with
nothing but the standard library loaded) that prepares the environment, runs the command with
``MLFLOW_RUN_ID`` set to the run the submitter created (so the user's ``mlflow.start_run()`` logs into
it, as on Azure ML), enforces the timeout and records how the command ended. What the job wrote is
collected by the first ``status`` call after that (``close``, in the caller's process, which already has
MLflow loaded): a process per job that imports MLflow only to create and close a run cost seconds of
CPU per retrain. Jobs outlive devhost by design: after a restart, ``status`` reads the folder again, and
a job whose supervisor died without a result is reported failed with the reason, never lost.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mlops.errors import NotFoundError
from mlops.ports import JobStatus

ROOT = Path(__file__).resolve().parents[2]
TERMINAL = ("succeeded", "failed", "canceled")
RAN = "ran"  # the command exited 0; what it wrote is not collected yet


@dataclass(frozen=True)
class JobPlan:
    """Everything the supervisor needs, resolved: no YAML is read after submission."""

    job_id: str
    kind: str  # "training", "evaluation" or "check" (a chat model's data check)
    command: str
    cwd: str
    model: str
    tracking_uri: str
    tracking_run_id: str  # the job's MLflow run, created by the submitter
    experiment_id: str
    outputs: dict[str, str]
    model_output: str = ""  # the output holding the MLflow model (training jobs)
    requirements: list[str] = field(default_factory=list)  # the environment's pip packages, if it lists any
    env_cache: str = ""
    timeout_seconds: float = 3600
    lineage: dict[str, Any] = field(default_factory=dict)  # what the registered version records
    sweep: dict[str, Any] = field(default_factory=dict)  # a sweep job's settings (JobSpec.sweep); {} otherwise

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict."""
        return asdict(self)


Close = Callable[[JobPlan, dict[str, Any]], dict[str, Any]]
"""Called once when a job's command has ended (``state`` "ran", "failed" or "canceled"): collects what it wrote
and closes its run; answers the fields to record ("state": "failed" and a "message" if the output is unusable)."""


def write_status(job_dir: Path, **fields: Any) -> dict[str, Any]:
    """Merge ``fields`` into status.json atomically; returns the new status."""
    path = job_dir / "status.json"
    current = json.loads(path.read_text()) if path.exists() else {}
    current.update(fields)
    tmp = job_dir / f"status.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(current))
    os.chmod(tmp, 0o600)
    tmp.replace(path)
    return current


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is dead: reap it if it is ours
        return os.waitpid(pid, os.WNOHANG) == (0, 0)
    except ChildProcessError:
        return _not_zombie(pid)


def _not_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


class LocalJobRunner:
    """Submit, poll and cancel jobs in ``jobs_dir``."""

    def __init__(self, jobs_dir: Path, close: Close | None = None) -> None:
        self.jobs_dir = Path(jobs_dir)
        self.close = close

    def folder(self, job_id: str) -> Path:
        """The job's folder (it may not exist yet)."""
        return self.jobs_dir / job_id

    def exists(self, job_id: str) -> bool:
        """True once a job was submitted under ``job_id``."""
        return (self.folder(job_id) / "plan.json").exists()

    def submit(self, plan: JobPlan) -> JobStatus:
        """Start the supervisor; submitting the same job id again returns the job's status."""
        job_dir = self.folder(plan.job_id)
        if self.exists(plan.job_id):
            return self.status(plan.job_id)
        job_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_status(job_dir, state="queued", kind=plan.kind)
        (job_dir / "plan.json").write_text(json.dumps(plan.to_dict(), indent=2))
        log = (job_dir / "job.log").open("ab")
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
        proc = subprocess.Popen([sys.executable, "-m", "adapters.jobs", str(job_dir)], stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, start_new_session=True)
        log.close()
        (job_dir / "supervisor.pid").write_text(str(proc.pid))
        return JobStatus(job_id=plan.job_id, state="running", message=f"{plan.kind} job started")

    def status(self, job_id: str) -> JobStatus:
        """The job as its folder says; a dead supervisor without a terminal state is a failed job."""
        job_dir = self.folder(job_id)
        if not (job_dir / "status.json").exists():
            raise NotFoundError(f"job {job_id}", "no such job")
        status = json.loads((job_dir / "status.json").read_text())
        state = status.get("state", "queued")
        if state not in (*TERMINAL, RAN) and not self._supervised(job_dir, started=state != "queued"):
            status = write_status(job_dir, state="failed",
                                  message="the job's supervisor exited without a result (see job.log)")
            state = "failed"
        if self.close is not None and (state == RAN or (state in TERMINAL and not status.get("closed"))):
            status = self._closed(job_dir, status)
            state = status["state"]
        return JobStatus(job_id=job_id, state="running" if state in ("queued", RAN) else state,
                         message=status.get("message", ""), tracking_run_id=status.get("tracking_run_id", ""),
                         model_uri=status.get("model_uri", ""), metrics=status.get("metrics", {}),
                         scores=status.get("scores", {}), lineage=status.get("lineage", {}),
                         trials=status.get("trials", []), report=status.get("report", {}),
                         outputs=status.get("outputs", {}), skipped=status.get("skipped", {}))

    def _closed(self, job_dir: Path, status: dict[str, Any]) -> dict[str, Any]:
        """Collect and close a job whose command ended (once; a retry after a crash collects again, harmlessly)."""
        plan = JobPlan(**json.loads((job_dir / "plan.json").read_text()))
        assert self.close is not None
        updates = self.close(plan, status)
        if status["state"] == RAN:
            updates.setdefault("state", "succeeded")
            updates.setdefault("finished", time.time())
        return write_status(job_dir, closed=True, **updates)

    def _supervised(self, job_dir: Path, started: bool = True) -> bool:
        """True while the job's supervisor runs. Until it has said so (``started``), its command line may still
        be the parent's (between fork and exec), so only its pid is checked."""
        try:
            pid = int((job_dir / "supervisor.pid").read_text())
        except (OSError, ValueError):
            return not started  # submit writes the pid right after the process starts
        return _alive(pid) and (not started or _cmdline_names(pid, job_dir))

    def cancel(self, job_id: str, reason: str) -> JobStatus:
        """Stop the job's process group (the supervisor and the command) and record why."""
        job_dir = self.folder(job_id)
        current = self.status(job_id)
        if current.done:
            return current
        write_status(job_dir, state="canceled", message=f"canceled: {reason}")
        stop_group(job_dir)
        return self.status(job_id)

    def running(self) -> list[Path]:
        """Folders of jobs whose supervisor is still running (``mlops down`` stops them)."""
        if not self.jobs_dir.exists():
            return []
        return [d for d in sorted(self.jobs_dir.iterdir()) if (d / "plan.json").exists()
                and (d / "supervisor.pid").exists() and self._supervised(d)]

    def log_tail(self, job_id: str, lines: int = 20) -> list[str]:
        """The last lines of the job's log."""
        path = self.folder(job_id) / "job.log"
        if not path.exists():
            return []
        with path.open("rb") as handle:
            handle.seek(max(0, path.stat().st_size - 64 * 1024))
            return handle.read().decode("utf-8", "replace").splitlines()[-lines:]


def _cmdline_names(pid: int, job_dir: Path) -> bool:
    """A recorded pid counts as the supervisor only while its command line names the folder (pids are reused)."""
    try:
        return str(job_dir) in Path(f"/proc/{pid}/cmdline").read_bytes().decode("utf-8", "replace")
    except OSError:
        return False


def stop_group(job_dir: Path, sig: int = signal.SIGTERM) -> None:
    """Signal the supervisor's process group (the command runs in it)."""
    try:
        pid = int((job_dir / "supervisor.pid").read_text())
    except (OSError, ValueError):
        return
    if not _cmdline_names(pid, job_dir):
        return
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass
