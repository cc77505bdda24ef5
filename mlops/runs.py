"""Names, typed inputs/outputs and the status document of the lifecycle's orchestrations.

Orchestration and activity names are constants here and nowhere else. Every
orchestration and activity takes one dataclass and returns one, crossing the Durable
boundary as plain JSON through ``to_dict``/``from_dict``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from ._json import Json

# -- orchestrations ------------------------------------------------------------------------
LIFECYCLE = "model_lifecycle"
RETRAIN = "retrain"
RELEASE = "release"
ROLLBACK = "rollback"
RUN_KINDS = (RETRAIN, RELEASE, ROLLBACK)

# -- activities ----------------------------------------------------------------------------
LOAD_POLICY = "load_policy"
VALIDATE_DATA = "validate_data"
SUBMIT_TRAINING = "submit_training"
GET_JOB = "get_training_job"
EVALUATE_MODEL = "evaluate_model"
GET_ALIAS = "get_model_alias"
REGISTER_MODEL = "register_model"
SET_ALIAS = "set_model_alias"
TAG_VERSION = "tag_model_version"
BEGIN_DEPLOYMENT = "begin_deployment"
GET_OPERATION = "get_operation"
GET_TRAFFIC = "get_traffic"
SET_TRAFFIC = "set_traffic"
SMOKE_TEST = "smoke_test"
DEPLOYMENT_METRICS = "deployment_metrics"
TAKE_PENDING = "take_pending_request"
RECORD_INCIDENT = "record_incident"
QUEUE_RETRAIN = "queue_retrain_on_latest_data"
CLEAN_UP = "clean_up_deployments"

# -- external events operators send --------------------------------------------------------
APPROVAL_EVENT = "approval"
PAUSE_EVENT = "pause"
RESUME_EVENT = "resume"
ABORT_EVENT = "abort"

Kind = Literal["retrain", "release", "rollback"]


def event_data(value: Any) -> dict[str, Any]:
    """An external event's payload as a dict.

    The Durable SDK's ``raise_event`` JSON-encodes the data twice, so an orchestrator may get a
    JSON string where a dict was sent (azure-functions-durable-python issue #295).
    """
    for _ in range(2):
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                return {"reason": value}
    return value if isinstance(value, dict) else {"value": value}


def short_hash(*parts: str, length: int = 12) -> str:
    """A deterministic short id from strings (for instance ids)."""
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:length]


@dataclass(frozen=True)
class Request(Json):
    """A lifecycle action asked for by an event or an operator."""

    kind: str
    model: str
    dedup_key: str
    payload: dict[str, Any] = field(default_factory=dict)
    requested_at: str = ""
    requested_by: str = "event"

    @property
    def run_id(self) -> str:
        """The deterministic instance id of the run this request starts."""
        return f"{self.kind}-{self.model}-{short_hash(self.dedup_key)}"


def deployment_name(model: str, version: str) -> str:
    """Azure ML deployment names: letters, digits and dashes, starting with a letter, at most 32."""
    safe = "".join(ch if ch.isalnum() else "-" for ch in model.lower()).strip("-") or "model"
    suffix = f"-v{version}"
    return (safe[: 32 - len(suffix)] + suffix) if safe[0].isalpha() else ("m" + safe)[: 32 - len(suffix)] + suffix


def lifecycle_id(model: str) -> str:
    """The singleton instance id of a model's lifecycle orchestration."""
    return f"lifecycle-{model}"


# -- the status document ---------------------------------------------------------------------
@dataclass
class Stage(Json):
    """One stage of a run's timeline."""

    name: str
    state: str = "pending"  # pending | running | succeeded | failed | skipped
    started: str | None = None
    ended: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class RunStatus(Json):
    """What ``set_custom_status`` shows: kind, model, stage timeline, verdicts, traffic."""

    kind: str
    model: str
    stages: list[Stage]
    version: str | None = None
    stage: str | None = None
    verdict: str | None = None
    gates: list[dict[str, Any]] = field(default_factory=list)
    traffic: dict[str, Any] = field(default_factory=dict)
    analysis: dict[str, Any] = field(default_factory=dict)
    message: str = ""

    @classmethod
    def new(cls, kind: str, model: str, stage_names: list[str]) -> RunStatus:
        """A fresh timeline with every stage pending."""
        return cls(kind=kind, model=model, stages=[Stage(n) for n in stage_names])

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunStatus:
        """Rebuild, nested stages included."""
        stages = [Stage.from_dict(s) for s in data.get("stages", [])]
        return cls(**{**{k: v for k, v in data.items() if k in cls.__dataclass_fields__}, "stages": stages})

    def _get(self, name: str) -> Stage:
        for stage in self.stages:
            if stage.name == name:
                return stage
        stage = Stage(name)
        self.stages.append(stage)
        return stage

    def begin(self, name: str, now: datetime, **detail: Any) -> None:
        """Mark a stage running."""
        stage = self._get(name)
        stage.state, stage.started = "running", now.isoformat()
        stage.detail.update(detail)
        self.stage = name

    def end(self, name: str, now: datetime, ok: bool = True, **detail: Any) -> None:
        """Mark a stage finished (succeeded or failed)."""
        stage = self._get(name)
        stage.state, stage.ended = ("succeeded" if ok else "failed"), now.isoformat()
        stage.started = stage.started or stage.ended
        stage.detail.update(detail)

    def skip(self, name: str, reason: str) -> None:
        """Mark a stage skipped, with why."""
        stage = self._get(name)
        stage.state = "skipped"
        stage.detail["reason"] = reason

    def finish(self, verdict: str, message: str) -> None:
        """Set the run's final verdict."""
        self.verdict = verdict
        self.message = message
        self.stage = None


class RunFailed(Exception):
    """Raised by an orchestrator to end its run Failed; the message is the readable verdict."""
