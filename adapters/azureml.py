"""The Azure ML platform: azure-ai-ml ``MLClient`` with ``DefaultAzureCredential`` (managed identity in Azure).

Mapping of the port onto Azure ML:
  * jobs: the user's job YAML, loaded with ``azure.ai.ml.load_job`` and submitted with
    ``jobs.create_or_update`` under a name derived from the run (a retried submission finds its job). The
    Function App splits the landed blob once (``mlops.split``) and uploads both parts to the landing
    account's ``mlops-jobs`` container; the training part is bound to ``training_data`` as a ``uri_file``.
    The evaluation job (training/evaluation/job.yaml) gets the held-out part, and candidate and champion as
    ``mlflow_model`` inputs; its scores come back through ``jobs.download`` of its ``evaluation`` output. Jobs
    are polled (never waited on inside an activity) and canceled with ``jobs.begin_cancel``;
  * chat models: the data check job (training/chat/check_job.yaml) gets a copy of the landed examples; its
    ``report`` output's report.json comes back through ``jobs.download``, and the data it wrote is handed on as
    an ``azureml://jobs/<job>/outputs/data/paths/train.jsonl`` URI, which the fine-tune job takes as its
    ``uri_file`` ``training_data`` as it is (no split, no label). The chat evaluation job
    (training/evaluation/chat_job.yaml) gets a copy of the fixed evaluation set from the policy directory and the
    judge model (MLOPS_JUDGE_*) with the policy's judge metrics as literal inputs, and its scores.json and
    answers.json come back the same way, with the set's sha256;
  * registry: MLflow-format model assets with lineage tags. Azure ML's registry has no aliases,
    so an alias is a tag ``alias.<name>=true`` kept on exactly one version;
  * serving: ``ManagedOnlineDeployment`` on a managed online endpoint, ``traffic`` and
    ``mirror_traffic`` on the endpoint, validated against Azure ML's limits before sending
    (https://learn.microsoft.com/azure/machine-learning/how-to-safely-rollout-online-endpoints);
  * health: the endpoint's Azure Monitor metrics by deployment (requests by status code class, latency), and
    the inputs and predictions Azure ML's model data collector logs to the workspace's blob datastore;
  * drift baseline: ``baseline.json``, logged by the evaluation job to the training job's MLflow run.

``ModelRegistered`` is published by Azure ML itself through the workspace's Event Grid system
topic, so ``register_model`` publishes nothing; a retried registration finds the version the first
attempt created (by its ``training_job`` tag) instead of making a second one.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import tempfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from io import StringIO
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlparse

import yaml

from gateway import traffic as split_rules  # Azure ML's split rules, shared with the local gateway
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
)
from mlops.runs import short_hash
from mlops.scores import read_scores
from mlops.split import split_csv

from .identity import WithIdentity
from .judge import JudgeModel, judge_inputs

log = logging.getLogger("mlops.platform.azureml")
T = TypeVar("T")

ROOT = Path(__file__).resolve().parents[1]
ALIAS_TAG = "alias.{}"
JOBS_CONTAINER = "mlops-jobs"  # the split parts, per job, in the landing account
EXAMPLE_JOB = ROOT / "examples" / "credit-risk" / "job.yaml"
EVALUATION_JOB = ROOT / "training" / "evaluation" / "job.yaml"
CHAT_EVALUATION_JOB = ROOT / "training" / "evaluation" / "chat_job.yaml"
DATA_CHECK_JOB = ROOT / "training" / "chat" / "check_job.yaml"
KIND_TAG = "mlops_job_kind"  # on our own jobs: "check" or "chat-evaluation", so get_job knows what to collect
# A file inside a finished job's named output, as another job's input: the "job" path form Azure ML accepts for
# data and model inputs (azure-ai-ml's own JOB_URI_FORMAT, azure/ai/ml/constants/_common.py; listed with the other
# supported paths in https://learn.microsoft.com/azure/machine-learning/how-to-manage-models)
JOB_OUTPUT_PATH = "azureml://jobs/{job}/outputs/{output}/paths/{path}"

# Azure ML job statuses -> the port's states.
# https://learn.microsoft.com/azure/machine-learning/how-to-track-monitor-analyze-runs
_JOB_STATES = {
    "NotStarted": "queued", "Queued": "queued", "Preparing": "running", "Provisioning": "running",
    "Starting": "running", "Running": "running", "Finalizing": "running", "Completed": "succeeded",
    "Failed": "failed", "NotResponding": "failed", "Canceled": "canceled", "CancelRequested": "canceled",
    "Paused": "running",
}
_PROVISIONING = {"Creating": "running", "Updating": "running", "Succeeded": "succeeded", "Failed": "failed",
                 "Canceled": "failed", "Deleting": "running"}

# Traffic metrics of a managed online endpoint in Azure Monitor, split by its ``deployment`` dimension; requests
# also by ``statusCodeClass`` (2xx, 4xx, 5xx). The deployment resource itself has only resource metrics (CPU,
# memory, disk, capacity, data collection events). https://learn.microsoft.com/azure/azure-monitor/reference/
# supported-metrics/microsoft-machinelearningservices-workspaces-onlineendpoints-metrics
METRICS_NAMESPACE = "Microsoft.MachineLearningServices/workspaces/onlineEndpoints"
LATENCY_METRICS = ("RequestLatency_P50", "RequestLatency_P95", "RequestLatency_P99")
REQUESTS_METRIC = "RequestsPerMinute"

# Azure ML's model data collector: every deployment logs its inputs and outputs (JSONL CloudEvents, one folder per
# hour) to the workspace's default blob datastore under modelDataCollector/<endpoint>/<deployment>/<collection>/
# yyyy/MM/dd/HH/. MLflow models are instrumented by Azure ML itself (no scoring script).
# https://learn.microsoft.com/azure/machine-learning/how-to-collect-production-data
COLLECTIONS = ("model_inputs", "model_outputs")
COLLECTOR_ROOT = "modelDataCollector"
REQUEST_ID_HEADER = "x-request-id"  # the caller's id, kept with each collected record (correlationid)
MAX_COLLECTED_ROWS = 5000  # what one analysis reads at most
MAX_COLLECTED_HOURS = 7 * 24  # the hour folders one window may span
PREDICTION = "__prediction__"  # the key mlops.drift reads a row's prediction under
REQUEST_ID = "__request_id__"  # the request's id, to join labels that arrive later


@dataclass(frozen=True)
class AzureMLConfig:
    """Where the workspace is and how jobs and deployments run."""

    subscription_id: str
    resource_group: str
    workspace: str
    compute: str
    environment: str
    instance_type: str = "Standard_DS3_v2"
    instance_count: int = 1
    policy_dir: str = "policies"  # where a policy's training.job is relative to
    retries: int = 3  # azure-core's retry policy inside the SDK clients: throttling and 5xx, Retry-After honoured
    region: str = "westeurope"  # the workspace's region: Azure Monitor's regional metrics endpoint
    judge: JudgeModel | None = None  # the Azure OpenAI deployment the chat evaluation job judges answers with


RETRYABLE_STATUS = (408, 429, 500, 502, 503, 504)  # azure-core's RetryPolicy's own list
_UPDATING = ("updating", "creating", "provisioning")  # an endpoint's provisioning_state while a change is applied


def _jobs_folder(data_url: str, job: str) -> str:
    """``<account>/mlops-jobs/<job>`` beside the landed blob (Azurite's path-style URLs keep their account)."""
    parsed = urlparse(data_url)
    parts = parsed.path.lstrip("/").split("/")
    account = f"/{parts[0]}" if parsed.hostname in ("127.0.0.1", "localhost") and parts else ""
    return f"{parsed.scheme}://{parsed.netloc}{account}/{JOBS_CONTAINER}/{job}"


def _json_file(job_id: str, folder: Path, name: str) -> Any:
    """The one ``name`` under a downloaded output folder, parsed; PlatformError naming it if it is missing."""
    found = sorted(folder.rglob(name))
    if not found:
        raise PlatformError(f"job {job_id}", f"its output holds no {name}")
    try:
        return json.loads(found[0].read_text(encoding="utf-8"))
    except ValueError as exc:
        raise PlatformError(f"job {job_id}", f"its {name} is not JSON: {exc}") from exc


def validate_split(deployments: set[str], split: TrafficSplit) -> None:
    """Azure ML's rules for traffic and mirror traffic (``gateway.traffic``), checked before anything is sent."""
    try:
        split_rules.validate_split(deployments, split.traffic, split.mirror_traffic)
    except split_rules.SplitError as exc:
        raise PlatformError(exc.field, exc.message) from exc


def _no_prompts() -> PlatformError:
    """What every prompt call answers here: prompt releases run on the local platform only, for now."""
    return PlatformError("prompts", "prompt versions are not supported on Azure ML yet: docs/llmops.md")


class AzureMLPlatform(WithIdentity):
    """Implements mlops.ports.Platform on an Azure ML workspace."""

    def __init__(self, config: AzureMLConfig, ml_client: Any = None, metrics_client: Any = None,
                 credential: Any = None, blobs: Callable[[str], Any] | None = None,
                 containers: Callable[[str], Any] | None = None) -> None:
        self.config = config
        self._credential = credential
        self._ml = ml_client
        self._metrics = metrics_client
        self._blobs = blobs  # blob URL -> a BlobClient (tests give a recording fake)
        self._containers = containers  # container URL -> a ContainerClient (likewise)
        self._collector: Any = None  # the data collector's container, found once
        self._baselines: dict[tuple[str, str], list[dict[str, Any]]] = {}

    @classmethod
    def from_settings(cls, settings: Any) -> AzureMLPlatform:
        """Build from adapters.settings.Settings (the azureml settings are required there)."""
        return cls(AzureMLConfig(settings.azureml_subscription_id, settings.azureml_resource_group,
                                 settings.azureml_workspace, settings.azureml_compute, settings.azureml_environment,
                                 policy_dir=settings.policy_dir, judge=settings.judge))

    # -- clients ---------------------------------------------------------------------------

    @property
    def ml(self) -> Any:
        """The workspace's MLClient."""
        if self._ml is None:
            from azure.ai.ml import MLClient

            c = self.config
            # one retry layer in the SDK: azure-core's RetryPolicy (408, 429, 500, 502, 503, 504; Retry-After
            # honoured) with a bounded total, so an activity never sleeps long; what still fails transiently is
            # retried by the orchestrator with durable timers (docs/decisions.md)
            self._ml = MLClient(self.credential, c.subscription_id, c.resource_group, c.workspace,
                                retry_total=c.retries, retry_backoff_factor=1.0, retry_backoff_max=20)
        return self._ml

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        """One Azure call, its errors named. No retry here: azure-core's policy in the client has retried, and
        what is still transient (408, 429, 5xx) is flagged ``retryable`` for the orchestrator's durable retries."""
        from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ResourceNotFoundError

        try:
            return fn()
        except ResourceNotFoundError as exc:
            raise NotFoundError(what, "not found in the Azure ML workspace") from exc
        except ClientAuthenticationError as exc:
            raise PlatformError(what, f"the app's identity could not authenticate: {exc.message}") from exc
        except HttpResponseError as exc:
            status = getattr(exc, "status_code", None)
            raise PlatformError(what, f"HTTP {status}: {exc.message}", retryable=status in RETRYABLE_STATUS) from exc

    # -- data ------------------------------------------------------------------------------
    def _blob(self, url: str) -> Any:
        if self._blobs is not None:
            return self._blobs(url)
        from azure.storage.blob import BlobClient

        return BlobClient.from_blob_url(url, credential=self.credential)

    def read_data(self, data: DataRef) -> bytes:
        """Read the landed blob with the app's identity."""
        client = self._blob(data.url)
        return bytes(self._call(f"blob {data.url}", lambda: client.download_blob().readall()))

    def read_head(self, data: DataRef, max_bytes: int) -> bytes:
        """The first ``max_bytes`` of the landed blob: one ranged download with the app's identity."""
        from .landing import head_of_blob  # the same ranged read as the local platform's

        client = self._blob(data.url)
        return self._call(f"blob {data.url}", lambda: head_of_blob(client, max_bytes))

    # -- jobs ----------------------------------------------------------------------------------
    def _job_entity(self, path: Path, name: str, inputs: dict[str, Any], experiment: str,
                    tags: dict[str, str]) -> Any:
        """The job YAML at ``path`` with our inputs, name, experiment and tags, as load_job builds it."""
        from azure.ai.ml import load_job

        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        raw["inputs"] = {**(raw.get("inputs") or {}), **inputs}
        raw.update(name=name, experiment_name=experiment, display_name=name,
                   tags={**(raw.get("tags") or {}), **tags})
        raw.setdefault("compute", f"azureml:{self.config.compute}")
        (raw["trial"] if raw.get("type") == "sweep" else raw).setdefault("environment", self.config.environment)
        return load_job(StringIO(yaml.safe_dump(raw)), relative_origin=str(path))

    def _upload(self, url: str, content: bytes) -> None:
        client = self._blob(url)
        self._call(f"blob {url}", lambda: client.upload_blob(content, overwrite=True))

    def submit_training(self, request: TrainRequest) -> JobStatus:
        """Split the landed blob (a chat model's examples: whole), upload the parts, submit the user's job; return
        at once."""
        from .jobs import JobSpecError, bind_inputs, load_spec

        name = f"{request.model}-{short_hash(request.run_id or request.data.url + request.data.etag)}"
        try:
            spec = load_spec(Path(self.config.policy_dir) / request.job if request.job else EXAMPLE_JOB)
            overrides = dict(request.inputs) if request.job else {"algorithm": request.algorithm,
                                                                  "params": json.dumps(request.params)}
            bind_inputs(spec, {}, overrides)
        except JobSpecError as exc:
            return JobStatus(job_id=name, state="failed", message=str(exc))
        if request.chat:
            inputs, lineage = self._chat_training_data(request, name)
        else:
            try:
                split = split_csv(self.read_data(request.data), request.label, request.test_fraction, request.seed)
            except ValueError as exc:
                return JobStatus(job_id=name, state="failed", message=f"the data cannot be split: {exc}")
            folder = _jobs_folder(request.data.url, name)
            self._upload(f"{folder}/train.csv", split.train)
            self._upload(f"{folder}/heldout.csv", split.heldout)
            inputs = {"training_data": {"type": "uri_file", "path": f"{folder}/train.csv"}}
            if "label" in spec.inputs:
                inputs["label"] = request.label
            lineage = {"split_folder": folder, **split.lineage()}
        tags = {"run_id": request.run_id, "policy_hash": request.policy_hash, "data_url": request.data.url,
                "data_etag": request.data.etag, "data_sha256": request.data.sha256,
                "model_output": spec.output, "job_yaml_sha256": spec.yaml_sha256, **lineage}
        entity = self._job_entity(spec.path, name, {**overrides, **inputs}, request.model, tags)
        job = self._call(f"training job for {request.model}", lambda: self.ml.jobs.create_or_update(entity))
        return JobStatus(job_id=job.name, state=_JOB_STATES.get(job.status, "queued"))  # type: ignore[arg-type]

    def _chat_training_data(self, request: TrainRequest, name: str) -> tuple[dict[str, Any], dict[str, str]]:
        """A chat model's examples, whole, as ``training_data`` (no split, no label): what its data check job
        wrote is bound where it is (an ``azureml://jobs/...`` URI); a blob is copied beside the job as
        train.jsonl. The lineage names the landing account's folder its evaluation set will be copied to."""
        url = request.data.url
        if url.startswith("azureml://"):
            checked = url.removeprefix("azureml://jobs/").split("/", 1)[0]
            check = self._call(f"job {checked}", lambda: self.ml.jobs.get(checked))
            folder = (check.tags or {}).get("data_folder", "")
            if not folder:
                raise NotFoundError(f"job {checked}", "it records no folder in the landing account (data_folder tag)")
            return ({"training_data": {"type": "uri_file", "path": url}},
                    {"data_folder": f"{folder.rsplit('/', 1)[0]}/{name}"})
        folder = _jobs_folder(url, name)
        self._upload(f"{folder}/train.jsonl", self.read_data(request.data))
        return {"training_data": {"type": "uri_file", "path": f"{folder}/train.jsonl"}}, {"data_folder": folder}

    def submit_data_check(self, request: DataCheckRequest) -> JobStatus:
        """A chat model's data check job (training/chat/check_job.yaml) on a copy of the landed examples uploaded
        beside it; return at once (the same run id names the same job)."""
        name = f"{request.model}-{short_hash(request.run_id or request.data.url + request.data.etag)}-check"
        folder = _jobs_folder(request.data.url, name)
        self._upload(f"{folder}/landed.jsonl", self.read_data(request.data))
        inputs = {"data": {"type": "uri_file", "path": f"{folder}/landed.jsonl"}, "pii": request.pii,
                  "max_tokens": request.max_tokens}
        tags = {KIND_TAG: "check", "run_id": request.run_id, "data_url": request.data.url,
                "data_etag": request.data.etag, "data_sha256": request.data.sha256, "data_folder": folder}
        entity = self._job_entity(DATA_CHECK_JOB, name, inputs, request.model, tags)
        job = self._call(f"data check job for {request.model}", lambda: self.ml.jobs.create_or_update(entity))
        return JobStatus(job_id=job.name, state=_JOB_STATES.get(job.status, "queued"))  # type: ignore[arg-type]

    def submit_evaluation(self, request: EvaluationRequest) -> JobStatus:
        """The evaluation job on the training job's held-out part (a chat model's: on its fixed evaluation set),
        candidate and champion as MLflow models."""
        if request.eval_set:
            return self._submit_chat_evaluation(request)
        trained = self._call(f"job {request.training_job}", lambda: self.ml.jobs.get(request.training_job))
        folder = (trained.tags or {}).get("split_folder")
        if not folder:
            raise NotFoundError(f"job {request.training_job}", "it records no split of the data (split_folder tag)")
        inputs: dict[str, Any] = {
            "heldout": {"type": "uri_file", "path": f"{folder}/heldout.csv"},
            "train": {"type": "uri_file", "path": f"{folder}/train.csv"},
            "candidate": {"type": "mlflow_model", "path": request.candidate_uri},
            "candidate_run": request.candidate_run or "none", "label": request.label,
            "model_type": request.model_type, "baseline_rows": request.baseline_rows}
        if request.champion_uri:
            inputs["champion"] = {"type": "mlflow_model", "path": request.champion_uri}
        entity = self._job_entity(EVALUATION_JOB, f"{request.training_job}-eval", inputs, request.model,
                                  {"training_job": request.training_job})
        job = self._call(f"evaluation job for {request.model}", lambda: self.ml.jobs.create_or_update(entity))
        return JobStatus(job_id=job.name, state=_JOB_STATES.get(job.status, "queued"))  # type: ignore[arg-type]

    def _submit_chat_evaluation(self, request: EvaluationRequest) -> JobStatus:
        """training/evaluation/chat_job.yaml on a copy of the evaluation set (uploaded beside the job, its sha256
        recorded), candidate and champion as MLflow models, and the judge (when configured) with the metrics the
        policy asks of it; the job calls the judge as its compute's managed identity."""
        eval_set = (Path(self.config.policy_dir) / request.eval_set).resolve()
        if not eval_set.is_file():
            raise NotFoundError(f"evaluation set {request.eval_set}", f"no such file under {self.config.policy_dir}")
        trained = self._call(f"job {request.training_job}", lambda: self.ml.jobs.get(request.training_job))
        folder = (trained.tags or {}).get("data_folder")
        if not folder:
            raise NotFoundError(f"job {request.training_job}", "it records no folder for its data (data_folder tag)")
        name = f"{request.training_job}-eval"
        content = eval_set.read_bytes()  # a copy: the set the scores are about, even if the file changes later
        folder = f"{folder.rsplit('/', 1)[0]}/{name}"
        self._upload(f"{folder}/eval.jsonl", content)
        inputs: dict[str, Any] = {"eval_set": {"type": "uri_file", "path": f"{folder}/eval.jsonl"},
                                  "candidate": {"type": "mlflow_model", "path": request.candidate_uri},
                                  "max_new_tokens": request.max_new_tokens,
                                  **judge_inputs(self.config.judge, request.judge_metrics)}
        if request.champion_uri:
            inputs["champion"] = {"type": "mlflow_model", "path": request.champion_uri}
        tags = {KIND_TAG: "chat-evaluation", "training_job": request.training_job, "eval_set": request.eval_set,
                "eval_set_sha256": hashlib.sha256(content).hexdigest()}
        entity = self._job_entity(CHAT_EVALUATION_JOB, name, inputs, request.model, tags)
        job = self._call(f"evaluation job for {request.model}", lambda: self.ml.jobs.create_or_update(entity))
        return JobStatus(job_id=job.name, state=_JOB_STATES.get(job.status, "queued"))  # type: ignore[arg-type]

    def get_job(self, job_id: str) -> JobStatus:
        """Poll a job. A finished training job's candidate is its model output; a finished evaluation job's
        scores (a chat evaluation's answers too) are read from its ``evaluation`` output, a data check job's
        report from its ``report`` output (the Function App loads no model and no MLflow)."""
        job = self._call(f"job {job_id}", lambda: self.ml.jobs.get(job_id))
        status = _text(job.status)
        state = _JOB_STATES.get(status, "running")
        tags = dict(job.tags or {})
        if state != "succeeded":
            return JobStatus(job_id=job_id, state=state, message=status, tracking_run_id=job_id)  # type: ignore[arg-type]
        if tags.get(KIND_TAG) == "check":
            return self._checked(job_id, status)
        if "training_job" in tags:  # an evaluation job
            return self._evaluated(job_id, status, tags)
        output = tags.get("model_output", "model")
        lineage = {k: tags[k] for k in ("job_yaml_sha256", "split_seed", "heldout_sha256", "heldout_rows",
                                        "train_rows") if k in tags}
        return JobStatus(job_id=job_id, state="succeeded", message=status, tracking_run_id=job_id,
                         model_uri=f"azureml://jobs/{job_id}/outputs/{output}", lineage=lineage)

    def _evaluated(self, job_id: str, status: str, tags: dict[str, str]) -> JobStatus:
        """A finished evaluation job's scores; a chat evaluation's answers too, with the hash of the set they
        answered (its report)."""
        report: dict[str, Any] = {}
        with tempfile.TemporaryDirectory() as tmp:
            folder = self._output(job_id, "evaluation", tmp)
            try:
                scores, skipped = read_scores(_json_file(job_id, folder, "scores.json"))
            except ValueError as exc:
                raise PlatformError(f"job {job_id}", str(exc)) from exc
            if tags.get(KIND_TAG) == "chat-evaluation":
                report = {"eval_set": tags.get("eval_set", ""), "eval_set_sha256": tags.get("eval_set_sha256", ""),
                          "answers": _json_file(job_id, folder, "answers.json")}
        return JobStatus(job_id=job_id, state="succeeded", message=status, tracking_run_id=job_id, scores=scores,
                         report=report, skipped=skipped)

    def _checked(self, job_id: str, status: str) -> JobStatus:
        """A finished data check job: its report, and the data it wrote to train on (none when it blocked)."""
        with tempfile.TemporaryDirectory() as tmp:
            report = dict(_json_file(job_id, self._output(job_id, "report", tmp), "report.json"))
        passed = bool(report.get("passed"))
        outputs = {"data": JOB_OUTPUT_PATH.format(job=job_id, output="data", path="train.jsonl")} if passed else {}
        verdict = "passed" if passed else "failed: " + "; ".join(report.get("problems") or [])
        return JobStatus(job_id=job_id, state="succeeded", message=f"data check {verdict}"[:500],
                         tracking_run_id=job_id, report=report, outputs=outputs)

    def _output(self, job_id: str, output: str, into: str) -> Path:
        """Download one named output of a finished job into ``into``."""
        self._call(f"job {job_id} output", lambda: self.ml.jobs.download(job_id, download_path=into,
                                                                      output_name=output))
        return Path(into)

    def cancel_job(self, job_id: str, reason: str) -> JobStatus:
        """Cancel a job that is still running; a finished one is left as it is."""
        current = self.get_job(job_id)
        if current.done:
            return current
        log.warning("canceling job %s: %s", job_id, reason)
        self._call(f"job {job_id}", lambda: self.ml.jobs.begin_cancel(job_id))
        return JobStatus(job_id=job_id, state="canceled", message=f"canceled: {reason}", tracking_run_id=job_id)

    # -- registry --------------------------------------------------------------------------
    def _version(self, model: Any) -> ModelVersion:
        tags = dict(model.tags or {})
        aliases = [k.split(".", 1)[1] for k, v in tags.items() if k.startswith("alias.") and v == "true"]
        return ModelVersion(name=model.name, version=str(model.version), model_uri=str(model.path or ""),
                            tags=tags, aliases=aliases, created_at=str(getattr(model, "creation_context", "") or ""))

    def register_model(self, model: str, job: JobStatus, tags: dict[str, str]) -> ModelVersion:
        """An MLflow model asset from the job's output, with lineage tags; a retry returns the version it made.

        Azure ML announces each new version itself (ModelRegistered on the workspace's system topic), so the
        version is all a retry must not repeat: one found with the job's ``training_job`` tag is returned.
        """
        from azure.ai.ml.constants import AssetTypes
        from azure.ai.ml.entities import Model

        try:
            versions = self.list_model_versions(model)
        except NotFoundError:
            versions = []  # the model's first version
        done = [v for v in versions if job.job_id and v.tags.get("training_job") == job.job_id]
        if done:
            return done[-1]
        entity = Model(path=job.model_uri, type=AssetTypes.MLFLOW_MODEL, name=model,
                       tags={k: str(v) for k, v in tags.items()}, description=f"trained by job {job.job_id}")
        return self._version(self._call(f"model {model}", lambda: self.ml.models.create_or_update(entity)))

    def get_model_version(self, model: str, version: str) -> ModelVersion:
        """One version; NotFoundError if absent."""
        return self._version(self._call(f"{model} v{version}", lambda: self.ml.models.get(model, version=version)))

    def list_model_versions(self, model: str) -> list[ModelVersion]:
        """All versions, oldest first."""
        found = self._call(f"model {model}", lambda: list(self.ml.models.list(name=model)))
        return sorted((self._version(m) for m in found), key=lambda v: int(v.version))

    def get_alias(self, model: str, alias: str) -> ModelVersion | None:
        """The version tagged ``alias.<alias>=true``."""
        try:
            versions = self.list_model_versions(model)
        except NotFoundError:
            return None
        tagged = [v for v in versions if v.tags.get(ALIAS_TAG.format(alias)) == "true"]
        return tagged[-1] if tagged else None

    def set_alias(self, model: str, alias: str, version: str) -> None:
        """Move the alias tag to one version (removed from the others)."""
        key = ALIAS_TAG.format(alias)
        for existing in self._call(f"model {model}", lambda: list(self.ml.models.list(name=model))):
            has = (existing.tags or {}).get(key) == "true"
            wanted = str(existing.version) == str(version)
            if wanted == has:
                continue
            if wanted:
                existing.tags = {**(existing.tags or {}), key: "true"}
            else:
                existing.tags = {k: v for k, v in existing.tags.items() if k != key}
            self._save_model(existing)

    def _save_model(self, entity: Any) -> None:
        self._call(f"{entity.name} v{entity.version}", lambda: self.ml.models.create_or_update(entity))

    def set_version_tags(self, model: str, version: str, tags: dict[str, str]) -> None:
        """Add tags to a version."""
        existing = self._call(f"{model} v{version}", lambda: self.ml.models.get(model, version=version))
        existing.tags = {**(existing.tags or {}), **{k: str(v) for k, v in tags.items()}}
        self._call(f"{model} v{version}", lambda: self.ml.models.create_or_update(existing))

    # -- prompts ---------------------------------------------------------------------------
    def register_prompt(self, model: str, template: list[dict[str, str]], message: str,
                        tags: dict[str, str]) -> PromptVersion:
        """Not on Azure ML yet."""
        raise _no_prompts()

    def get_prompt(self, model: str, version: str = "", alias: str = "") -> PromptVersion | None:
        """Not on Azure ML yet."""
        raise _no_prompts()

    def list_prompts(self, model: str) -> list[PromptVersion]:
        """Not on Azure ML yet."""
        raise _no_prompts()

    def set_prompt_alias(self, model: str, alias: str, version: str) -> None:
        """Not on Azure ML yet."""
        raise _no_prompts()

    # -- serving ---------------------------------------------------------------------------
    def deployment_spec(self, endpoint: str, deployment: str, model: ModelVersion) -> Any:
        """The ManagedOnlineDeployment for a model version (MLflow models need no scoring script), with the model
        data collector logging every request's inputs and outputs and the caller's request id."""
        from azure.ai.ml.entities import DataCollector, DeploymentCollection, ManagedOnlineDeployment, RequestLogging

        collector = DataCollector(collections={c: DeploymentCollection(enabled="true") for c in COLLECTIONS},
                                  sampling_rate=1.0, rolling_rate="hour",
                                  request_logging=RequestLogging(capture_headers=[REQUEST_ID_HEADER]))
        return ManagedOnlineDeployment(name=deployment, endpoint_name=endpoint,
                                       model=f"azureml:{model.name}:{model.version}",
                                       instance_type=self.config.instance_type,
                                       instance_count=self.config.instance_count, data_collector=collector,
                                       tags={"model": model.name, "version": model.version})

    def begin_deployment(self, endpoint: str, deployment: str, model: ModelVersion,
                         prompt: PromptVersion | None = None) -> Operation:
        """Start creating the deployment at 0 %; the orchestration polls ``get_operation``. A prompt is not
        supported here yet (PlatformError)."""
        if prompt is not None:
            raise _no_prompts()
        spec = self.deployment_spec(endpoint, deployment, model)
        self._call(f"deployment {deployment}", lambda: self.ml.online_deployments.begin_create_or_update(spec))
        return Operation(operation_id=f"{endpoint}/{deployment}", state="running")

    def get_operation(self, operation_id: str) -> Operation:
        """The deployment's provisioning state."""
        endpoint, _, deployment = operation_id.partition("/")
        dep = self._call(f"deployment {deployment}",
                         lambda: self.ml.online_deployments.get(name=deployment, endpoint_name=endpoint))
        state = _text(getattr(dep, "provisioning_state", None) or "Creating")
        return Operation(operation_id=operation_id, state=_PROVISIONING.get(state, "running"), message=state)  # type: ignore[arg-type]

    def get_traffic(self, endpoint: str) -> TrafficSplit:
        """The endpoint's traffic and mirror traffic; ``updating`` while its last update is still being applied."""
        ep = self._call(f"endpoint {endpoint}", lambda: self.ml.online_endpoints.get(endpoint))
        state = _text(getattr(ep, "provisioning_state", None) or "Succeeded").lower()
        if state in ("failed", "canceled"):
            raise PlatformError(f"endpoint {endpoint}", f"its last update ended {state}: see the endpoint's "
                                                        f"activity log in Azure ML studio")
        return TrafficSplit(traffic=dict(ep.traffic or {}), mirror_traffic=dict(ep.mirror_traffic or {}),
                            updating=state in _UPDATING)

    def set_traffic(self, endpoint: str, split: TrafficSplit) -> TrafficSplit:
        """Validate against Azure ML's limits, then update the endpoint."""
        ep = self._call(f"endpoint {endpoint}", lambda: self.ml.online_endpoints.get(endpoint))
        deployments = set(self.list_deployments(endpoint))
        validate_split(deployments, split)
        ep.traffic = {d: split.traffic.get(d, 0) for d in deployments}
        ep.mirror_traffic = {k: v for k, v in split.mirror_traffic.items() if v > 0}
        if split.sticky:  # an endpoint routes by weight alone; a sticky unit is pinned by its caller
            log.info("sticky assignment by %s is the callers' on Azure ML (docs/gateway.md)", split.sticky["header"],
                     extra={"endpoint": endpoint})
        # a long-running operation: started here, never waited for in the activity; the orchestrator polls
        # get_traffic with durable timers until the endpoint is no longer updating
        self._call(f"endpoint {endpoint}", lambda: self.ml.online_endpoints.begin_create_or_update(ep))
        return TrafficSplit(traffic=dict(ep.traffic), mirror_traffic=dict(ep.mirror_traffic), updating=True)

    def delete_deployment(self, endpoint: str, deployment: str) -> None:
        """Start deleting a deployment with no traffic."""
        self._call(f"deployment {deployment}",
                   lambda: self.ml.online_deployments.begin_delete(name=deployment, endpoint_name=endpoint))

    def list_deployments(self, endpoint: str) -> dict[str, str]:
        """Deployment -> model."""
        found = self._call(f"endpoint {endpoint}", lambda: list(self.ml.online_deployments.list(endpoint)))
        return {d.name: str(d.model) for d in found}

    def score(self, endpoint: str, deployment: str, rows: list[dict[str, Any]]) -> list[Any]:
        """Invoke one deployment with a request file (``input_data`` rows)."""
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
            json.dump({"input_data": rows}, handle)
        raw = self._call(f"deployment {deployment}", lambda: self.ml.online_endpoints.invoke(
            endpoint_name=endpoint, deployment_name=deployment, request_file=handle.name))
        Path(handle.name).unlink(missing_ok=True)
        answer = json.loads(raw)
        return list(answer["predictions"] if isinstance(answer, dict) else answer)

    def endpoint_resource_id(self, endpoint: str) -> str:
        """The Azure resource id Azure Monitor keys the endpoint's metrics by (split by its ``deployment``)."""
        c = self.config
        return (f"/subscriptions/{c.subscription_id}/resourceGroups/{c.resource_group}/providers/"
                f"Microsoft.MachineLearningServices/workspaces/{c.workspace}/onlineEndpoints/{endpoint}")

    @property
    def metrics(self) -> Any:
        """azure-monitor-querymetrics' MetricsClient on the workspace region's metrics endpoint."""
        if self._metrics is None:
            from azure.monitor.querymetrics import MetricsClient

            self._metrics = MetricsClient(f"https://{self.config.region}.metrics.monitor.azure.com", self.credential)
        return self._metrics

    def _series(self, endpoint: str, names: tuple[str, ...], aggregation: str, where: str,
                window: tuple[datetime, datetime]) -> list[tuple[str, Any]]:
        """(metric name, time series) of the endpoint's metrics over ``window``, one-minute grain."""
        client = self.metrics
        results = self._call(f"metrics of endpoint {endpoint}", lambda: client.query_resources(
            resource_ids=[self.endpoint_resource_id(endpoint)], metric_namespace=METRICS_NAMESPACE,
            metric_names=list(names), timespan=window, granularity=timedelta(minutes=1),
            aggregations=[aggregation], filter=where))
        return [(metric.name, series) for result in results for metric in result.metrics
                for series in metric.timeseries]

    def deployment_metrics(self, endpoint: str, deployment: str, start: str, end: str) -> DeploymentMetrics:
        """Requests split 4xx/5xx and latency from the endpoint's Azure Monitor metrics (by ``deployment``), and
        the predictions the model data collector logged (``model_outputs``) in the window."""
        window = (_instant(start), _instant(end))
        latency: dict[str, float] = {}
        for name, series in self._series(endpoint, LATENCY_METRICS, "Average", f"deployment eq '{deployment}'",
                                         window):
            averages = [p.average for p in series.data if p.average is not None]
            if averages:  # the worst minute of the window
                latency[name] = max(latency.get(name, 0.0), float(max(averages)))
        by_class: Counter[str] = Counter()
        for _, series in self._series(endpoint, (REQUESTS_METRIC,), "Total",
                                      f"deployment eq '{deployment}' and statusCodeClass eq '*'", window):
            code_class = _dimension(series, "statusCodeClass")
            by_class[code_class] += int(sum((p.total or 0) for p in series.data))
        predictions = Counter(str(_one(p)) for row in self._collected(endpoint, deployment, window)
                              for p in [row.get(PREDICTION)] if PREDICTION in row)
        return DeploymentMetrics(deployment=deployment, request_count=sum(by_class.values()),
                                 error_count=by_class["5xx"], client_error_count=by_class["4xx"],
                                 latency_p50_ms=latency.get("RequestLatency_P50", 0.0),
                                 latency_p95_ms=latency.get("RequestLatency_P95", 0.0),
                                 latency_p99_ms=latency.get("RequestLatency_P99", 0.0),
                                 predictions=dict(predictions))

    # -- collected data (Azure ML's model data collector) -----------------------------------
    def _collector_container(self) -> Any:
        """The workspace's default blob datastore, where the data collector writes, as a ContainerClient."""
        if self._collector is None:
            store = self._call("the workspace's default datastore", lambda: self.ml.datastores.get_default())
            url = (f"{getattr(store, 'protocol', None) or 'https'}://{store.account_name}.blob."
                   f"{getattr(store, 'endpoint', None) or 'core.windows.net'}/{store.container_name}")
            if self._containers is not None:
                self._collector = self._containers(url)
            else:
                from azure.storage.blob import ContainerClient

                self._collector = ContainerClient.from_container_url(url, credential=self.credential)
        return self._collector

    def _collection(self, endpoint: str, deployment: str, collection: str, hour: datetime,
                    window: tuple[datetime, datetime]) -> list[dict[str, Any]]:
        """The collector's records of one collection for one hour folder, those stamped inside ``window``."""
        container = self._collector_container()
        prefix = f"{COLLECTOR_ROOT}/{endpoint}/{deployment}/{collection}/{hour:%Y/%m/%d/%H}/"
        where = f"collected {collection} of {deployment}"
        names = self._call(where, lambda: [b.name for b in container.list_blobs(name_starts_with=prefix)])
        records: list[dict[str, Any]] = []
        for name in sorted(names):
            raw = self._call(where, functools.partial(_download, container, name))
            for line in raw.decode("utf-8", errors="replace").splitlines():
                record = _record(line)
                if record is None:
                    log.warning("skipping a malformed line in %s", name)
                elif window[0] <= record["at"] < window[1]:
                    records.append(record)
        return records

    def _collected(self, endpoint: str, deployment: str, window: tuple[datetime, datetime],
                   limit: int = MAX_COLLECTED_ROWS) -> list[dict[str, Any]]:
        """Input rows the deployment answered in ``window`` joined with its outputs by correlation id (the
        prediction under ``__prediction__``, the id under ``__request_id__``), newest hour first, at most
        ``limit`` rows."""
        rows: list[dict[str, Any]] = []
        for hour in _hours(window):
            outputs = {r["correlation"]: r["data"] for r in
                       self._collection(endpoint, deployment, "model_outputs", hour, window)}
            for record in self._collection(endpoint, deployment, "model_inputs", hour, window):
                predicted = outputs.get(record["correlation"])
                for i, row in enumerate(record["data"]):
                    if not isinstance(row, dict):
                        continue
                    joined = {**row, REQUEST_ID: record["correlation"] or None}  # as the gateway's log has it
                    if record["correlation"] and isinstance(predicted, list) and i < len(predicted):
                        joined[PREDICTION] = _one(predicted[i])
                    rows.append(joined)
            if len(rows) >= limit:
                break
        return rows[:limit]

    def recent_inputs(self, endpoint: str, deployment: str, start: str, end: str, limit: int) -> list[dict[str, Any]]:
        """The inputs the data collector logged for the deployment in [start, end), with their predictions."""
        return self._collected(endpoint, deployment, (_instant(start), _instant(end)), limit)

    def predictions_by_id(self, endpoint: str, deployment: str, start: str, end: str,
                          limit: int) -> dict[str, Any]:
        """What the data collector logged in ``model_outputs`` for the deployment in [start, end), by the
        record's ``correlationid`` (the caller's ``x-request-id``), newest hour first, at most ``limit``."""
        window = (_instant(start), _instant(end))
        found: dict[str, Any] = {}
        for hour in _hours(window):
            for record in self._collection(endpoint, deployment, "model_outputs", hour, window):
                answers = record["data"]
                if record["correlation"]:
                    found.update({keyed_by_row(record["correlation"], i, len(answers)): _one(answer)
                                  for i, answer in enumerate(answers)})
            if len(found) >= limit:
                break
        return dict(list(found.items())[:limit])

    def units_by_id(self, endpoint: str, start: str, end: str, limit: int) -> dict[str, str]:
        """See Platform: the data collector keeps payloads, not request headers, so no unit is known here and each
        request is a unit (docs/gateway.md: callers that pin a unit's deployment)."""
        return {}

    def baseline(self, model: str, version: str) -> list[dict[str, Any]]:
        """The sample the evaluation job logged as ``baseline.json`` to the training job's MLflow run (the
        version's ``tracking_run_id``), read from that job's artifacts; cached, since it never changes."""
        key = (model, str(version))
        if key not in self._baselines:
            tags = self.get_model_version(model, version).tags
            run = tags.get("tracking_run_id") or tags.get("training_job")
            what = f"baseline of {model} v{version}"
            if not run:
                raise NotFoundError(what, "the version names no training run (tracking_run_id tag)")
            with tempfile.TemporaryDirectory() as tmp:
                self._call(what, lambda: self.ml.jobs.download(run, download_path=tmp))
                found = sorted(Path(tmp).rglob("baseline.json"))
                if not found:
                    raise NotFoundError(what, f"the evaluation job logged no baseline.json to run {run}")
                self._baselines[key] = list(json.loads(found[0].read_text(encoding="utf-8")))
        return list(self._baselines[key])


def _text(value: Any) -> str:
    """An SDK state as its wire value: azure-ai-ml answers enums (``DeploymentProvisioningState.SUCCEEDED``), whose
    ``str()`` is their qualified name on Python 3.11, not ``"Succeeded"``."""
    return str(getattr(value, "value", value))


def _instant(text: str) -> datetime:
    """An ISO 8601 instant; a naive one is UTC."""
    at = datetime.fromisoformat(text)
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def _hours(window: tuple[datetime, datetime]) -> list[datetime]:
    """The collector's hour folders that overlap ``window``, newest first (UTC)."""
    first = window[0].astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    last = window[1].astimezone(UTC)
    hours: list[datetime] = []
    at = first
    while at < last and len(hours) < MAX_COLLECTED_HOURS:
        hours.append(at)
        at += timedelta(hours=1)
    return hours[::-1]


def _download(container: Any, name: str) -> bytes:
    return bytes(container.download_blob(name).readall())


def _record(line: str) -> dict[str, Any] | None:
    """One collector line (a CloudEvent with ``data``, ``time`` and ``correlationid``), or None if malformed."""
    if not line.strip():
        return None
    try:
        event = json.loads(line)
        at = _instant(str(event["time"]))
    except (ValueError, KeyError, TypeError):
        return None
    data = event.get("data")
    if isinstance(data, dict):  # a DataFrame logged in "split" or column form is not what MLflow models log
        data = [data]
    if not isinstance(data, list):
        return None
    return {"at": at, "data": data, "correlation": str(event.get("correlationid") or event.get("xrequestid") or "")}


def _one(value: Any) -> Any:
    """A prediction as the monitor compares it: a one-column output row becomes its value."""
    if isinstance(value, dict) and len(value) == 1:
        return next(iter(value.values()))
    if isinstance(value, list) and len(value) == 1:
        return value[0]
    return value


def _dimension(series: Any, name: str) -> str:
    """A time series' dimension value; Azure Monitor may return dimension names in another case."""
    values = getattr(series, "metadata_values", None) or {}
    return next((str(v) for k, v in values.items() if str(k).lower() == name.lower()), "")
