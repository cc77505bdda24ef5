"""A run: the request that starts it, its deterministic ids, and the status document it shows.

Names and the typed inputs and outputs of every orchestration and activity are in
``mlops.contracts``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ._json import Json
from .contracts import PROMPT, RELEASE, RETRAIN, ROLLBACK, PromptInput, ReleaseInput, RetrainInput, RollbackInput
from .vocabulary import StageState

RunInput = RetrainInput | ReleaseInput | RollbackInput | PromptInput
_KINDS: dict[type, str] = {RetrainInput: RETRAIN, ReleaseInput: RELEASE, RollbackInput: ROLLBACK,
                           PromptInput: PROMPT}


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

    @classmethod
    def of(cls, run: RunInput, dedup_key: str, requested_by: str = "event", requested_at: str = "") -> Request:
        """The request that starts the run ``run`` (its kind follows from the input's type)."""
        return cls(kind=_KINDS[type(run)], model=run.model, dedup_key=dedup_key, payload=run.to_dict(),
                   requested_at=requested_at, requested_by=requested_by)

    def run_input(self) -> RunInput:
        """The typed input of the run this request starts."""
        kind = {k: t for t, k in _KINDS.items()}[self.kind]
        return kind.from_dict({**self.payload, "model": self.model})  # type: ignore[no-any-return,attr-defined]

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
    state: StageState = StageState.PENDING
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

    def stage_named(self, name: str) -> Stage:
        """The stage called ``name`` (added at the end if the timeline has none)."""
        for stage in self.stages:
            if stage.name == name:
                return stage
        stage = Stage(name)
        self.stages.append(stage)
        return stage

    def begin(self, name: str, now: datetime, **detail: Any) -> None:
        """Mark a stage running."""
        stage = self.stage_named(name)
        stage.state, stage.started = StageState.RUNNING, now.isoformat()
        stage.detail.update(detail)
        self.stage = name

    def end(self, name: str, now: datetime, ok: bool = True, **detail: Any) -> None:
        """Mark a stage finished (succeeded or failed)."""
        stage = self.stage_named(name)
        stage.state, stage.ended = (StageState.SUCCEEDED if ok else StageState.FAILED), now.isoformat()
        stage.started = stage.started or stage.ended
        stage.detail.update(detail)

    def skip(self, name: str, reason: str) -> None:
        """Mark a stage skipped, with why."""
        stage = self.stage_named(name)
        stage.state = StageState.SKIPPED
        stage.detail["reason"] = reason

    def finish(self, verdict: str, message: str) -> None:
        """Set the run's final verdict."""
        self.verdict = verdict
        self.message = message
        self.stage = None


class RunFailed(Exception):
    """Raised by an orchestrator to end its run Failed; the message is the readable verdict."""
