"""Event Grid subscriptions, the durable delivery queue, and custom topics.

The subscriptions file (``eventgrid.subscriptions.json`` next to the app, or the
``DEVHOST_SUBSCRIPTIONS`` setting) mirrors Event Grid event subscriptions::

    [{"name": "landing", "source": {"type": "blob", "connection": "AzureWebJobsStorage",
                                    "containers": ["landing"]},
      "filter": {"includedEventTypes": ["Microsoft.Storage.BlobCreated"],
                 "subjectBeginsWith": "/blobServices/default/containers/landing/",
                 "subjectEndsWith": ".csv"},
      "destination": {"function": "on_blob_created"},
      "schema": "EventGridSchema",
      "retry": {"maxDeliveryAttempts": 30, "eventTimeToLiveInMinutes": 1440}}]

Events matching a subscription are queued in SQLite (``<state>/eventgrid.sqlite``) and
delivered to the function; a failed delivery is retried on Event Grid's schedule and, after
the attempts or the time to live run out, written to ``<state>/deadletter/<subscription>/``.
See https://learn.microsoft.com/azure/event-grid/delivery-and-retry and
https://learn.microsoft.com/azure/event-grid/event-filtering .
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from aiohttp import web

from .app_loader import EVENT_GRID_TRIGGER, FunctionIndex
from .clock import Clock
from .eventgrid import EventError, deliver, parse_body
from .history import iso, parse_iso

log = logging.getLogger("devhost.subscriptions")

# Event Grid's retry schedule, then every 3 hours until the time to live ends.
RETRY_SCHEDULE = [10, 30, 60, 300, 600, 1800, 3600]
LATER_RETRY = 3 * 3600


class SubscriptionError(Exception):
    """The subscriptions file is invalid; the message names the entry and field."""


@dataclass
class Subscription:
    """One event subscription."""

    name: str
    source_type: str  # blob | topic
    function: str
    topic: str = ""
    connection: str = "AzureWebJobsStorage"
    containers: list[str] = field(default_factory=list)
    included_event_types: list[str] = field(default_factory=list)
    subject_begins_with: str = ""
    subject_ends_with: str = ""
    schema: str = "EventGridSchema"
    max_attempts: int = 30
    ttl_minutes: float = 1440

    def matches(self, event_type: str, subject: str) -> bool:
        """Event Grid's filters: included types, subject prefix and suffix (case-insensitive)."""
        if self.included_event_types and event_type not in self.included_event_types:
            return False
        if self.subject_begins_with and not subject.lower().startswith(self.subject_begins_with.lower()):
            return False
        return not (self.subject_ends_with and not subject.lower().endswith(self.subject_ends_with.lower()))


def load_subscriptions(path: Path | None, index: FunctionIndex) -> list[Subscription]:
    """Read and validate the subscriptions file (an empty list when there is none)."""
    if path is None:
        return []
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise SubscriptionError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(raw, list):
        raise SubscriptionError(f"{path} must hold a JSON array of subscriptions")
    subs = []
    for i, item in enumerate(raw):
        where = f"{path.name}[{i}]"
        if not isinstance(item, dict):
            raise SubscriptionError(f"{where} must be an object")
        name = item.get("name")
        source = item.get("source") or {}
        dest = (item.get("destination") or {}).get("function")
        flt = item.get("filter") or {}
        retry = item.get("retry") or {}
        if not name:
            raise SubscriptionError(f"{where}.name is required")
        if source.get("type") not in ("blob", "topic"):
            raise SubscriptionError(f"{where}.source.type must be 'blob' or 'topic'")
        if source["type"] == "topic" and not source.get("name"):
            raise SubscriptionError(f"{where}.source.name (the topic) is required")
        if source["type"] == "blob" and not source.get("containers"):
            raise SubscriptionError(f"{where}.source.containers is required")
        fn = index.get(dest) if dest else None
        if fn is None or fn.trigger_type != EVENT_GRID_TRIGGER:
            raise SubscriptionError(f"{where}.destination.function {dest!r} is not an eventGridTrigger function")
        schema = item.get("schema", "EventGridSchema")
        if schema not in ("EventGridSchema", "CloudEventSchemaV1_0"):
            raise SubscriptionError(f"{where}.schema must be EventGridSchema or CloudEventSchemaV1_0")
        subs.append(Subscription(
            name=name, source_type=source["type"], function=str(dest), topic=source.get("name", ""),
            connection=source.get("connection", "AzureWebJobsStorage"), containers=list(source.get("containers", [])),
            included_event_types=list(flt.get("includedEventTypes", [])),
            subject_begins_with=flt.get("subjectBeginsWith", ""), subject_ends_with=flt.get("subjectEndsWith", ""),
            schema=schema, max_attempts=int(retry.get("maxDeliveryAttempts", 30)),
            ttl_minutes=float(retry.get("eventTimeToLiveInMinutes", 1440))))
    return subs


def to_cloudevent(event: dict[str, Any]) -> dict[str, Any]:
    """An Event Grid schema event as a CloudEvent (Event Grid's own mapping)."""
    return {"specversion": "1.0", "id": event["id"], "source": event.get("topic") or "", "type": event["eventType"],
            "subject": event.get("subject", ""), "time": event["eventTime"], "data": event.get("data"),
            "datacontenttype": "application/json"}


def to_eventgrid(event: dict[str, Any]) -> dict[str, Any]:
    """A CloudEvent as an Event Grid schema event."""
    return {"id": event["id"], "topic": event.get("source", ""), "subject": event.get("subject", ""),
            "eventType": event["type"], "eventTime": event.get("time") or "", "data": event.get("data"),
            "dataVersion": event.get("dataschema") or "", "metadataVersion": "1"}


class Router:
    """Matches events to subscriptions and delivers them from a durable queue."""

    def __init__(self, subs: list[Subscription], index: FunctionIndex, clock: Clock, state_dir: Path) -> None:
        self.subs = subs
        self.index = index
        self.clock = clock
        self.state_dir = state_dir
        self.db = sqlite3.connect(str(state_dir / "eventgrid.sqlite"), check_same_thread=False, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("""CREATE TABLE IF NOT EXISTS deliveries (id TEXT PRIMARY KEY, subscription TEXT NOT NULL,
            event TEXT NOT NULL, schema TEXT NOT NULL, attempts INTEGER NOT NULL, next_at TEXT NOT NULL,
            first_at TEXT NOT NULL, last_error TEXT)""")
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        clock.on_advance(self._poke)
        self.delivered = 0

    def _poke(self) -> None:
        loop = getattr(self, "_loop", None)
        if loop is not None:
            loop.call_soon_threadsafe(self._wake.set)

    def rows_for(self, events: list[dict[str, Any]], schema: str, source_type: str,
                 topic: str = "", container: str | None = None) -> list[tuple[Any, ...]]:
        """Delivery rows for every subscription an event matches (to insert in one transaction)."""
        rows = []
        now = iso(self.clock.now())
        for event in events:
            etype = event["eventType"] if schema == "eventgrid" else event["type"]
            subject = event.get("subject", "")
            for sub in self.subs:
                if sub.source_type != source_type or (source_type == "topic" and sub.topic != topic):
                    continue
                if container is not None and container not in sub.containers:
                    continue
                if not sub.matches(etype, subject):
                    continue
                if sub.schema == "CloudEventSchemaV1_0":
                    body, out = (to_cloudevent(event) if schema == "eventgrid" else event), "cloudevents"
                else:
                    body, out = (event if schema == "eventgrid" else to_eventgrid(event)), "eventgrid"
                rows.append((uuid.uuid4().hex, sub.name, json.dumps(body), out, 0, now, now, None))
        return rows

    def enqueue(self, rows: list[tuple[Any, ...]]) -> None:
        """Insert delivery rows and wake the dispatcher."""
        if rows:
            self.db.executemany("INSERT INTO deliveries VALUES (?,?,?,?,?,?,?,?)", rows)
            self._poke()

    async def start(self) -> None:
        """Start the dispatcher."""
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        """Stop the dispatcher; undelivered events stay queued."""
        if self._task is not None:
            self._task.cancel()
        self.db.close()

    async def _run(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=0.2)
            except TimeoutError:
                pass
            self._wake.clear()
            try:
                await self._dispatch_due()
            except Exception:  # keep delivering; the failed row stays queued and is retried
                log.exception("event delivery loop failed")

    async def _dispatch_due(self) -> None:
        now = self.clock.now()
        rows = self.db.execute("SELECT id, subscription, event, schema, attempts, first_at FROM deliveries "
                               "WHERE next_at <= ? ORDER BY next_at LIMIT 100", (iso(now),)).fetchall()
        subs = {s.name: s for s in self.subs}
        for row_id, sub_name, body, schema, attempts, first_at in rows:
            sub = subs.get(sub_name)
            fn = self.index.get(sub.function) if sub else None
            if sub is None or fn is None:
                self.db.execute("DELETE FROM deliveries WHERE id=?", (row_id,))
                continue
            status, error = await deliver(fn, schema, [json.loads(body)])
            if status == 200:
                self.db.execute("DELETE FROM deliveries WHERE id=?", (row_id,))
                self.delivered += 1
                continue
            attempts += 1
            expired = self.clock.now() - parse_iso(first_at) > timedelta(minutes=sub.ttl_minutes)
            if attempts >= sub.max_attempts or expired:
                self._dead_letter(sub, row_id, body, attempts, error,
                                  "TimeToLiveExceeded" if expired else "MaxDeliveryAttemptsExceeded")
                self.db.execute("DELETE FROM deliveries WHERE id=?", (row_id,))
                continue
            delay = RETRY_SCHEDULE[attempts - 1] if attempts - 1 < len(RETRY_SCHEDULE) else LATER_RETRY
            self.db.execute("UPDATE deliveries SET attempts=?, next_at=?, last_error=? WHERE id=?",
                            (attempts, iso(self.clock.now() + timedelta(seconds=delay)), error, row_id))

    def _dead_letter(self, sub: Subscription, row_id: str, body: str, attempts: int, error: str, reason: str) -> None:
        folder = self.state_dir / "deadletter" / sub.name
        folder.mkdir(parents=True, exist_ok=True)
        event = json.loads(body)
        record = {"event": event, "deadLetterReason": reason, "deliveryAttempts": attempts, "lastDeliveryOutcome":
                  error, "deadletteredAt": iso(self.clock.now()), "subscription": sub.name}
        (folder / f"{event.get('id', row_id)}.json").write_text(json.dumps(record, indent=2))
        log.warning("event dead-lettered", extra={"subscription": sub.name, "reason": reason})


class TopicEndpoint:
    """Custom topics: ``POST /runtime/webhooks/eventgrid/topics/<topic>/api/events`` with ``aeg-sas-key``."""

    def __init__(self, router: Router, keys: dict[str, str]) -> None:
        self.router = router
        self.keys = keys

    def add_routes(self, app: web.Application) -> None:
        """Mount the topic endpoint."""
        app.router.add_post("/runtime/webhooks/eventgrid/topics/{topic}/api/events", self.publish)

    async def publish(self, request: web.Request) -> web.Response:
        """Validate the batch, then queue it for the topic's subscriptions (200 once queued)."""
        topic = request.match_info["topic"]
        if topic not in self.keys:
            return web.json_response({"error": f"topic {topic!r} is not known to devhost"}, status=404)
        key = request.headers.get("aeg-sas-key")
        if not key or key != self.keys[topic]:
            return web.json_response({"error": "a valid aeg-sas-key header is required"}, status=401)
        try:
            schema, events = parse_body(await request.read(), request.headers.get("Content-Type", ""))
        except EventError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        for event in events:
            if schema == "eventgrid" and not event.get("topic"):
                event["topic"] = f"/devhost/topics/{topic}"
        self.router.enqueue(self.router.rows_for(events, schema, "topic", topic=topic))
        return web.Response(status=200)
