"""Activities: thin adapters from JSON to one platform-port (or control-store) call each."""

from __future__ import annotations

import csv
import hashlib
import io
from datetime import UTC, datetime
from typing import Any

import azure.durable_functions as df

from adapters import runtime
from mlops import cleanup, telemetry
from mlops.gates import validate_data as check_data
from mlops.policy import Policy
from mlops.ports import DataRef, JobStatus, ModelVersion, TrafficSplit, TrainRequest
from mlops.runs import (
    BEGIN_DEPLOYMENT,
    CLEAN_UP,
    DEPLOYMENT_METRICS,
    EVALUATE_MODEL,
    GET_ALIAS,
    GET_JOB,
    GET_OPERATION,
    GET_TRAFFIC,
    LOAD_POLICY,
    QUEUE_RETRAIN,
    RECORD_INCIDENT,
    REGISTER_MODEL,
    RETRAIN,
    SET_ALIAS,
    SET_TRAFFIC,
    SMOKE_TEST,
    SUBMIT_TRAINING,
    TAG_VERSION,
    TAKE_PENDING,
    VALIDATE_DATA,
    Request,
)

bp = df.Blueprint()


def _now() -> str:
    return datetime.now(UTC).isoformat()


@bp.activity_trigger(input_name="model", activity=LOAD_POLICY)
def load_policy_activity(model: str) -> dict[str, Any]:
    """The model's policy, validated, as a dict (with its hash)."""
    return runtime.policy(model).to_dict()


@bp.activity_trigger(input_name="request", activity=VALIDATE_DATA)
def validate_data_activity(request: dict[str, Any]) -> dict[str, Any]:
    """Read the landed file and check it against the policy's data rules."""
    policy = Policy.from_dict(request["policy"])
    raw = runtime.platform().read_data(DataRef.from_dict(request["data"]))
    report = check_data(policy.data, policy.label, raw)
    return {**report.to_dict(), "sha256": hashlib.sha256(raw).hexdigest()}


@bp.activity_trigger(input_name="request", activity=SUBMIT_TRAINING)
def submit_training_activity(request: dict[str, Any]) -> dict[str, Any]:
    """Start the training job (idempotent for the same run id)."""
    return runtime.platform().submit_training(TrainRequest.from_dict(request)).to_dict()


@bp.activity_trigger(input_name="job_id", activity=GET_JOB)
def get_job_activity(job_id: str) -> dict[str, Any]:
    """Poll the training job."""
    return runtime.platform().get_job(job_id).to_dict()


@bp.activity_trigger(input_name="request", activity=EVALUATE_MODEL)
def evaluate_activity(request: dict[str, Any]) -> dict[str, float]:
    """Metrics of one model on the held-out split of the data."""
    return runtime.platform().evaluate(request["model_uri"], DataRef.from_dict(request["data"]), request["label"],
                                       float(request["test_fraction"]), int(request["seed"]))


@bp.activity_trigger(input_name="request", activity=GET_ALIAS)
def get_alias_activity(request: dict[str, Any]) -> dict[str, Any] | None:
    """A version by alias (``champion``, ``previous``) or by number; None if there is none."""
    platform = runtime.platform()
    if request.get("version"):
        from mlops.errors import NotFoundError

        try:
            return platform.get_model_version(request["model"], str(request["version"])).to_dict()
        except NotFoundError:
            return None
    found = platform.get_alias(request["model"], request["alias"])
    return None if found is None else found.to_dict()


@bp.activity_trigger(input_name="request", activity=REGISTER_MODEL)
def register_activity(request: dict[str, Any]) -> dict[str, Any]:
    """Register the trained model with lineage tags (announces ModelRegistered)."""
    job = JobStatus.from_dict(request["job"])
    version = runtime.platform().register_model(request["model"], job, request["tags"])
    telemetry.emit("ModelRegistered", model=version.name, version=version.version, run_id=request["tags"].get("run_id"))
    return version.to_dict()


@bp.activity_trigger(input_name="request", activity=SET_ALIAS)
def set_alias_activity(request: dict[str, Any]) -> None:
    """Point an alias at a version."""
    runtime.platform().set_alias(request["model"], request["alias"], str(request["version"]))


@bp.activity_trigger(input_name="request", activity=TAG_VERSION)
def tag_version_activity(request: dict[str, Any]) -> None:
    """Add tags to a version."""
    runtime.platform().set_version_tags(request["model"], str(request["version"]), request["tags"])


@bp.activity_trigger(input_name="request", activity=BEGIN_DEPLOYMENT)
def begin_deployment_activity(request: dict[str, Any]) -> dict[str, Any]:
    """Start creating a deployment at 0 % traffic."""
    model = ModelVersion.from_dict(request["model"])
    return runtime.platform().begin_deployment(request["endpoint"], request["deployment"], model).to_dict()


@bp.activity_trigger(input_name="operation_id", activity=GET_OPERATION)
def get_operation_activity(operation_id: str) -> dict[str, Any]:
    """Poll a long-running operation."""
    return runtime.platform().get_operation(operation_id).to_dict()


@bp.activity_trigger(input_name="endpoint", activity=GET_TRAFFIC)
def get_traffic_activity(endpoint: str) -> dict[str, Any]:
    """The endpoint's live split."""
    return {**runtime.platform().get_traffic(endpoint).to_dict(), "read_at": _now()}


@bp.activity_trigger(input_name="request", activity=SET_TRAFFIC)
def set_traffic_activity(request: dict[str, Any]) -> dict[str, Any]:
    """Replace the split; ``applied_at`` is the platform-side time metrics windows start from."""
    split = TrafficSplit(traffic={k: int(v) for k, v in request["traffic"].items()},
                         mirror_traffic={k: int(v) for k, v in request.get("mirror_traffic", {}).items()})
    applied = runtime.platform().set_traffic(request["endpoint"], split)
    telemetry.emit("TrafficChanged", model=request.get("model", request["endpoint"]), endpoint=request["endpoint"],
                   traffic=applied.traffic, mirror=applied.mirror_traffic)
    return {**applied.to_dict(), "applied_at": _now()}


@bp.activity_trigger(input_name="request", activity=SMOKE_TEST)
def smoke_test_activity(request: dict[str, Any]) -> dict[str, Any]:
    """Score sample rows from the model's own training data straight on the new deployment."""
    platform = runtime.platform()
    model = request["model"]
    deployment = request["deployment"]
    version = deployment.rsplit("-v", 1)[-1]
    mv = platform.get_model_version(model, version)
    policy = runtime.policy(model)
    rows = list(csv.DictReader(io.StringIO(platform.read_data(DataRef(url=mv.tags["data_url"])).decode())))
    sample = [{k: _number(v) for k, v in row.items() if k != policy.label} for row in rows[: int(request["requests"])]]
    try:
        predictions = platform.score(request["endpoint"], deployment, sample)
    except Exception as exc:  # a broken deployment is the finding, not a crash of the activity
        return {"passed": False, "reason": f"{type(exc).__name__}: {exc}", "requests": len(sample)}
    if len(predictions) != len(sample):
        return {"passed": False, "reason": f"{len(predictions)} answers for {len(sample)} rows",
                "requests": len(sample)}
    return {"passed": True, "reason": "", "requests": len(sample)}


def _number(value: str) -> Any:
    for cast in (int, float):
        try:
            return cast(value)
        except ValueError:
            continue
    return value


@bp.activity_trigger(input_name="request", activity=DEPLOYMENT_METRICS)
def deployment_metrics_activity(request: dict[str, Any]) -> dict[str, Any]:
    """Health numbers of one deployment from ``start`` until now."""
    metrics = runtime.platform().deployment_metrics(request["endpoint"], request["deployment"], request["start"],
                                                    request.get("end") or _now())
    return {**metrics.to_dict(), "error_rate": metrics.error_rate}


@bp.activity_trigger(input_name="model", activity=TAKE_PENDING)
def take_pending_activity(model: str) -> dict[str, Any] | None:
    """Take the model's most urgent pending request."""
    request = runtime.control().take_request(model)
    return None if request is None else request.to_dict()


@bp.activity_trigger(input_name="incident", activity=RECORD_INCIDENT)
def record_incident_activity(incident: dict[str, Any]) -> None:
    """Append an incident to the model's log."""
    runtime.control().record_incident(incident)
    telemetry.emit("RolledBack", model=incident["model"], version=incident["to_version"], run_id=incident["run_id"],
                   from_version=incident["from_version"], reason=incident["reason"])


@bp.activity_trigger(input_name="request", activity=QUEUE_RETRAIN)
def queue_retrain_activity(request: dict[str, Any]) -> dict[str, Any] | None:
    """Queue a retrain on the newest data file landed for the model (None if there is none)."""
    model = request["model"]
    data = runtime.newest_landed(model, runtime.policy(model).data.allowed_suffixes)
    if data is None:
        return None
    queued = Request(kind=RETRAIN, model=model, dedup_key=f"after:{request['after']}", payload={"data": data},
                     requested_by="rollback")
    runtime.control().put_request(queued)
    return queued.to_dict()


@bp.activity_trigger(input_name="request", activity=CLEAN_UP)
def clean_up_activity(request: dict[str, Any]) -> list[dict[str, str]]:
    """Delete the model's deployments whose rollback window ended or whose version was turned down.

    ``request``: model, and now (the orchestration's clock). Returns what was deleted, and why.
    """
    model = request["model"]
    policy = runtime.policy(model)
    platform = runtime.platform()
    removed = []
    for removal in cleanup.plan(platform, model, policy.release.endpoint, datetime.fromisoformat(request["now"])):
        platform.delete_deployment(policy.release.endpoint, removal.deployment)
        telemetry.emit("DeploymentDeleted", model=model, version=removal.version, deployment=removal.deployment,
                       reason=removal.reason)
        removed.append({"deployment": removal.deployment, "version": removal.version, "reason": removal.reason})
    return removed
