"""The local platform: MLflow (SQLite) for tracking and the registry, the local job runner for the
user's training jobs and the evaluation job (adapters/jobs), and the local scoring gateway for serving.

Registering a model publishes ``Microsoft.MachineLearningServices.ModelRegistered`` in Azure
ML's data shape to the custom topic, so the event chain is the same as in Azure. The version is
tagged once the event is out (``ANNOUNCED_TAG``): a registration retried after a crash finds its
version and, if the tag is missing, publishes again (the release dedups per model version).

The state (MLflow's database and artifacts, the training jobs with their copy of the data) is
readable by its owner only: the state directory is 0700, the database 0600.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from mlops.errors import NotFoundError, PlatformError
from mlops.feedback import keyed_by_row
from mlops.ports import (
    DataCheckRequest,
    DataRef,
    DeploymentMetrics,
    EvaluationRequest,
    JobStatus,
    ModelVersion,
    Operation,
    PromptVersion,
    TrafficSplit,
    TrainRequest,
    prompt_name,
)
from mlops.runs import short_hash
from mlops.split import split_csv
from training.tracking import tracking_lock

from .eventgrid import TopicPublisher
from .jobs import JobPlan, JobSpecError, LocalJobRunner, bind_inputs, load_spec, resolve_command
from .jobs.spec import JobSpec
from .jobs.tracking import JobTracking
from .judge import JudgeModel, judge_inputs
from .landing import head_of_blob

log = logging.getLogger("mlops.platform.local")

ANNOUNCED_TAG = "mlops.announced"  # on a version once its ModelRegistered event went out
ROOT = Path(__file__).resolve().parents[1]
EXAMPLE_JOB = ROOT / "examples" / "credit-risk" / "job.yaml"  # a policy without training.job runs this
EVALUATION_JOB = ROOT / "training" / "evaluation" / "job.yaml"
CHAT_EVALUATION_JOB = ROOT / "training" / "evaluation" / "chat_job.yaml"
DATA_CHECK_JOB = ROOT / "training" / "chat" / "check_job.yaml"


class LocalPlatform:
    """Implements mlops.ports.Platform on one machine."""

    def __init__(self, state_dir: Path, blob_service: Any = None, tracking_uri: str | None = None,
                 gateway_url: str = "http://127.0.0.1:7081", gateway_key: str | None = None,
                 publisher: TopicPublisher | None = None, policy_dir: Path | str = "policies",
                 judge: JudgeModel | None = None) -> None:
        self.state_dir = _private_dir(Path(state_dir).resolve())
        self.jobs_dir = _private_dir(self.state_dir / "jobs")
        self.policy_dir = Path(policy_dir)
        self.judge = judge  # none by default: the chat evaluation skips the judge metrics and says why
        self.tracking_uri = tracking_uri or f"sqlite:///{self.state_dir / 'mlflow.db'}"
        if self.tracking_uri.startswith("sqlite:///"):  # SQLite keeps a file's mode, and gives it to its -wal/-shm
            _private_file(Path(self.tracking_uri.removeprefix("sqlite:///")))
        self.artifact_root = (self.state_dir / "artifacts").as_uri()
        self.tracking = JobTracking(self._client, self.state_dir, self.artifact_root)
        self.runner = LocalJobRunner(self.jobs_dir, close=self.tracking.close)
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
            if self.tracking_uri.startswith("sqlite:///"):
                _seed_sqlite_store(Path(self.tracking_uri.removeprefix("sqlite:///")))
            self._client().search_experiments(max_results=1)

    @classmethod
    def from_settings(cls, settings: Any, blob_service: Any) -> LocalPlatform:
        """Build from adapters.settings.Settings."""
        publisher = None
        if settings.eventgrid_topic_endpoint and settings.eventgrid_topic_key:
            publisher = TopicPublisher(settings.eventgrid_topic_endpoint, settings.eventgrid_topic_key)
        return cls(Path(settings.state_dir), blob_service, settings.mlflow_tracking_uri, settings.gateway_url,
                   settings.gateway_key, publisher, settings.policy_dir, judge=settings.judge)

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

    # -- jobs (the local job runner) -------------------------------------------------------------
    def job_path(self, job: str) -> Path:
        """A policy's ``training.job`` resolved against the policy directory ("" is the example job)."""
        return (self.policy_dir / job).resolve() if job else EXAMPLE_JOB

    def submit_training(self, request: TrainRequest) -> JobStatus:
        """Split the landed data once, bind the training part to the user's job and start it.

        The same run id gives the same job. A job YAML that breaks the contract gives a failed status that
        names the field, and nothing runs."""
        job_id = f"{request.model}-{short_hash(request.run_id or request.data.url + request.data.etag)}"
        if self.runner.exists(job_id):
            return self.runner.status(job_id)
        try:
            spec = load_spec(self.job_path(request.job))
            overrides = dict(request.inputs) if request.job else {"algorithm": request.algorithm,
                                                                  "params": json.dumps(request.params)}
            bind_inputs(spec, {}, overrides)  # refuses an input the job does not declare, before any work
        except JobSpecError as exc:
            return JobStatus(job_id=job_id, state="failed", message=str(exc))
        job_dir = self.runner.folder(job_id)
        data_dir = job_dir / "data"
        data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        if request.chat:  # a chat model's examples, whole: it is judged on its fixed evaluation set instead
            (data_dir / "train.jsonl").write_bytes(self.read_data(request.data))
            bound: dict[str, Any] = {"training_data": str(data_dir / "train.jsonl")}
            split_lineage: dict[str, str] = {}
        else:
            try:
                split = split_csv(self.read_data(request.data), request.label, request.test_fraction, request.seed)
            except ValueError as exc:
                return JobStatus(job_id=job_id, state="failed", message=f"the data cannot be split: {exc}")
            (data_dir / "train.csv").write_bytes(split.train)
            (data_dir / "heldout.csv").write_bytes(split.heldout)
            bound, split_lineage = {"training_data": str(data_dir / "train.csv"), "label": request.label}, \
                split.lineage()
        outputs = {name: str(job_dir / "outputs" / name) for name in (spec.raw.get("outputs") or {})}
        inputs = bind_inputs(spec, bound, overrides)
        command = resolve_command(spec, inputs, None if spec.sweep else outputs)  # a sweep's trials: their own
        lineage = {"job_yaml": str(spec.path), "job_yaml_sha256": spec.yaml_sha256, **code_lineage(spec),
                   **split_lineage}
        tags = {"data_url": request.data.url, "data_etag": request.data.etag, "data_sha256": request.data.sha256,
                "run_id": request.run_id, "policy_hash": request.policy_hash, **lineage}
        run_id, experiment_id = self.tracking.start(request.model, job_id, "training", tags,
                                                    {k: v for k, v in inputs.items() if k != "training_data"})
        plan = JobPlan(job_id=job_id, kind="training", command=command,
                       cwd=str(spec.code), model=request.model, tracking_uri=self.tracking_uri,
                       tracking_run_id=run_id, experiment_id=experiment_id, outputs=outputs,
                       model_output=spec.output, requirements=spec.pip_requirements(),
                       env_cache=str(self.jobs_dir / ".envs"), timeout_seconds=request.timeout_minutes * 60,
                       lineage=lineage, sweep=spec.sweep)
        self.runner.submit(plan)
        log.info("training job started", extra={"model": request.model, "job_id": job_id, "run_id": request.run_id})
        return self.runner.status(job_id)

    def submit_data_check(self, request: DataCheckRequest) -> JobStatus:
        """A chat model's data check job (training/chat/check_job.yaml) on a copy of the landed examples."""
        job_id = f"{request.model}-{short_hash(request.run_id or request.data.url + request.data.etag)}-check"
        if self.runner.exists(job_id):
            return self.runner.status(job_id)
        spec = load_spec(DATA_CHECK_JOB, contract=False)
        job_dir = self.runner.folder(job_id)
        data_dir = job_dir / "data"
        data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        (data_dir / "landed.jsonl").write_bytes(self.read_data(request.data))
        outputs = {name: str(job_dir / "outputs" / name) for name in ("report", "data")}
        inputs = bind_inputs(spec, {}, {"data": str(data_dir / "landed.jsonl"), "pii": request.pii,
                                        "max_tokens": request.max_tokens})
        run_id, experiment_id = self.tracking.start(request.model, job_id, "check",
                                                    {"data_url": request.data.url, "run_id": request.run_id},
                                                    {"pii": request.pii, "max_tokens": request.max_tokens})
        plan = JobPlan(job_id=job_id, kind="check", command=resolve_command(spec, inputs, outputs),
                       cwd=str(spec.code), model=request.model, tracking_uri=self.tracking_uri,
                       tracking_run_id=run_id, experiment_id=experiment_id, outputs=outputs,
                       timeout_seconds=request.timeout_minutes * 60)
        log.info("data check job started", extra={"model": request.model, "job_id": job_id})
        return self.runner.submit(plan)

    def submit_evaluation(self, request: EvaluationRequest) -> JobStatus:
        """The evaluation job on the training job's held-out part (see training/evaluation/job.yaml), or a chat
        model's on its fixed evaluation set (training/evaluation/chat_job.yaml)."""
        job_id = f"{request.training_job}-eval"
        if self.runner.exists(job_id):
            return self.runner.status(job_id)
        if request.eval_set:
            return self._submit_chat_evaluation(job_id, request)
        data_dir = self.runner.folder(request.training_job) / "data"
        if not (data_dir / "heldout.csv").is_file():
            raise NotFoundError(f"job {request.training_job}", "no held-out part recorded for it")
        spec = load_spec(EVALUATION_JOB, contract=False)
        job_dir = self.runner.folder(job_id)
        outputs = {"evaluation": str(job_dir / "outputs" / "evaluation")}
        inputs = bind_inputs(spec, {}, {
            "heldout": str(data_dir / "heldout.csv"), "train": str(data_dir / "train.csv"), "label": request.label,
            "model_type": request.model_type, "candidate": request.candidate_uri,
            "candidate_run": request.candidate_run or "none", "champion": request.champion_uri or "none",
            "baseline_rows": request.baseline_rows})
        run_id, experiment_id = self.tracking.start(request.model, job_id, "evaluation",
                                                    {"training_job": request.training_job},
                                                    {"model_type": request.model_type})
        plan = JobPlan(job_id=job_id, kind="evaluation", command=resolve_command(spec, inputs, outputs),
                       cwd=str(spec.code), model=request.model, tracking_uri=self.tracking_uri,
                       tracking_run_id=run_id, experiment_id=experiment_id, outputs=outputs,
                       env_cache=str(self.jobs_dir / ".envs"), timeout_seconds=request.timeout_minutes * 60)
        log.info("evaluation job started", extra={"model": request.model, "job_id": job_id})
        return self.runner.submit(plan)

    def _submit_chat_evaluation(self, job_id: str, request: EvaluationRequest) -> JobStatus:
        eval_set = (self.policy_dir / request.eval_set).resolve()
        if not eval_set.is_file():
            raise NotFoundError(f"evaluation set {request.eval_set}", f"no such file under {self.policy_dir}")
        spec = load_spec(CHAT_EVALUATION_JOB, contract=False)
        job_dir = self.runner.folder(job_id)
        data_dir = job_dir / "data"
        data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        content = eval_set.read_bytes()  # a copy: the set the scores are about, even if the file changes later
        (data_dir / "eval.jsonl").write_bytes(content)
        prompts: dict[str, str] = {}
        for who, template in (("candidate_prompt", request.candidate_prompt),
                              ("champion_prompt", request.champion_prompt)):
            if template:  # the job reads a template from a file (an input Azure ML would upload)
                (data_dir / f"{who}.json").write_text(template, encoding="utf-8")
                prompts[who] = str(data_dir / f"{who}.json")
        outputs = {"evaluation": str(job_dir / "outputs" / "evaluation")}
        inputs = bind_inputs(spec, {}, {"eval_set": str(data_dir / "eval.jsonl"), "candidate": request.candidate_uri,
                                        "champion": request.champion_uri or "none",
                                        "max_new_tokens": request.max_new_tokens, **prompts,
                                        **judge_inputs(self.judge, request.judge_metrics)})
        lineage = {"eval_set": request.eval_set, "eval_set_sha256": hashlib.sha256(content).hexdigest()}
        run_id, experiment_id = self.tracking.start(request.model, job_id, "evaluation",
                                                    {"training_job": request.training_job, **lineage},
                                                    {"model_type": request.model_type})
        plan = JobPlan(job_id=job_id, kind="evaluation", command=resolve_command(spec, inputs, outputs),
                       cwd=str(spec.code), model=request.model, tracking_uri=self.tracking_uri,
                       tracking_run_id=run_id, experiment_id=experiment_id, outputs=outputs, lineage=lineage,
                       timeout_seconds=request.timeout_minutes * 60)
        log.info("chat evaluation job started", extra={"model": request.model, "job_id": job_id})
        return self.runner.submit(plan)

    def get_job(self, job_id: str) -> JobStatus:
        """See Platform: the job's folder says (a dead supervisor without a result is a failed job)."""
        return self.runner.status(job_id)

    def cancel_job(self, job_id: str, reason: str) -> JobStatus:
        """See Platform."""
        return self.runner.cancel(job_id, reason)

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

    # -- prompts (MLflow's prompt registry) -------------------------------------------------
    # MlflowClient's prompt methods, not mlflow.genai's: those take no tracking or registry URI and use the
    # process-wide one, which two platforms in one process would share. MLflow keeps prompts beside models in the
    # registry (https://mlflow.org/docs/latest/genai/prompt-registry/), so a prompt has a name of its own.
    def _prompt(self, pv: Any) -> PromptVersion:
        template = pv.template
        if not isinstance(template, list):  # a text prompt registered by hand: one user message
            template = [{"role": "user", "content": str(template)}]
        return PromptVersion(name=pv.name, version=str(pv.version),
                             template=[{"role": str(m["role"]), "content": str(m["content"])} for m in template],
                             message=pv.commit_message or "", aliases=sorted(pv.aliases or []),
                             tags={k: str(v) for k, v in (pv.tags or {}).items()},
                             created_at=str(pv.creation_timestamp or ""))

    def register_prompt(self, model: str, template: list[dict[str, str]], message: str,
                        tags: dict[str, str]) -> PromptVersion:
        """See Platform: a new version of ``prompt_name(model)`` (the prompt is created with its first)."""
        from mlflow.exceptions import MlflowException

        name = prompt_name(model)
        try:
            pv = self._client().register_prompt(name, [dict(m) for m in template], commit_message=message or None,
                                                tags={k: str(v) for k, v in tags.items()} or None)
        except MlflowException as exc:
            raise PlatformError(f"prompt {name}", str(exc.message)) from exc
        log.info("prompt registered", extra={"model": model, "version": str(pv.version)})
        return self._prompt(pv)

    def get_prompt(self, model: str, version: str = "", alias: str = "") -> PromptVersion | None:
        """See Platform: by ``version``, else by ``alias``, else the latest; None when there is none."""
        from mlflow.exceptions import MlflowException

        name, client = prompt_name(model), self._client()
        try:
            if version:
                pv = client.get_prompt_version(name, version)
            elif alias:
                pv = client.get_prompt_version_by_alias(name, alias)
            else:
                found = self.list_prompts(model)
                return found[-1] if found else None
        except MlflowException:  # no such prompt, version or alias
            return None
        return self._prompt(pv) if pv is not None else None

    def list_prompts(self, model: str) -> list[PromptVersion]:
        """See Platform (each with its aliases: a search's versions carry none, so each is read)."""
        from mlflow.exceptions import MlflowException

        name, client = prompt_name(model), self._client()
        try:
            found, token = [], None
            for _ in range(10_000):  # bounded: pages of 1000
                page = client.search_prompt_versions(name, max_results=1000, page_token=token)
                found.extend(page)
                token = page.token
                if not token:
                    break
        except MlflowException:  # no prompt of that name yet
            return []
        versions = [client.get_prompt_version(name, v.version) for v in found]
        return sorted((self._prompt(v) for v in versions if v is not None), key=lambda p: int(p.version))

    def set_prompt_alias(self, model: str, alias: str, version: str) -> None:
        """See Platform; NotFoundError when the version does not exist."""
        from mlflow.exceptions import MlflowException

        name = prompt_name(model)
        try:
            self._client().set_prompt_alias(name, alias, int(version))
        except (MlflowException, ValueError) as exc:
            raise NotFoundError(f"prompt {name} v{version}", "no such prompt version") from exc

    # -- serving (the local scoring gateway) -------------------------------------------------
    def begin_deployment(self, endpoint: str, deployment: str, model: ModelVersion,
                         prompt: PromptVersion | None = None) -> Operation:
        """See Platform: the gateway deployment carries the prompt as its default ``prompt`` param."""
        return self.gateway.begin_deployment(endpoint, deployment, model, prompt)

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

    def predictions_by_id(self, endpoint: str, deployment: str, start: str, end: str,
                          limit: int) -> dict[str, Any]:
        """See Platform. The gateway's request log keeps each request's id (``x-request-id``) with its rows, in
        order, and the deployment that answered."""
        by_request: dict[str, list[Any]] = {}
        for row in self.gateway.recent_inputs(endpoint, start, end, limit):
            rid = row.get("__request_id__")
            if rid and row.get("__deployment__") == deployment:
                by_request.setdefault(str(rid), []).append(row.get("__prediction__"))
        return {keyed_by_row(rid, i, len(answers)): answer
                for rid, answers in by_request.items() for i, answer in enumerate(answers)}

    def units_by_id(self, endpoint: str, start: str, end: str, limit: int) -> dict[str, str]:
        """See Platform: the gateway logs the unit header's value with each request while the endpoint is sticky."""
        return {str(row["__request_id__"]): str(row["__unit__"]) for row in self.gateway.recent_inputs(
            endpoint, start, end, limit) if row.get("__request_id__") and row.get("__unit__")}


def running_jobs(state_dir: Path) -> dict[str, int]:
    """The jobs under a local platform's ``state_dir`` still running: job id -> pid of its supervisor (and group).

    Each job runs in a session of its own (so a stopped Function host leaves it to finish); this is how
    ``mlops down`` finds them.
    """
    runner = LocalJobRunner(Path(state_dir) / "jobs")
    return {d.name: int((d / "supervisor.pid").read_text()) for d in runner.running()}


def code_lineage(spec: JobSpec) -> dict[str, str]:
    """The job's ``code`` folder: its content hash, and the git commit when it sits in a git work tree."""
    import hashlib

    digest = hashlib.sha256()
    for path in sorted(p for p in spec.code.rglob("*") if p.is_file() and "__pycache__" not in p.parts
                       and ".git" not in p.parts):
        digest.update(str(path.relative_to(spec.code)).encode() + b"\0" + path.read_bytes() + b"\0")
    found = {"code_sha256": digest.hexdigest()}
    try:
        out = subprocess.run(["git", "-C", str(spec.code), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=5)
        dirty = subprocess.run(["git", "-C", str(spec.code), "status", "--porcelain", "--", "."],
                               capture_output=True, text=True, timeout=5)
        if out.returncode == 0:
            found["code_git_commit"] = out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        pass
    return found


def _private_dir(path: Path) -> Path:
    """Create ``path`` (and its parents) readable by its owner only; an existing one is made so too."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path


def _seed_sqlite_store(db: Path) -> None:
    """Give a new, empty MLflow database the tables of a template made once per MLflow version.

    Creating MLflow's tables runs all of its Alembic migrations, 3.3 s on a 2-core machine, paid by every new
    state directory (and every test stack); a copy of a freshly migrated empty database is the same database.
    Only the Default experiment's artifact location names the place it was made, so it is set as MLflow would.
    """
    if db.stat().st_size:
        return
    import mlflow
    from mlflow.tracking import MlflowClient

    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mlops-durable"
    template = _private_dir(cache) / f"mlflow-{mlflow.__version__}.db"
    if not template.exists():
        building = template.with_name(f"{template.name}.{os.getpid()}.tmp")
        MlflowClient(tracking_uri=f"sqlite:///{building}").search_experiments(max_results=1)
        os.replace(building, template)
    with sqlite3.connect(template) as source, sqlite3.connect(db) as target:
        source.backup(target)  # the pages, not the file: db keeps its mode (0600)
        target.execute("UPDATE experiments SET artifact_location = ? WHERE experiment_id = 0",
                       ((Path.cwd() / "mlruns" / "0").as_posix(),))


def _private_file(path: Path) -> None:
    """Create ``path`` empty and 0600 if it is missing; make an existing one 0600."""
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    os.chmod(path, 0o600)
