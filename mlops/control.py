"""The control store: pending lifecycle requests per model, the incident log, and the run index.

Why a store outside Durable: a model has at most one lifecycle action in flight, and events
that arrive meanwhile must be queued or coalesced, never lost. Each trigger writes its
request as an entry of its own, named by its dedup key, and then makes sure the model's
singleton lifecycle orchestration runs; the orchestration takes requests one at a time.
Writers never contend (a burst of 1,000 events for one model is 1,000 independent writes),
and a duplicate delivery (same dedup key) finds its entry already there and is dropped.

Coalescing happens at take time: the newest waiting request of the most urgent kind is taken,
and every older request of that kind is coalesced into it, so 20 files give one run now and
at most one after it. The timer-triggered monitor restarts a lifecycle for any model that
still has requests waiting (a request written just as its lifecycle finished).

Entries are kept after they are taken: they are the dedup keys. Event Grid retries a delivery
for up to 24 hours (https://learn.microsoft.com/azure/event-grid/delivery-and-retry), so a key
is forgotten only once it was seen longer ago than the retention (``DEDUP_RETENTION`` by
default), and never while its request still waits.

Priority when several kinds wait: rollback, then release, then retrain.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from .contracts import PROMPT, RELEASE, RETRAIN, ROLLBACK
from .run_index import RunIndex
from .runs import Request

PRIORITY = (ROLLBACK, RELEASE, PROMPT, RETRAIN)
# Event Grid's 24 hours, plus a margin for a delivery that started just before the end and for clock skew.
DEDUP_RETENTION = timedelta(hours=26)


@dataclass(frozen=True)
class StoredRequest:
    """One request as stored: where, its kind, when its dedup key was first seen, and whether it was taken."""

    name: str  # the store's name for the entry; opaque here
    kind: str
    seen_at: datetime
    taken: bool = False


def _order(entry: StoredRequest) -> tuple[datetime, str]:
    return entry.seen_at, entry.name  # the name breaks ties, so every store instance picks the same one


def waiting(entries: Iterable[StoredRequest]) -> list[StoredRequest]:
    """Requests still to run, oldest first: not taken, and seen after the newest taken request of their kind.

    A request seen before that one was coalesced into its run (newest wins within a kind: the
    latest data, the latest registration, one rollback).
    """
    entries = list(entries)
    last_taken: dict[str, tuple[datetime, str]] = {}
    for entry in entries:
        if entry.taken:
            last_taken[entry.kind] = max(last_taken.get(entry.kind, _order(entry)), _order(entry))
    return sorted((e for e in entries if not e.taken and (e.kind not in last_taken or _order(e) > last_taken[e.kind])),
                  key=_order)


def next_request(entries: Iterable[StoredRequest]) -> StoredRequest | None:
    """The request to take now: the newest waiting one of the most urgent kind."""
    ready = waiting(entries)
    for kind in PRIORITY:
        of_kind = [e for e in ready if e.kind == kind]
        if of_kind:
            return of_kind[-1]
    return None


def expired(entries: Iterable[StoredRequest], now: datetime, retention: timedelta = DEDUP_RETENTION
            ) -> list[StoredRequest]:
    """Entries whose dedup keys may be forgotten at ``now``: seen longer than ``retention`` ago, not waiting.

    In the order to delete them: coalesced requests before taken ones, so a store that stops
    half-way never brings back a request that was already coalesced into a run.
    """
    entries = list(entries)
    still_waiting = {e.name for e in waiting(entries)}
    old = [e for e in entries if e.name not in still_waiting and now - e.seen_at > retention]
    return sorted(old, key=lambda e: (e.taken, _order(e)))


class ControlStore(RunIndex, Protocol):
    """Where pending requests, incidents, the audit trail and the run index (``mlops.run_index``) live."""

    def put_request(self, request: Request) -> bool:
        """Queue a request for its model; False for a duplicate (its dedup key was seen within the retention)."""
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
