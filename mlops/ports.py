"""The ports: what the lifecycle needs from an ML platform (``Platform``) and from the landing zone (``Landing``).

Activities call these Protocols and nothing else (the control store's port is
``mlops.control.ControlStore``). Two platforms implement them, in ``adapters/``:
``local`` (MLflow + the local job runner + the local scoring gateway) and ``azureml``
(azure-ai-ml ``MLClient`` + azure-monitor-query).

Every call is short. Long-running work (training jobs, deployment creation)
returns a handle at once; the orchestration polls it with durable timers, so
no activity blocks for minutes.

All types are plain dataclasses with ``to_dict``/``from_dict`` so they cross
the activity boundary as JSON.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from ._json import Json as _Json

JobState = Literal["queued", "running", "succeeded", "failed", "canceled"]
OperationState = Literal["running", "succeeded", "failed"]


@dataclass(frozen=True)
class DataRef(_Json):
    """A landed data file: where it is and which version of it."""

    url: str
    etag: str = ""
    content_length: int = 0
    sha256: str = ""


@dataclass(frozen=True)
class TrainRequest(_Json):
    """What to train: the user's job (its YAML, relative to the policy directory; "" for the built-in example
    job, which ``algorithm`` and ``params`` configure), the data to split for it, and lineage."""

    model: str
    data: DataRef
    label: str
    job: str = ""
    inputs: dict[str, Any] = field(default_factory=dict)  # the policy's values for the job's other inputs
    algorithm: str = "logistic_regression"
    params: dict[str, Any] = field(default_factory=dict)
    run_id: str = ""  # the orchestration instance id, recorded as lineage
    policy_hash: str = ""
    test_fraction: float = 0.25
    seed: int = 7
    timeout_minutes: float = 60
    chat: bool = False  # a chat model's examples: bound whole to ``training_data``, not split, no label

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainRequest:
        """Build from a dict, nested ``DataRef`` included."""
        return cls(**{**data, "data": DataRef.from_dict(data["data"])})


@dataclass(frozen=True)
class EvaluationRequest(_Json):
    """Score a training job's candidate, and the champion if there is one, on that job's held-out part."""

    model: str
    training_job: str
    candidate_uri: str
    candidate_run: str
    label: str
    champion_uri: str = ""
    model_type: str = "classifier"
    baseline_rows: int = 5000
    timeout_minutes: float = 60
    eval_set: str = ""  # a chat model's fixed evaluation set (relative to the policy directory), not a split
    max_new_tokens: int = 48
    # a chat model's prompts (JSON templates, PromptVersion.template; "" none): the candidate answers through
    # ``candidate_prompt``, the champion through ``champion_prompt`` (a prompt release: the same model, two prompts)
    candidate_prompt: str = ""
    champion_prompt: str = ""
    # a chat model's AI-assisted metrics (the policy's evaluation.judge.metrics), scored by the platform's judge
    # model when it has one, else reported skipped with the reason
    judge_metrics: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class DataCheckRequest(_Json):
    """The data check job of a chat model's examples: token counts with the base model's tokenizer, and the PII
    scan that blocks, masks or allows (``pii``); it writes the data to train on and a report."""

    model: str
    data: DataRef
    run_id: str
    pii: str = "block"
    max_tokens: int = 0  # 0: the base model's context length
    timeout_minutes: float = 60

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DataCheckRequest:
        """Build from a dict, nested ``DataRef`` included."""
        return cls(**{**data, "data": DataRef.from_dict(data["data"])})


@dataclass(frozen=True)
class JobStatus(_Json):
    """The state of a job. A training job that succeeded has ``model_uri`` and the metrics it logged; an
    evaluation job has ``scores`` (``candidate`` and, when there was one, ``champion``: metric -> value).
    ``lineage`` is what the job recorded about its inputs, code and environment; a sweep job's ``trials``
    are its trial table (the candidate is the best trial's model). A data check job has its ``report`` and the
    URI of the data it wrote in ``outputs``; a chat evaluation's ``report`` holds each answer it scored, and
    ``skipped`` the metrics it was asked for and did not compute, each with the reason (no judge model)."""

    job_id: str
    state: JobState
    message: str = ""
    tracking_run_id: str = ""
    model_uri: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    scores: dict[str, dict[str, float]] = field(default_factory=dict)
    lineage: dict[str, Any] = field(default_factory=dict)
    trials: list[dict[str, Any]] = field(default_factory=list)  # a sweep's trials: params, state, objective
    report: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)  # output name -> URI of what the job wrote there
    skipped: dict[str, str] = field(default_factory=dict)  # metric -> why the evaluation did not compute it

    @property
    def done(self) -> bool:
        """True once the job reached a terminal state."""
        return self.state in ("succeeded", "failed", "canceled")


@dataclass(frozen=True)
class ModelVersion(_Json):
    """One registered model version with its lineage tags and aliases."""

    name: str
    version: str
    model_uri: str
    tags: dict[str, str] = field(default_factory=dict)
    aliases: list[str] = field(default_factory=list)
    created_at: str = ""


@dataclass(frozen=True)
class PromptVersion(_Json):
    """One version of a chat model's prompt in the prompt registry (named ``prompt_name(model)``).

    ``template`` is a list of chat messages; in a user message, ``{{question}}`` stands for the question asked
    (docs/llmops.md says how a template applies to a conversation)."""

    name: str
    version: str
    template: list[dict[str, str]]
    message: str = ""  # why it was registered (MLflow's commit message)
    aliases: list[str] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)
    created_at: str = ""


def prompt_name(model: str) -> str:
    """The registry name of a chat model's prompt (MLflow keeps prompts and models in one namespace)."""
    return f"{model}-prompt"


@dataclass(frozen=True)
class Operation(_Json):
    """A long-running platform operation (e.g. a deployment being created)."""

    operation_id: str
    state: OperationState
    message: str = ""


@dataclass(frozen=True)
class TrafficSplit(_Json):
    """An endpoint's live split: deployment -> percent, and the mirrored (shadow) share."""

    traffic: dict[str, int] = field(default_factory=dict)
    mirror_traffic: dict[str, int] = field(default_factory=dict)
    updating: bool = False  # the platform is still applying a change (Azure ML: the endpoint is "Updating")
    # an A/B phase's sticky assignment, {"header": <request header naming the unit>, "salt": <experiment id>}: the
    # local gateway routes by it (gateway.sticky); an Azure ML endpoint cannot, its callers pin (docs/gateway.md)
    sticky: dict[str, str] | None = None


@dataclass(frozen=True)
class DeploymentMetrics(_Json):
    """Health numbers of one deployment over a time window."""

    deployment: str
    request_count: int
    error_count: int
    latency_p50_ms: float
    latency_p95_ms: float
    latency_p99_ms: float
    predictions: dict[str, int] = field(default_factory=dict)  # label -> count
    client_error_count: int = 0  # 4xx: requests the model refused (e.g. not matching its signature)

    @property
    def error_rate(self) -> float:
        """Errors (5xx) over requests; 0 when there were no requests."""
        return self.error_count / self.request_count if self.request_count else 0.0

    @property
    def client_error_rate(self) -> float:
        """Refused requests (4xx) over requests; 0 when there were none."""
        return self.client_error_count / self.request_count if self.request_count else 0.0


@runtime_checkable
class Platform(Protocol):
    """The port. Raise ``mlops.errors.PlatformError`` with the thing that is wrong."""

    # --- data -------------------------------------------------------------
    def read_data(self, data: DataRef) -> bytes:
        """Return the bytes of a landed data file (for validation and hashing)."""
        ...

    def read_head(self, data: DataRef, max_bytes: int) -> bytes:
        """Return at most the first ``max_bytes`` of a landed data file (a ranged read: the smoke test's rows).

        The head may end inside a line; all of the file when it is shorter."""
        ...

    # --- training ---------------------------------------------------------
    def submit_training(self, request: TrainRequest) -> JobStatus:
        """Split the data, bind it to the user's job and start it; the same run id gives the same job.
        A job YAML that breaks the contract gives a failed status naming the field, and starts nothing."""
        ...

    def submit_data_check(self, request: DataCheckRequest) -> JobStatus:
        """Start a chat model's data check job (idempotent for the same run id); poll it with ``get_job``."""
        ...

    def submit_evaluation(self, request: EvaluationRequest) -> JobStatus:
        """Start the evaluation job (candidate and champion on the training job's held-out part)."""
        ...

    def get_job(self, job_id: str) -> JobStatus:
        """Poll a training or evaluation job."""
        ...

    def cancel_job(self, job_id: str, reason: str) -> JobStatus:
        """Stop a job that is still running (a timeout, an operator's abort); a finished job is left as it is."""
        ...

    def register_model(self, model: str, job: JobStatus, tags: dict[str, str]) -> ModelVersion:
        """Register the job's model with lineage tags, and announce it (ModelRegistered)."""
        ...

    def get_model_version(self, model: str, version: str) -> ModelVersion:
        """Return one version; PlatformError if it does not exist."""
        ...

    def list_model_versions(self, model: str) -> list[ModelVersion]:
        """All versions of a model, oldest first."""
        ...

    def get_alias(self, model: str, alias: str) -> ModelVersion | None:
        """The version behind an alias (``champion``, ``challenger``), or None."""
        ...

    def set_alias(self, model: str, alias: str, version: str) -> None:
        """Point an alias at a version."""
        ...

    def set_version_tags(self, model: str, version: str, tags: dict[str, str]) -> None:
        """Add or update tags on a version (e.g. ``release=rejected``)."""
        ...

    # --- prompts (a chat model's) ------------------------------------------
    def register_prompt(self, model: str, template: list[dict[str, str]], message: str,
                        tags: dict[str, str]) -> PromptVersion:
        """A new version of the model's prompt (``prompt_name(model)``)."""
        ...

    def get_prompt(self, model: str, version: str = "", alias: str = "") -> PromptVersion | None:
        """One version of the model's prompt, by number or by alias; None if there is none."""
        ...

    def list_prompts(self, model: str) -> list[PromptVersion]:
        """Every version of the model's prompt, oldest first (none: [])."""
        ...

    def set_prompt_alias(self, model: str, alias: str, version: str) -> None:
        """Point an alias of the model's prompt at a version."""
        ...

    # --- serving ----------------------------------------------------------
    def begin_deployment(self, endpoint: str, deployment: str, model: ModelVersion,
                         prompt: PromptVersion | None = None) -> Operation:
        """Start creating a deployment of ``model`` at 0 % traffic; a chat model's answers through ``prompt``."""
        ...

    def get_operation(self, operation_id: str) -> Operation:
        """Poll a long-running operation."""
        ...

    def get_traffic(self, endpoint: str) -> TrafficSplit:
        """The endpoint's live split."""
        ...

    def set_traffic(self, endpoint: str, split: TrafficSplit) -> TrafficSplit:
        """Replace the split atomically and return what is now live."""
        ...

    def delete_deployment(self, endpoint: str, deployment: str) -> None:
        """Remove a deployment that carries no traffic."""
        ...

    def list_deployments(self, endpoint: str) -> dict[str, str]:
        """Deployment name -> model URI it serves."""
        ...

    def score(self, endpoint: str, deployment: str, rows: list[dict[str, Any]]) -> list[Any]:
        """Send rows straight to one deployment (smoke tests)."""
        ...

    def deployment_metrics(self, endpoint: str, deployment: str, start: str, end: str) -> DeploymentMetrics:
        """Request count, errors, latency percentiles and predictions over [start, end) (ISO 8601)."""
        ...

    def recent_inputs(self, endpoint: str, deployment: str, start: str, end: str, limit: int) -> list[dict[str, Any]]:
        """Scoring inputs one deployment answered in [start, end), each with its prediction under
        ``__prediction__`` (the monitor compares them with the baseline)."""
        ...

    def predictions_by_id(self, endpoint: str, deployment: str, start: str, end: str,
                          limit: int) -> dict[str, Any]:
        """What one deployment answered in [start, end), by request id (``x-request-id``; the data collector's
        ``correlationid``): id -> prediction, or ``<id>#<row>`` -> prediction for each row of a request that
        scored several (``mlops.feedback``). Requests without an id are left out; at most ``limit``, newest."""
        ...

    def units_by_id(self, endpoint: str, start: str, end: str, limit: int) -> dict[str, str]:
        """The sticky unit (``release.ab.unit_header``) of each request answered in [start, end) that carried one:
        request id -> unit id. Empty where the platform does not keep it (each request is then its own unit)."""
        ...

    # --- monitoring data --------------------------------------------------
    def baseline(self, model: str, version: str) -> list[dict[str, Any]]:
        """The training baseline of a version: sample feature rows with predictions (``__prediction__``).

        NotFoundError when the platform recorded none for the version."""
        ...


@runtime_checkable
class Landing(Protocol):
    """Where training data lands (``<landing container>/<model>/<file>``)."""

    def newest(self, model: str, allowed_suffixes: tuple[str, ...]) -> DataRef | None:
        """The newest data file landed for the model (what the BlobCreated trigger would accept), or None."""
        ...
