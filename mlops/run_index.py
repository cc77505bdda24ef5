"""The run index: one small entry per run, so the operator API lists runs without reading Durable's instances.

Why: ``GET /api/runs`` used to list every Durable instance and filter in Python, which grows with
every run ever made, and a finished run's history could never be purged without losing it from
the list. The model's lifecycle writes an entry when it starts a run and again when the run ends
(the ``record_run`` activity: orchestrator code stays deterministic); the retention purge writes
the exact outcome of each run it is about to purge; a one-off backfill indexes runs made before
the index existed. The entry outlives the run's Durable history.

Entries are named so that a plain, ascending listing is newest first (an inverted time), grouped
in buckets of one day so that a query with ``to`` skips whole days. Paging is by position in the
store's own listing, so a page never costs more than the entries it scans (at most ``SCAN_LIMIT``
per request: a rare filter can return a short page with a continuation).
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Protocol

from ._json import Json
from .contracts import RUN_KINDS

RECORD_RUN = "record_run"
FINISHED_STATUSES = ("Completed", "Failed", "Terminated")
RUNNING = "Running"
SCAN_LIMIT = 5000  # entries one request may read before it answers with what it has and a continuation
MESSAGE_CHARS = 300
_MAX_MS = 10 ** 13  # milliseconds since 1970 stay below this until the year 2286
_MAX_DAY = 10 ** 6


@dataclass(frozen=True)
class RunEntry(Json):
    """One run as the index keeps it: what ``GET /api/runs`` shows, small enough for a blob's metadata."""

    id: str
    kind: str
    model: str
    created: str  # ISO 8601, UTC; the index's order
    status: str = RUNNING
    verdict: str | None = None
    version: str | None = None
    message: str = ""
    ended: str | None = None

    def ended_as(self, status: str, verdict: str | None, ended: str, version: str | None = None,
                 message: str = "") -> RunEntry:
        """This entry once its run has ended."""
        return replace(self, status=status, verdict=verdict, ended=ended, version=version or self.version,
                       message=message[:MESSAGE_CHARS] or self.message)

    @property
    def finished(self) -> bool:
        """True once the run completed, failed or was terminated."""
        return self.status in FINISHED_STATUSES

    def summary(self) -> dict[str, Any]:
        """One line of ``GET /api/runs``: the keys ``mlops.operator.run_summary`` gives, plus ``ended``."""
        return {"id": self.id, "kind": self.kind, "model": self.model, "status": self.status,
                "created": self.created, "updated": self.ended or self.created, "stage": None,
                "verdict": self.verdict, "version": self.version, "message": self.message, "ended": self.ended}


def created_at(entry: RunEntry) -> datetime:
    """The entry's creation time, timezone-aware (UTC)."""
    moment = datetime.fromisoformat(entry.created.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def day_bucket(moment: datetime) -> str:
    """The bucket of entries created on ``moment``'s UTC day: newer days sort first."""
    days = int(moment.astimezone(UTC).timestamp() // 86400)
    return f"{_MAX_DAY - 1 - days:06d}"


def entry_key(entry: RunEntry) -> str:
    """The entry's name within its day bucket: newer entries sort first, the run id breaks ties."""
    ms = int(created_at(entry).timestamp() * 1000)
    return f"{_MAX_MS - 1 - ms:013d}-{entry.id}"


def entry_from_status(status: dict[str, Any], known: RunEntry | None = None) -> RunEntry:
    """The entry for a run from its Durable status document (a backfill, or a run about to be purged).

    ``known``, the entry already indexed, keeps its ``created`` (the entry's name) so the run is not
    indexed twice under two times.
    """
    raw = status.get("customStatus")
    custom: dict[str, Any] = raw if isinstance(raw, dict) else {}
    kind, rest = status["instanceId"].split("-", 1)
    model = rest.rsplit("-", 1)[0]  # run ids are <kind>-<model>-<hash> (mlops.runs.Request.run_id)
    runtime_status = str(status.get("runtimeStatus"))
    created = known.created if known is not None else str(status.get("createdTime") or "")
    finished = runtime_status in FINISHED_STATUSES
    return RunEntry(status["instanceId"], kind, model, created, runtime_status,
                    custom.get("verdict") or ("failed" if runtime_status == "Failed" else None),
                    custom.get("version") or (known.version if known else None),
                    str(custom.get("message") or "")[:MESSAGE_CHARS],
                    str(status.get("lastUpdatedTime") or "") or None if finished else None)


@dataclass(frozen=True)
class RunQuery:
    """What ``GET /api/runs`` asks for; every field optional but ``top``."""

    model: str | None = None
    kind: str | None = None
    statuses: frozenset[str] | None = None
    created_from: datetime | None = None  # timezone-aware
    created_to: datetime | None = None
    top: int = 50

    def __post_init__(self) -> None:
        if self.kind is not None and self.kind not in RUN_KINDS:
            raise ValueError(f"kind must be one of {', '.join(RUN_KINDS)}, got {self.kind!r}")
        if not 1 <= self.top <= 200:
            raise ValueError("top must be an integer from 1 to 200")

    def matches(self, entry: RunEntry) -> bool:
        """True if ``entry`` is one of the runs asked for."""
        if (self.model and entry.model != self.model) or (self.kind and entry.kind != self.kind):
            return False
        if self.statuses is not None and entry.status not in self.statuses:
            return False
        created = created_at(entry)
        if self.created_from is not None and created < self.created_from:
            return False
        return self.created_to is None or created <= self.created_to

    def buckets(self, existing: list[str]) -> list[str]:
        """The day buckets of ``existing`` that can hold entries asked for, newest first."""
        low = day_bucket(self.created_to) if self.created_to is not None else None
        high = day_bucket(self.created_from) if self.created_from is not None else None
        return sorted(b for b in existing if (low is None or b >= low) and (high is None or b <= high))


@dataclass(frozen=True)
class Cursor:
    """Where the next page starts: a day bucket ("" for the whole scope), the store's marker, entries to skip."""

    bucket: str
    marker: str | None = None
    skip: int = 0


def encode_cursor(cursor: Cursor) -> str:
    """The continuation token of ``GET /api/runs``."""
    body = {"b": cursor.bucket, "m": cursor.marker, "s": cursor.skip}
    return base64.urlsafe_b64encode(json.dumps(body, separators=(",", ":")).encode()).decode()


def decode_cursor(token: str | None) -> Cursor | None:
    """The cursor in a continuation token; ValueError for a token this index did not write."""
    if not token:
        return None
    try:
        body = json.loads(base64.urlsafe_b64decode(token.encode()))
        cursor = Cursor(str(body["b"]), body["m"] if body["m"] is None else str(body["m"]), int(body["s"]))
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:
        raise ValueError("continuation token is not valid") from exc
    if not ((cursor.bucket == "" or (cursor.bucket.isdigit() and len(cursor.bucket) == 6)) and cursor.skip >= 0):
        raise ValueError("continuation token is not valid")
    return cursor


@dataclass
class RunPage:
    """One page of the index: entries newest first, the cursor of the next page, and the total when it is known.

    ``total`` is known only when the whole answer fits in this first page: counting more would read
    the whole index, which is what the index exists to avoid.
    """

    entries: list[RunEntry] = field(default_factory=list)
    next: Cursor | None = None
    total: int | None = None


class RunIndex(Protocol):
    """Where run entries live (the control store's container)."""

    def record_run(self, entry: RunEntry) -> None:
        """Write (or overwrite) the entry of a run."""
        ...

    def run_entry(self, run_id: str) -> RunEntry | None:
        """The entry of one run, None if it was never indexed."""
        ...

    def query_runs(self, query: RunQuery, cursor: Cursor | None = None) -> RunPage:
        """The entries ``query`` asks for, newest first, from ``cursor`` on."""
        ...

    def last_purge(self) -> dict[str, Any] | None:
        """The last retention purge (``at``, ``cutoff``, ``indexed``, ``purged``); None before the first."""
        ...

    def record_purge(self, outcome: dict[str, Any]) -> None:
        """Remember a retention purge."""
        ...
