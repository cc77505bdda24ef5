"""Activities: thin adapters. Each parses its contract (``mlops.contracts``), makes one port call, answers.

A transient failure (``adapters.errors.transient``) is raised as ``TransientError``, which the
orchestrators retry with durable timers (``orchestrators.steps.Steps.call``); any other failure
is final.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

import azure.durable_functions as df

from adapters import runtime
from adapters.errors import marks_transient, transient
from mlops import abtest, cleanup, smoke, telemetry
from mlops.contracts import (
    AB_LOOK,
    BEGIN_DEPLOYMENT,
    CANCEL_JOB,
    DELETE_DEPLOYMENT,
    DEPLOYMENT_METRICS,
    GET_ALIAS,
    GET_JOB,
    GET_OPERATION,
    GET_TRAFFIC,
    LOAD_POLICY,
    NEWEST_DATA,
    NOTIFY,
    PLAN_CLEAN_UP,
    QUEUE_REQUEST,
    RECORD_INCIDENT,
    REGISTER_MODEL,
    SAMPLE_ROWS,
    SET_ALIAS,
    SET_TRAFFIC,
    SMOKE_TEST,
    SUBMIT_DATA_CHECK,
    SUBMIT_EVALUATION,
    SUBMIT_TRAINING,
    TAG_VERSION,
    TAKE_PENDING,
    VALIDATE_DATA,
    AbLookInput,
    AliasChange,
    CleanUpInput,
    CleanUpPlan,
    DeleteDeployment,
    DeployInput,
    EndpointRef,
    FoundVersion,
    Incident,
    JobRef,
    MetricsQuery,
    ModelRef,
    NewestData,
    Notice,
    OperationRef,
    PendingRequest,
    Queued,
    RegisterInput,
    Sample,
    SampleInput,
    SmokeInput,
    SmokeResult,
    TrafficChange,
    TrafficState,
    ValidateInput,
    ValidationResult,
    VersionQuery,
    VersionTags,
)
from mlops.errors import NotFoundError
from mlops.gates import validate_chat_data
from mlops.gates import validate_data as check_data
from mlops.policy import AbTest, Policy
from mlops.ports import DataCheckRequest, DataRef, EvaluationRequest, TrafficSplit, TrainRequest
from mlops.runs import Request

bp = df.Blueprint()
Answer = dict[str, Any]


def _now() -> str:
    return datetime.now(UTC).isoformat()


# -- policy and data ---------------------------------------------------------------------------
@bp.activity_trigger(input_name="request", activity=LOAD_POLICY)
@marks_transient
def load_policy_activity(request: Answer) -> Answer:
    """The model's policy, validated, as a dict (with its hash)."""
    return runtime.policy(ModelRef.from_dict(request).model).to_dict()


@bp.activity_trigger(input_name="request", activity=VALIDATE_DATA)
@marks_transient
def validate_data_activity(request: Answer) -> Answer:
    """Read the landed file and check it against the policy's data rules."""
    ask = ValidateInput.from_dict(request)
    policy = Policy.from_dict(ask.policy)
    raw = runtime.platform().read_data(ask.data)
    report = validate_chat_data(policy.data, raw) if policy.is_chat else check_data(policy.data, policy.label, raw)
    return ValidationResult(report, hashlib.sha256(raw).hexdigest()).to_dict()


@bp.activity_trigger(input_name="request", activity=NEWEST_DATA)
@marks_transient
def newest_data_activity(request: Answer) -> Answer:
    """The newest data file landed for the model (none: ``data`` is null)."""
    model = ModelRef.from_dict(request).model
    return NewestData(runtime.landing().newest(model, runtime.policy(model).data.allowed_suffixes)).to_dict()


@bp.activity_trigger(input_name="request", activity=SAMPLE_ROWS)
@marks_transient
def sample_rows_activity(request: Answer) -> Answer:
    """The first rows of a data file, without the label, as scoring requests (only the file's head is read)."""
    ask = SampleInput.from_dict(request)
    head = runtime.platform().read_head(DataRef(url=ask.url), smoke.HEAD_BYTES)
    if ask.chat:
        return Sample(smoke.sample_prompts(head, ask.rows, smoke.HEAD_BYTES)).to_dict()
    return Sample(smoke.sample_rows(head, ask.label, ask.rows, smoke.HEAD_BYTES)).to_dict()


# -- training and registry ---------------------------------------------------------------------
@bp.activity_trigger(input_name="request", activity=SUBMIT_TRAINING)
@marks_transient
def submit_training_activity(request: Answer) -> Answer:
    """Start the training job (idempotent for the same run id)."""
    return runtime.platform().submit_training(TrainRequest.from_dict(request)).to_dict()


@bp.activity_trigger(input_name="request", activity=SUBMIT_DATA_CHECK)
@marks_transient
def submit_data_check_activity(request: Answer) -> Answer:
    """Start a chat model's data check job (tokens and PII: it needs the base model's tokenizer, so it is a job)."""
    return runtime.platform().submit_data_check(DataCheckRequest.from_dict(request)).to_dict()


@bp.activity_trigger(input_name="request", activity=SUBMIT_EVALUATION)
@marks_transient
def submit_evaluation_activity(request: Answer) -> Answer:
    """Start the evaluation job: candidate and champion on the training job's held-out part (a job, so the
    Function App never loads a model)."""
    return runtime.platform().submit_evaluation(EvaluationRequest.from_dict(request)).to_dict()


@bp.activity_trigger(input_name="request", activity=GET_JOB)
@marks_transient
def get_job_activity(request: Answer) -> Answer:
    """Poll a training or evaluation job."""
    return runtime.platform().get_job(JobRef.from_dict(request).job_id).to_dict()


@bp.activity_trigger(input_name="request", activity=CANCEL_JOB)
@marks_transient
def cancel_job_activity(request: Answer) -> Answer:
    """Stop a job the run no longer waits for (its timeout passed, or an operator aborted the run)."""
    ask = JobRef.from_dict(request)
    return runtime.platform().cancel_job(ask.job_id, ask.reason).to_dict()


@bp.activity_trigger(input_name="request", activity=GET_ALIAS)
@marks_transient
def get_alias_activity(request: Answer) -> Answer:
    """A version by alias (``champion``, ``previous``) or by number; ``version`` null if there is none."""
    ask = VersionQuery.from_dict(request)
    platform = runtime.platform()
    if ask.version:
        try:
            return FoundVersion(platform.get_model_version(ask.model, ask.version)).to_dict()
        except NotFoundError:
            return FoundVersion(None).to_dict()
    return FoundVersion(platform.get_alias(ask.model, ask.alias or "")).to_dict()


@bp.activity_trigger(input_name="request", activity=REGISTER_MODEL)
@marks_transient
def register_activity(request: Answer) -> Answer:
    """Register the trained model with lineage tags (announces ModelRegistered)."""
    ask = RegisterInput.from_dict(request)
    version = runtime.platform().register_model(ask.model, ask.job, ask.tags)
    telemetry.emit("ModelRegistered", model=version.name, version=version.version, run_id=ask.tags.get("run_id"))
    return version.to_dict()


@bp.activity_trigger(input_name="request", activity=SET_ALIAS)
@marks_transient
def set_alias_activity(request: Answer) -> None:
    """Point an alias at a version."""
    ask = AliasChange.from_dict(request)
    runtime.platform().set_alias(ask.model, ask.alias, ask.version)


@bp.activity_trigger(input_name="request", activity=TAG_VERSION)
@marks_transient
def tag_version_activity(request: Answer) -> None:
    """Add tags to a version."""
    ask = VersionTags.from_dict(request)
    runtime.platform().set_version_tags(ask.model, ask.version, ask.tags)


# -- serving -----------------------------------------------------------------------------------
@bp.activity_trigger(input_name="request", activity=BEGIN_DEPLOYMENT)
@marks_transient
def begin_deployment_activity(request: Answer) -> Answer:
    """Start creating a deployment at 0 % traffic (a chat model's with its prompt, when the release has one)."""
    ask = DeployInput.from_dict(request)
    return runtime.platform().begin_deployment(ask.endpoint, ask.deployment, ask.version, ask.prompt).to_dict()


@bp.activity_trigger(input_name="request", activity=GET_OPERATION)
@marks_transient
def get_operation_activity(request: Answer) -> Answer:
    """Poll a long-running operation."""
    return runtime.platform().get_operation(OperationRef.from_dict(request).operation_id).to_dict()


@bp.activity_trigger(input_name="request", activity=GET_TRAFFIC)
@marks_transient
def get_traffic_activity(request: Answer) -> Answer:
    """The endpoint's live split."""
    split = runtime.platform().get_traffic(EndpointRef.from_dict(request).endpoint)
    return TrafficState(split.traffic, split.mirror_traffic, _now(), split.updating).to_dict()


@bp.activity_trigger(input_name="request", activity=SET_TRAFFIC)
@marks_transient
def set_traffic_activity(request: Answer) -> Answer:
    """Start replacing the split; ``at`` is when it was applied, or, while the platform is still ``updating``,
    when it was asked (the orchestrator then polls GET_TRAFFIC until the platform reports it done)."""
    ask = TrafficChange.from_dict(request)
    applied = runtime.platform().set_traffic(ask.endpoint, TrafficSplit(ask.traffic, ask.mirror_traffic,
                                                                        sticky=ask.sticky))
    telemetry.emit("TrafficChanged", model=ask.model, endpoint=ask.endpoint, traffic=applied.traffic,
                   mirror=applied.mirror_traffic)
    return TrafficState(applied.traffic, applied.mirror_traffic, _now(), applied.updating).to_dict()


@bp.activity_trigger(input_name="request", activity=SMOKE_TEST)
@marks_transient
def smoke_test_activity(request: Answer) -> Answer:
    """Score the sample rows straight on the new deployment; a failed call is the finding, not an error."""
    ask = SmokeInput.from_dict(request)
    try:
        answers: list[Any] | None = runtime.platform().score(ask.endpoint, ask.deployment, ask.rows)
        error = ""
    except Exception as exc:  # a broken deployment is what a smoke test is for; an unreachable platform is not
        if transient(exc):
            raise
        answers, error = None, f"{type(exc).__name__}: {exc}"
    passed, reason = smoke.verdict(len(ask.rows), answers, error)
    return SmokeResult(passed, reason, len(ask.rows)).to_dict()


@bp.activity_trigger(input_name="request", activity=DEPLOYMENT_METRICS)
@marks_transient
def deployment_metrics_activity(request: Answer) -> Answer:
    """Health numbers of one deployment from ``start`` until ``end`` (or now)."""
    ask = MetricsQuery.from_dict(request)
    return runtime.platform().deployment_metrics(ask.endpoint, ask.deployment, ask.start, ask.end or _now()).to_dict()


AB_ANSWERS_READ = 200_000  # a bound on the answers one look reads per arm


@bp.activity_trigger(input_name="request", activity=AB_LOOK)
@marks_transient
def ab_look_activity(request: Answer) -> Answer:
    """One look at a release's A/B phase: both arms' answers since ``start``, joined by request id to the ground
    truth that arrived since, judged by ``mlops.experiment`` (reads only)."""
    ask = AbLookInput.from_dict(request)
    platform, now = runtime.platform(), _now()
    champion, challenger = (platform.predictions_by_id(ask.endpoint, deployment, ask.start, now, AB_ANSWERS_READ)
                            for deployment in (ask.champion, ask.challenger))
    labels = runtime.feedback().labels(ask.model, ask.start, now)
    plan = AbTest.model_validate(ask.plan)
    units = platform.units_by_id(ask.endpoint, ask.start, now, 2 * AB_ANSWERS_READ) if plan.unit_header else {}
    return abtest.judge(plan, champion, challenger, labels, ask.guardrails, units)


# -- the lifecycle's own bookkeeping -----------------------------------------------------------
@bp.activity_trigger(input_name="request", activity=TAKE_PENDING)
@marks_transient
def take_pending_activity(request: Answer) -> Answer:
    """Take the model's most urgent pending request."""
    taken = runtime.control().take_request(ModelRef.from_dict(request).model)
    return PendingRequest(None if taken is None else taken.to_dict()).to_dict()


@bp.activity_trigger(input_name="request", activity=QUEUE_REQUEST)
@marks_transient
def queue_request_activity(request: Answer) -> Answer:
    """Queue a lifecycle request (a duplicate dedup key is dropped)."""
    return Queued(runtime.control().put_request(Request.from_dict(request))).to_dict()


@bp.activity_trigger(input_name="request", activity=RECORD_INCIDENT)
@marks_transient
def record_incident_activity(request: Answer) -> None:
    """Append an incident to the model's log."""
    incident = Incident.from_dict(request)
    runtime.control().record_incident(incident.to_dict())
    telemetry.emit("RolledBack", model=incident.model, version=incident.to_version, run_id=incident.run_id,
                   from_version=incident.from_version, reason=incident.reason)


@bp.activity_trigger(input_name="request", activity=NOTIFY)
def notify_activity(request: Answer) -> Answer:
    """Tell someone: an event on the topic and a webhook message; failures are logged and said, never raised."""
    return runtime.notifier().send(Notice.from_dict(request)).to_dict()


@bp.activity_trigger(input_name="request", activity=PLAN_CLEAN_UP)
@marks_transient
def plan_clean_up_activity(request: Answer) -> Answer:
    """The model's deployments whose rollback window ended or whose version was turned down (reads only)."""
    ask = CleanUpInput.from_dict(request)
    endpoint = runtime.policy(ask.model).release.endpoint
    removals = cleanup.plan(runtime.platform(), ask.model, endpoint, datetime.fromisoformat(ask.now))
    return CleanUpPlan(ask.model, endpoint, removals).to_dict()


@bp.activity_trigger(input_name="request", activity=DELETE_DEPLOYMENT)
@marks_transient
def delete_deployment_activity(request: Answer) -> None:
    """Delete one deployment the clean-up plan named."""
    ask = DeleteDeployment.from_dict(request)
    runtime.platform().delete_deployment(ask.endpoint, ask.removal.deployment)
    telemetry.emit("DeploymentDeleted", model=ask.model, version=ask.removal.version,
                   deployment=ask.removal.deployment, reason=ask.removal.reason)
