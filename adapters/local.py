"""The local platform: MLflow (SQLite) for tracking and the registry, scikit-learn jobs in
subprocesses, and the local scoring gateway for serving.

Registering a model publishes ``Microsoft.MachineLearningServices.ModelRegistered`` in Azure
ML's data shape to the custom topic, so the event chain is the same as in Azure. The version is
tagged once the event is out (``ANNOUNCED_TAG``): a registration retried after a crash finds its
version and, if the tag is missing, publishes again (the release dedups per model version).

The state (MLflow's database and artifacts, the training jobs with their copy of the data) is
readable by its owner only: the state directory is 0700, the database 0600.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from mlops.errors import NotFoundError, PlatformError
from mlops.ports import DataRef, DeploymentMetrics, JobStatus, ModelVersion, Operation, TrafficSplit, TrainRequest
from mlops.runs import short_hash
from training.tracking import tracking_lock

from .eventgrid import TopicPublisher
from .landing import head_of_blob

log = logging.getLogger("mlops.platform.local")

ANNOUNCED_TAG = "mlops.announced"  # on a version once its ModelRegistered event went out
_TERMINAL = ("succeeded", "failed", "canceled")

ROOT = Path(__file__).resolve().parents[1]


class LocalPlatform:
    """Implements mlops.ports.Platform on one machine."""

    def __init__(self, state_dir: Path, blob_service: Any = None, tracking_uri: str | None = None,
                 gateway_url: str = "http://127.0.0.1:7081", gateway_key: str | None = None,
                 publisher: TopicPublisher | None = None) -> None:
        self.state_dir = _private_dir(Path(state_dir).resolve())
        self.jobs_dir = _private_dir(self.state_dir / "jobs")
        self.tracking_uri = tracking_uri or f"sqlite:///{self.state_dir / 'mlflow.db'}"
        if self.tracking_uri.startswith("sqlite:///"):  # SQLite keeps a file's mode, and gives it to its -wal/-shm
            _private_file(Path(self.tracking_uri.removeprefix("sqlite:///")))
        self.artifact_root = (self.state_dir / "artifacts").as_uri()
        self.blob_service = blob_service
        self.publisher = publisher
        from .gateway_client import GatewayClient

        self.gateway = GatewayClient(gateway_url, gateway_key)
        self._init_tracking_store()

    def _init_tracking_store(self) -> None:
        """Create or migrate MLflow's SQLite schema once, under a file lock.

        MLflow migrates the database on first use; two processes doing it at once (the host and a
        training job) break the migration, so every user takes this lock first.
        """
        with tracking_lock(self.state_dir):
            self._client().search_experiments(max_results=1)

    @classmethod
    def from_settings(cls, settings: Any, blob_service: Any) -> LocalPlatform:
        """Build from adapters.settings.Settings."""
        publisher = None
        if settings.eventgrid_topic_endpoint and settings.eventgrid_topic_key:
            publisher = TopicPublisher(settings.eventgrid_topic_endpoint, settings.eventgrid_topic_key)
        return cls(Path(settings.state_dir), blob_service, settings.mlflow_tracking_uri, settings.gateway_url,
                   settings.gateway_key, publisher)

    def _client(self) -> Any:
        from mlflow.tracking import MlflowClient

        return MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)

    # -- data ------------------------------------------------------------------------------
    def read_data(self, data: DataRef) -> bytes:
        """Bytes of a landed file: a blob URL (Azurite or Azure) or a file:// URL."""
        return self._read(data, None)

    def read_head(self, data: DataRef, max_bytes: int) -> bytes:
        """See Platform: a ranged download of the blob, or the start of the file."""
        return self._read(data, max_bytes)

    def _read(self, data: DataRef, max_bytes: int | None) -> bytes:
        parsed = urlparse(data.url)
        if parsed.scheme == "file":
            with open(Path(unquote(parsed.path)), "rb") as handle:
                return handle.read(-1 if max_bytes is None else max_bytes)
        if self.blob_service is None:
            raise PlatformError(data.url, "no blob storage configured to read it")
        parts = unquote(parsed.path).lstrip("/").split("/")
        if parts and parts[0] == getattr(self.blob_service, "account_name", None):
            parts = parts[1:]  # Azurite path-style URLs: /<account>/<container>/<blob>
        container, blob = parts[0], "/".join(parts[1:])
        from azure.core.exceptions import ResourceNotFoundError

        client = self.blob_service.get_blob_client(container, blob)
        try:
            if max_bytes is None:
                return bytes(client.download_blob().readall())
            return head_of_blob(client, max_bytes)
        except ResourceNotFoundError as exc:
            raise NotFoundError(data.url, "blob not found") from exc

    # -- training --------------------------------------------------------------------------
    def submit_training(self, request: TrainRequest) -> JobStatus:
        """Start ``python -m training`` on a copy of the data; the same run id gives the same job."""
        job_id = f"{request.model}-{short_hash(request.run_id or request.data.url + request.data.etag)}"
        job_dir = self.jobs_dir / job_id
        if (job_dir / "request.json").exists():
            return self.get_job(job_id)
        job_dir.mkdir(parents=True, exist_ok=True)
        (job_dir / "data.csv").write_bytes(self.read_data(request.data))
        spec = {**request.to_dict(), "job_id": job_id, "tracking_uri": self.tracking_uri,
                "state_dir": str(self.state_dir),
                "artifact_root": self.artifact_root, "code_version": _code_version()}
        (job_dir / "status.json").write_text(json.dumps({"state": "queued"}))
        (job_dir / "request.json").write_text(json.dumps(spec))
        log_file = (job_dir / "job.log").open("ab")
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
        proc = subprocess.Popen([sys.executable, "-m", "training", str(job_dir)], stdout=log_file,
                                stderr=subprocess.STDOUT, env=env, start_new_session=True)
        log_file.close()
        (job_dir / "pid").write_text(str(proc.pid))
        log.info("training job started", extra={"model": request.model, "job_id": job_id, "run_id": request.run_id})
        return JobStatus(job_id=job_id, state="running")

    def get_job(self, job_id: str) -> JobStatus:
        """Read the job's status file; a dead process without a terminal state is a failed job."""
        job_dir = self.jobs_dir / job_id
        if not (job_dir / "status.json").exists():
            raise NotFoundError(f"job {job_id}", "no such training job")
        status = json.loads((job_dir / "status.json").read_text())
        state = status.get("state", "queued")
        if state in ("queued", "running") and not _alive(job_dir):
            state, status["message"] = "failed", "the training process exited without a result (see job.log)"
        if state == "queued":
            state = "running"
        return JobStatus(job_id=job_id, state=state, message=status.get("message", ""),
                         tracking_run_id=status.get("tracking_run_id", ""), model_uri=status.get("model_uri", ""),
                         metrics=status.get("metrics", {}))

    def evaluate(self, model_uri: str, data: DataRef, label: str, test_fraction: float, seed: int) -> dict[str, float]:
        """Metrics on the held-out split (the same split training used)."""
        from training.evaluate import evaluate_csv

        return evaluate_csv(model_uri, self.read_data(data), label, test_fraction, seed)

    # -- registry --------------------------------------------------------------------------
    def _version(self, mv: Any, aliases: list[str] | None = None) -> ModelVersion:
        return ModelVersion(name=mv.name, version=str(mv.version), model_uri=mv.source, tags=dict(mv.tags or {}),
                            aliases=list(aliases if aliases is not None else getattr(mv, "aliases", []) or []),
                            created_at=str(mv.creation_timestamp))

    def register_model(self, model: str, job: JobStatus, tags: dict[str, str]) -> ModelVersion:
        """A registry version from the job's model, with lineage tags, announced by ModelRegistered.

        Idempotent end to end: a retry finds the version the job already has and announces it unless the
        version carries ``ANNOUNCED_TAG``, which is set only after the event went out.
        """
        from mlflow.exceptions import MlflowException

        client = self._client()
        try:
            client.get_registered_model(model)
        except MlflowException:
            client.create_registered_model(model)
        found = [v for v in client.search_model_versions(f"name='{model}'") if v.run_id == job.tracking_run_id]
        if found:  # a retried activity: the version is there; was it announced?
            version = self._version(found[0])
            if version.tags.get(ANNOUNCED_TAG) == "true":
                return version
            log.warning("model version registered but not announced: announcing it now",
                        extra={"model": model, "version": version.version})
        else:
            mv = client.create_model_version(model, job.model_uri, run_id=job.tracking_run_id,
                                             tags={k: str(v) for k, v in tags.items()})
            version = self._version(mv, [])
            log.info("model registered", extra={"model": model, "version": version.version})
        if self.publisher is None:
            log.warning("no custom topic configured: ModelRegistered not published", extra={"model": model})
            return version
        self.publisher.model_registered(version)
        client.set_model_version_tag(model, version.version, ANNOUNCED_TAG, "true")
        return version

    def get_model_version(self, model: str, version: str) -> ModelVersion:
        """One version; NotFoundError if absent."""
        from mlflow.exceptions import MlflowException

        try:
            return self._version(self._client().get_model_version(model, version))
        except MlflowException as exc:
            raise NotFoundError(f"{model} v{version}", "no such model version") from exc

    def list_model_versions(self, model: str) -> list[ModelVersion]:
        """All versions, oldest first."""
        found = self._client().search_model_versions(f"name='{model}'")
        return sorted((self._version(v) for v in found), key=lambda v: int(v.version))

    def get_alias(self, model: str, alias: str) -> ModelVersion | None:
        """The version behind an alias, or None."""
        from mlflow.exceptions import MlflowException

        try:
            return self._version(self._client().get_model_version_by_alias(model, alias))
        except MlflowException:
            return None

    def set_alias(self, model: str, alias: str, version: str) -> None:
        """Point an alias at a version."""
        self._client().set_registered_model_alias(model, alias, version)

    def set_version_tags(self, model: str, version: str, tags: dict[str, str]) -> None:
        """Add tags to a version."""
        client = self._client()
        for key, value in tags.items():
            client.set_model_version_tag(model, version, key, str(value))

    def baseline(self, model: str, version: str) -> list[dict[str, Any]]:
        """See Platform: the sample the training job wrote beside the model."""
        mv = self.get_model_version(model, version)
        path = Path(unquote(urlparse(mv.model_uri).path)).parent / "baseline.json"
        if not path.is_file():
            raise NotFoundError(f"baseline of {model} v{version}", f"the training job wrote none at {path}")
        return list(json.loads(path.read_text()))

    # -- serving (the local scoring gateway) -------------------------------------------------
    def begin_deployment(self, endpoint: str, deployment: str, model: ModelVersion) -> Operation:
        """See Platform."""
        return self.gateway.begin_deployment(endpoint, deployment, model)

    def get_operation(self, operation_id: str) -> Operation:
        """See Platform."""
        return self.gateway.get_operation(operation_id)

    def get_traffic(self, endpoint: str) -> TrafficSplit:
        """See Platform."""
        return self.gateway.get_traffic(endpoint)

    def set_traffic(self, endpoint: str, split: TrafficSplit) -> TrafficSplit:
        """See Platform."""
        return self.gateway.set_traffic(endpoint, split)

    def delete_deployment(self, endpoint: str, deployment: str) -> None:
        """See Platform."""
        self.gateway.delete_deployment(endpoint, deployment)

    def list_deployments(self, endpoint: str) -> dict[str, str]:
        """See Platform."""
        return self.gateway.list_deployments(endpoint)

    def score(self, endpoint: str, deployment: str, rows: list[dict[str, Any]]) -> list[Any]:
        """See Platform."""
        return self.gateway.score(endpoint, deployment, rows)

    def deployment_metrics(self, endpoint: str, deployment: str, start: str, end: str) -> DeploymentMetrics:
        """See Platform."""
        return self.gateway.deployment_metrics(endpoint, deployment, start, end)

    def recent_inputs(self, endpoint: str, deployment: str, start: str, end: str, limit: int) -> list[dict[str, Any]]:
        """See Platform. The gateway's request log names the deployment that answered each row."""
        rows = self.gateway.recent_inputs(endpoint, start, end, limit)
        return [{k: v for k, v in r.items() if k != "__deployment__"} for r in rows
                if r.get("__deployment__", deployment) == deployment]


def running_jobs(state_dir: Path) -> dict[str, int]:
    """The training jobs under a local platform's ``state_dir`` still running: job id -> pid (its group).

    Each job runs in a session of its own (so a stopped Function host leaves it to finish); this is how
    ``mlops down`` finds them. A pid counts only while its command line names the job's folder (pids get reused).
    """
    found = {}
    for pid_file in sorted((Path(state_dir) / "jobs").glob("*/pid")):
        job_dir = pid_file.parent
        try:
            pid = int(pid_file.read_text())
            state = json.loads((job_dir / "status.json").read_text()).get("state")
            args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError):
            continue  # gone, or not ours to read
        if state not in _TERMINAL and str(job_dir).encode() in args and _alive(job_dir):
            found[job_dir.name] = pid
    return found


def _private_dir(path: Path) -> Path:
    """Create ``path`` (and its parents) readable by its owner only; an existing one is made so too."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path


def _private_file(path: Path) -> None:
    """Create ``path`` empty and 0600 if it is missing; make an existing one 0600."""
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    os.chmod(path, 0o600)


def _alive(job_dir: Path) -> bool:
    try:
        pid = int((job_dir / "pid").read_text())
    except (OSError, ValueError):
        return True  # not started yet: the status says queued
    try:
        os.waitpid(pid, os.WNOHANG)  # reap it if it is our finished child
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie child of this process is dead too
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def _code_version() -> str:
    try:
        out = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True, text=True,
                             timeout=5)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"
