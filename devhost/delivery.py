"""Event delivery: a durable queue in SQLite, retries on Event Grid's schedule, and dead-lettering.

Events that match a subscription are written to ``<state>/eventgrid.sqlite`` (one row per
event and subscription) before anyone is told they were accepted, so they survive a crash
or a restart. A dispatcher delivers due rows to the subscription's function through the same
code path as the webhook, one event per delivery, several deliveries at once, in no
guaranteed order (https://learn.microsoft.com/azure/event-grid/delivery-and-retry).

A failed delivery is retried after 10 s, 30 s, 1 min, 5 min, 10 min, 30 min, 1 h, 3 h, 6 h,
then every 12 h, on devhost's clock (so the virtual clock moves retries along), until
``maxDeliveryAttempts`` attempts were made or ``eventTimeToLiveInMinutes`` passed. The event
is then written to ``<state>/deadletter/<subscription>/<event id>.json`` with Event Grid's
dead-letter properties (``deadLetterReason``, ``deliveryAttempts``, ``lastDeliveryOutcome``,
``publishTime``, ``lastDeliveryAttemptTime``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .clock import Clock
from .config import private_file
from .eventgrid import CLOUDEVENTS, Batch, event_type, format_time, in_schema
from .eventgrid_webhook import EventGridTrigger
from .subscriptions import BLOB, TOPIC, Subscription

log = logging.getLogger("devhost.delivery")

# https://learn.microsoft.com/azure/event-grid/delivery-and-retry#retry-schedule
RETRY_SCHEDULE = (10, 30, 60, 300, 600, 1800, 3600, 3 * 3600, 6 * 3600)
LATER_RETRY = 12 * 3600
DB_FILE = "eventgrid.sqlite"
_SAFE = re.compile(r"[^A-Za-z0-9._-]")


def retry_delay(attempts: int) -> int:
    """Seconds to wait after the ``attempts``-th failed attempt."""
    return RETRY_SCHEDULE[attempts - 1] if attempts <= len(RETRY_SCHEDULE) else LATER_RETRY


@dataclass
class _Row:
    id: str
    subscription: str
    schema: str
    body: str
    attempts: int
    published_at: float
    last_error: str | None


def open_db(state_dir: Path) -> sqlite3.Connection:
    """The Event Grid state database (its own file; WAL, fully synchronous commits)."""
    db = sqlite3.connect(str(private_file(state_dir / DB_FILE)), isolation_level=None, check_same_thread=False,
                         timeout=30)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("""CREATE TABLE IF NOT EXISTS deliveries (
        id TEXT PRIMARY KEY, subscription TEXT NOT NULL, event_id TEXT NOT NULL, schema TEXT NOT NULL,
        body TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, next_at REAL NOT NULL, published_at REAL NOT NULL,
        last_attempt_at REAL, last_error TEXT)""")
    db.execute("CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (next_at)")
    return db


class DeliveryQueue:
    """Routes events to subscriptions, keeps them durably, and delivers them with retries."""

    def __init__(self, state_dir: Path, subs: list[Subscription], trigger: EventGridTrigger, clock: Clock,
                 concurrency: int = 16) -> None:
        self.state_dir = state_dir
        self.subs = {s.name: s for s in subs}
        self.trigger = trigger
        self.clock = clock
        self.concurrency = concurrency
        self.db = open_db(state_dir)
        self.delivered = 0
        self.dead_lettered = 0
        self._inflight: set[str] = set()
        self._attempts: set[asyncio.Task[None]] = set()
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        clock.on_advance(self.wake)

    # -- routing ---------------------------------------------------------------------------
    def route(self, events: list[dict[str, Any]], schema: str, source: str, *, topic: str = "",
              connection: str = "", container: str = "") -> list[tuple[Any, ...]]:
        """Queue rows for every (event, matching subscription) of one source; insert them with ``enqueue``."""
        now = self.clock.now()
        rows = []
        for sub in self.subs.values():
            if sub.source_type != source:
                continue
            if source == TOPIC and sub.topic != topic:
                continue
            if source == BLOB and (sub.connection != connection or container not in sub.containers):
                continue
            for event in events:
                if not sub.matches(event_type(event, schema), str(event.get("subject") or "")):
                    continue
                body = in_schema(event, schema, sub.schema, now)
                rows.append((uuid.uuid4().hex, sub.name, str(event["id"]), sub.schema, json.dumps(body),
                             now.timestamp(), now.timestamp()))
        return rows

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One SQLite write transaction (the blob watcher commits its seen-set with the rows)."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def insert(self, db: sqlite3.Connection, rows: list[tuple[Any, ...]]) -> None:
        """Insert rows inside a transaction the caller holds."""
        db.executemany("INSERT INTO deliveries (id, subscription, event_id, schema, body, next_at, published_at) "
                       "VALUES (?,?,?,?,?,?,?)", rows)

    def enqueue(self, rows: list[tuple[Any, ...]]) -> None:
        """Insert rows durably (one commit) and wake the dispatcher."""
        if rows:
            with self.transaction() as db:
                self.insert(db, rows)
            self.wake()

    def wake(self) -> None:
        """Look for due deliveries now (thread-safe: the clock calls it from wherever time moved)."""
        if self._loop is not None and self._wake is not None:
            self._loop.call_soon_threadsafe(self._wake.set)

    # -- dispatching -----------------------------------------------------------------------
    async def start(self) -> None:
        """Start the dispatcher; rows left from the last run are delivered as they fall due."""
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name="eventgrid-dispatcher")

    async def stop(self) -> None:
        """Stop dispatching; undelivered rows (and deliveries cut short) stay queued for the next start."""
        tasks = [t for t in (self._task, *self._attempts) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with suppress(asyncio.CancelledError):
                await task
        self.db.close()

    async def _run(self) -> None:
        assert self._wake is not None
        while True:
            with suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=0.25)
            self._wake.clear()
            free = self.concurrency - len(self._inflight)
            if free <= 0:
                continue
            try:
                due = self._due(free)
            except sqlite3.Error:  # a locked or busy database: try again at the next tick
                log.exception("reading the delivery queue failed")
                continue
            for row in due:
                self._inflight.add(row.id)
                task = asyncio.create_task(self._attempt(row))
                self._attempts.add(task)
                task.add_done_callback(self._attempts.discard)

    def _due(self, limit: int) -> list[_Row]:
        now = self.clock.now().timestamp()
        placeholders = ",".join("?" * len(self._inflight))
        skip = f"AND id NOT IN ({placeholders})" if self._inflight else ""
        cur = self.db.execute(
            f"SELECT id, subscription, schema, body, attempts, published_at, last_error FROM deliveries "
            f"WHERE next_at <= ? {skip} ORDER BY next_at LIMIT ?", (now, *self._inflight, limit))
        return [_Row(*r) for r in cur.fetchall()]

    async def _attempt(self, row: _Row) -> None:
        try:
            await self._deliver(row)
        except Exception:  # never lose the row to a bug here: it stays queued and is tried again
            log.exception("delivering %s failed unexpectedly", row.id)
        finally:
            self._inflight.discard(row.id)
            self.wake()

    async def _deliver(self, row: _Row) -> None:
        sub = self.subs.get(row.subscription)
        if sub is None:
            # Deleting an Azure event subscription drops its undelivered events as well.
            log.warning("dropping a queued event of subscription %r: it is no longer in the subscriptions file",
                        row.subscription)
            self.db.execute("DELETE FROM deliveries WHERE id=?", (row.id,))
            return
        event = json.loads(row.body)
        expires = row.published_at + sub.ttl_minutes * 60
        if self.clock.now().timestamp() >= expires:
            self._dead_letter(sub, row, event, "TimeToLiveExceeded")
            return
        try:
            error = await self.trigger.invoke(self.trigger.function(sub.function), Batch(row.schema, [event]))
        except Exception as exc:  # the event could not even be handed over: a failed attempt like any other
            error = f"{type(exc).__name__}: {exc}"
        now = self.clock.now().timestamp()
        if error is None:
            self.db.execute("DELETE FROM deliveries WHERE id=?", (row.id,))
            self.delivered += 1
            return
        row.attempts += 1
        row.last_error = error
        if row.attempts >= sub.max_attempts:
            self._dead_letter(sub, row, event, "MaxDeliveryAttemptsExceeded", last_attempt=now)
            return
        # Never later than the time to live: the event is dead-lettered then, as Event Grid does.
        next_at = min(now + retry_delay(row.attempts), expires)
        self.db.execute("UPDATE deliveries SET attempts=?, next_at=?, last_attempt_at=?, last_error=? WHERE id=?",
                        (row.attempts, next_at, now, error, row.id))
        log.warning("delivery of event %s to %s failed (attempt %d of %d); next attempt at %s", event.get("id"),
                    sub.name, row.attempts, sub.max_attempts, _iso(next_at))

    def _dead_letter(self, sub: Subscription, row: _Row, event: dict[str, Any], reason: str,
                     last_attempt: float | None = None) -> None:
        props = {"deadLetterReason": reason, "deliveryAttempts": row.attempts,
                 "lastDeliveryOutcome": "GenericError" if row.last_error else "NotAttempted",
                 "publishTime": _iso(row.published_at)}
        if last_attempt is not None:
            props["lastDeliveryAttemptTime"] = _iso(last_attempt)
        if row.schema == CLOUDEVENTS:  # CloudEvents attribute names are lower case
            props = {k.lower(): v for k, v in props.items()}
        record = {**event, **props, "devhostSubscription": sub.name, "devhostLastError": row.last_error}
        folder = self.state_dir / "deadletter" / sub.name
        folder.mkdir(parents=True, exist_ok=True)
        stem = _SAFE.sub("_", str(event.get("id") or row.id)).lstrip(".") or row.id
        path = folder / f"{stem}.json"
        n = 1
        while path.exists():
            n += 1
            path = folder / f"{stem}-{n}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(record, indent=2), encoding="utf-8")
        tmp.replace(path)
        # The file is written before the row goes: a crash in between dead-letters twice, never zero times.
        self.db.execute("DELETE FROM deliveries WHERE id=?", (row.id,))
        self.dead_lettered += 1
        log.warning("event %s dead-lettered for subscription %s: %s (%s)", event.get("id"), sub.name, reason, path)

    def stats(self) -> dict[str, Any]:
        """Queue depth and counters, for the admin endpoint."""
        pending = self.db.execute("SELECT subscription, COUNT(*), MAX(attempts), MIN(next_at), MAX(last_attempt_at) "
                                  "FROM deliveries GROUP BY subscription").fetchall()
        return {"pending": {s: {"events": n, "attempts": a, "nextAttemptAt": _iso(nxt),
                                "lastAttemptAt": _iso(last) if last else None}
                            for s, n, a, nxt, last in pending},
                "inFlight": len(self._inflight), "delivered": self.delivered, "deadLettered": self.dead_lettered,
                "invocations": self.trigger.invocations}


def _iso(ts: float) -> str:
    return format_time(datetime.fromtimestamp(ts, UTC))

