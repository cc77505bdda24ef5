"""What crosses the Durable boundary: every orchestration and activity, its name, its one input and output.

Orchestrators build these; activities parse them with ``from_dict`` and answer with ``to_dict``;
nothing else crosses the boundary, so a renamed field is a type error, not a run that fails at
3 a.m. Names are constants here and nowhere else. Platform value types (``DataRef``,
``JobStatus``, ``ModelVersion``, ``Operation``, ``TrafficSplit``, ``DeploymentMetrics``) live
with the port in ``mlops.ports`` and travel as they are.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ._json import Json
from .gates import DataReport
from .ports import DataRef, JobStatus, ModelVersion, PromptVersion
from .vocabulary import Verdict

# -- orchestrations ------------------------------------------------------------------------
LIFECYCLE = "model_lifecycle"
RETRAIN = "retrain"
RELEASE = "release"
ROLLBACK = "rollback"
PROMPT = "prompt"  # a chat model's new prompt version: evaluated against the current one, registered as a version
RUN_KINDS = (RETRAIN, RELEASE, ROLLBACK, PROMPT)

# -- activities ----------------------------------------------------------------------------
LOAD_POLICY = "load_policy"
VALIDATE_DATA = "validate_data"
SUBMIT_TRAINING = "submit_training"
GET_JOB = "get_training_job"
SUBMIT_EVALUATION = "submit_evaluation"
SUBMIT_DATA_CHECK = "submit_data_check"
CANCEL_JOB = "cancel_job"
GET_ALIAS = "get_model_alias"
REGISTER_MODEL = "register_model"
SET_ALIAS = "set_model_alias"
TAG_VERSION = "tag_model_version"
BEGIN_DEPLOYMENT = "begin_deployment"
GET_OPERATION = "get_operation"
GET_TRAFFIC = "get_traffic"
SET_TRAFFIC = "set_traffic"
SAMPLE_ROWS = "sample_rows"
SMOKE_TEST = "smoke_test"
DEPLOYMENT_METRICS = "deployment_metrics"
TAKE_PENDING = "take_pending_request"
QUEUE_REQUEST = "queue_request"
NEWEST_DATA = "newest_landed_data"
RECORD_INCIDENT = "record_incident"
PLAN_CLEAN_UP = "plan_clean_up"
DELETE_DEPLOYMENT = "delete_deployment"
NOTIFY = "notify"
AB_LOOK = "ab_look"
GET_PROMPT = "get_prompt"
SET_PROMPT_ALIAS = "set_prompt_alias"

# -- external events operators send --------------------------------------------------------
APPROVAL_EVENT = "approval"
PAUSE_EVENT = "pause"
RESUME_EVENT = "resume"
ABORT_EVENT = "abort"


# -- orchestration inputs and outputs --------------------------------------------------------
@dataclass(frozen=True)
class RunRecord(Json):
    """One finished run in the lifecycle's short history."""

    run_id: str
    kind: str
    verdict: str


@dataclass(frozen=True)
class LifecycleInput(Json):
    """The model whose lifecycle this is, and the runs of earlier executions (continue-as-new)."""

    model: str
    history: list[RunRecord] = field(default_factory=list)


@dataclass(frozen=True)
class RetrainInput(Json):
    """Retrain ``model`` on the landed ``data``."""

    model: str
    data: DataRef
    reason: str = ""


@dataclass(frozen=True)
class RetrainResult(Json):
    """A registered candidate: its version, metrics against the champion's, and the gate verdicts."""

    model: str
    version: str
    metrics: dict[str, float]
    champion_metrics: dict[str, float] | None
    gates: list[dict[str, Any]]
    verdict: Verdict = Verdict.REGISTERED


@dataclass(frozen=True)
class PromptInput(Json):
    """Try version ``prompt_version`` of a chat model's prompt: judged against the current prompt on the champion,
    then registered as a model version (the champion's weights, this prompt), which the release takes on."""

    model: str
    prompt_version: str
    reason: str = ""


@dataclass(frozen=True)
class PromptQuery(Json):
    """One version of a chat model's prompt, by number or by alias."""

    model: str
    version: str = ""
    alias: str = ""


@dataclass(frozen=True)
class FoundPrompt(Json):
    """The prompt version asked for, if there is one."""

    prompt: PromptVersion | None = None


@dataclass(frozen=True)
class PromptAliasChange(Json):
    """Point an alias of a chat model's prompt at a version."""

    model: str
    alias: str
    version: str


@dataclass(frozen=True)
class ReleaseInput(Json):
    """Release a registered version of ``model``."""

    model: str
    version: str


@dataclass(frozen=True)
class ReleaseResult(Json):
    """A promoted release: the deployment now at 100 % and the champion it replaced."""

    model: str
    version: str
    verdict: Verdict
    deployment: str
    previous: str | None
    traffic: dict[str, Any]


@dataclass(frozen=True)
class RollbackInput(Json):
    """Roll ``model`` back; ``version`` is the champion the alert was about (None: whichever serves now)."""

    model: str
    reason: str = "rollback requested"
    version: str | None = None
    source: str = ""
    evidence: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RollbackResult(Json):
    """What a rollback did: the versions it moved between, or why it did nothing."""

    model: str
    verdict: Verdict
    reason: str
    from_version: str | None = None
    to_version: str | None = None
    retrain: bool = False


# -- activity inputs and outputs --------------------------------------------------------------
@dataclass(frozen=True)
class ModelRef(Json):
    """Just a model name (policy, pending requests, newest data)."""

    model: str


@dataclass(frozen=True)
class ValidateInput(Json):
    """Check landed data against the policy's data rules."""

    model: str
    data: DataRef
    policy: dict[str, Any]


@dataclass(frozen=True)
class ValidationResult(Json):
    """The data report, with the file's hash for lineage."""

    report: DataReport
    sha256: str


@dataclass(frozen=True)
class JobRef(Json):
    """A training or evaluation job to poll (or to cancel, with the reason)."""

    job_id: str
    reason: str = ""


@dataclass(frozen=True)
class VersionQuery(Json):
    """A version of ``model`` by alias or by number (exactly one of the two)."""

    model: str
    alias: str | None = None
    version: str | None = None


@dataclass(frozen=True)
class FoundVersion(Json):
    """The answer to a ``VersionQuery``: the version, or None when there is none."""

    version: ModelVersion | None = None


@dataclass(frozen=True)
class RegisterInput(Json):
    """Register the job's model with lineage tags."""

    model: str
    job: JobStatus
    tags: dict[str, str]


@dataclass(frozen=True)
class AliasChange(Json):
    """Point ``alias`` of ``model`` at ``version``."""

    model: str
    alias: str
    version: str


@dataclass(frozen=True)
class VersionTags(Json):
    """Add ``tags`` to a version."""

    model: str
    version: str
    tags: dict[str, str]


@dataclass(frozen=True)
class DeployInput(Json):
    """Create ``deployment`` of ``version`` on ``endpoint`` at 0 % traffic."""

    endpoint: str
    deployment: str
    version: ModelVersion
    prompt: PromptVersion | None = None  # a chat model's prompt, applied by the deployment to every conversation


@dataclass(frozen=True)
class OperationRef(Json):
    """A long-running operation to poll."""

    operation_id: str


@dataclass(frozen=True)
class EndpointRef(Json):
    """An endpoint by name."""

    endpoint: str


@dataclass(frozen=True)
class TrafficChange(Json):
    """Replace the endpoint's split (``model`` is for the telemetry record)."""

    endpoint: str
    model: str
    traffic: dict[str, int]
    mirror_traffic: dict[str, int] = field(default_factory=dict)
    sticky: dict[str, str] | None = None  # see mlops.ports.TrafficSplit; None ends a sticky assignment


@dataclass(frozen=True)
class TrafficState(Json):
    """An endpoint's split and the platform-side time it was read or applied (metrics windows start there)."""

    traffic: dict[str, int]
    mirror_traffic: dict[str, int]
    at: str
    updating: bool = False  # not applied yet: the orchestrator polls GET_TRAFFIC until it is


@dataclass(frozen=True)
class SampleInput(Json):
    """Up to ``rows`` rows of a data file, without ``label``, for a smoke test."""

    url: str
    label: str
    rows: int
    chat: bool = False  # JSONL chat examples: the prompts, without the answer


@dataclass(frozen=True)
class Sample(Json):
    """Rows to score."""

    rows: list[dict[str, Any]]


@dataclass(frozen=True)
class SmokeInput(Json):
    """Score ``rows`` straight on one deployment."""

    endpoint: str
    deployment: str
    rows: list[dict[str, Any]]


@dataclass(frozen=True)
class SmokeResult(Json):
    """Whether the deployment answered each row; ``reason`` says why not."""

    passed: bool
    reason: str
    requests: int


@dataclass(frozen=True)
class MetricsQuery(Json):
    """Health numbers of one deployment from ``start`` until ``end`` (None: now)."""

    endpoint: str
    deployment: str
    start: str
    end: str | None = None


@dataclass(frozen=True)
class PendingRequest(Json):
    """The most urgent pending request of a model, as ``mlops.runs.Request.to_dict`` (None: nothing waits)."""

    request: dict[str, Any] | None = None


@dataclass(frozen=True)
class NewestData(Json):
    """The newest data file landed for a model (None: none has)."""

    data: DataRef | None = None


@dataclass(frozen=True)
class Queued(Json):
    """Whether a request was queued (False: its dedup key was seen already)."""

    accepted: bool


@dataclass(frozen=True)
class Incident(Json):
    """A rollback: which versions, why, with what evidence, when, by which run."""

    model: str
    from_version: str
    to_version: str
    reason: str
    evidence: dict[str, Any]
    source: str
    at: str
    run_id: str


@dataclass(frozen=True)
class CleanUpInput(Json):
    """Which deployments of ``model`` are due for deletion at ``now`` (ISO 8601)."""

    model: str
    now: str


@dataclass(frozen=True)
class Removal(Json):
    """One deployment to delete, and why."""

    deployment: str
    version: str
    reason: str


@dataclass(frozen=True)
class CleanUpPlan(Json):
    """The deployments of ``model`` on ``endpoint`` to delete, in order."""

    model: str
    endpoint: str
    removals: list[Removal] = field(default_factory=list)


@dataclass(frozen=True)
class DeleteDeployment(Json):
    """Delete one deployment the clean-up plan named."""

    model: str
    endpoint: str
    removal: Removal


@dataclass(frozen=True)
class Notice(Json):
    """Something a person should hear about (``mlops.notices``): the run, the reason, where to act."""

    kind: str  # mlops.notices.NoticeKind
    model: str
    run_id: str
    reason: str
    version: str = ""
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Notified(Json):
    """How a notice went out; a failure is said here and in the log, never raised."""

    event: str  # "sent", "off" (no topic) or the error
    webhook: str  # "sent", "off" (no webhook URL) or the error


@dataclass(frozen=True)
class AbLookInput(Json):
    """One look at a release's A/B phase: both arms' answers since ``start``, joined to the model's ground truth."""

    model: str
    endpoint: str
    champion: str  # deployment of arm A
    challenger: str  # deployment of arm B
    start: str
    plan: dict[str, Any]  # the policy's release.ab, as a dict
    guardrails: dict[str, bool] = field(default_factory=dict)  # health check -> passed, at this look

