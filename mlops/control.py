"""The control store: pending lifecycle requests per model, and the incident log.

Why a store outside Durable: a model has at most one lifecycle action in flight, and events
that arrive meanwhile must be queued or coalesced, never lost. Each trigger merges its
request into ``pending/<model>.json`` (optimistic concurrency on the blob's ETag) and then
makes sure the model's singleton lifecycle orchestration runs; the orchestration takes
requests one at a time. A duplicate delivery (same dedup key) is dropped. A burst of
requests of one kind coalesces to the newest, so 20 files give one run now and at most
one after it. The timer-triggered monitor restarts a lifecycle for any model that still
has pending requests (a request written just as its lifecycle finished).

Priority when several kinds wait: rollback, then release, then retrain.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Protocol

from .contracts import RELEASE, RETRAIN, ROLLBACK
from .runs import Request

PRIORITY = (ROLLBACK, RELEASE, RETRAIN)
SEEN_LIMIT = 500


@dataclass
class PendingState:
    """What waits for one model: at most one request per kind, and the dedup keys already seen."""

    pending: dict[str, dict[str, Any]] = field(default_factory=dict)
    seen: list[str] = field(default_factory=list)

    @classmethod
    def from_json(cls, raw: bytes | str | None) -> PendingState:
        """Parse the stored document (empty when absent)."""
        if not raw:
            return cls()
        data = json.loads(raw)
        return cls(pending=dict(data.get("pending", {})), seen=list(data.get("seen", [])))

    def to_json(self) -> str:
        """Serialise for storage."""
        return json.dumps({"pending": self.pending, "seen": self.seen[-SEEN_LIMIT:]})


def merge(state: PendingState, request: Request) -> bool:
    """Add a request; False if its dedup key was seen already (a duplicate delivery)."""
    if request.dedup_key in state.seen:
        return False
    state.seen.append(request.dedup_key)
    # Newest wins within a kind: the latest data, the latest registration, one rollback.
    state.pending[request.kind] = request.to_dict()
    return True


def take(state: PendingState) -> Request | None:
    """Remove and return the most urgent pending request."""
    for kind in PRIORITY:
        if kind in state.pending:
            return Request.from_dict(state.pending.pop(kind))
    return None


class ControlStore(Protocol):
    """Where pending requests and incidents live."""

    def put_request(self, request: Request) -> bool:
        """Merge a request into the model's pending state; False for a duplicate."""
        ...

    def take_request(self, model: str) -> Request | None:
        """Take the most urgent pending request of a model."""
        ...

    def models_with_pending(self) -> list[str]:
        """Models that have requests waiting."""
        ...

    def record_incident(self, incident: dict[str, Any]) -> None:
        """Append an incident (rollback, alert) to the model's log."""
        ...

    def incidents(self, model: str, limit: int = 50) -> list[dict[str, Any]]:
        """The newest incidents of a model, newest first."""
        ...

    def record_audit(self, entry: dict[str, Any]) -> None:
        """Append an operator action (who, what, when, why) to the audit trail."""
        ...

    def audit(self, limit: int = 100) -> list[dict[str, Any]]:
        """The newest audit entries, newest first."""
        ...
