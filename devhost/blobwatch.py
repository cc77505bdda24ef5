"""The blob watcher: Blob Storage events for Azurite (or any account), as Event Grid delivers them.

Azurite has no Event Grid, so devhost lists the containers named in blob subscriptions
every ``DEVHOST_BLOB_POLL_SECONDS`` (0.25 s by default) while blobs change, less often while they do not
(the interval doubles after each quiet poll, up to ``DEVHOST_BLOB_POLL_MAX_SECONDS``, 0.5 s by default),
and emits what Azure Storage would have published (https://learn.microsoft.com/azure/event-grid/event-schema-blob-storage):

- ``Microsoft.Storage.BlobCreated`` once per blob version (ETag) of a block blob, and once when
  a page or append blob is created (Storage does not publish their later writes);
- ``Microsoft.Storage.BlobDeleted`` when a blob is gone;
- subject ``/blobServices/default/containers/<container>/blobs/<name>``, topic
  ``/subscriptions/<id>/resourceGroups/<rg>/providers/Microsoft.Storage/storageAccounts/<account>``,
  and data ``api`` (``PutBlob``, ``PutBlockList`` when the blob has committed blocks,
  ``CopyBlob`` for a finished copy, ``DeleteBlob``), ``clientRequestId``, ``requestId``,
  ``eTag``, ``contentType``, ``contentLength``, ``blobType``, ``url``, ``sequencer`` (32 hex
  digits, increasing) and ``storageDiagnostics.batchId``.

What was seen is kept in SQLite and committed in the same transaction as the queued
deliveries: a restart emits no duplicates, and blobs written or deleted while devhost was
down are emitted at the next start. The first time a container is watched, the blobs
already in it are recorded without events, as a new Event Grid subscription only sees
later changes. A watched container that does not exist is created at start (a local
convenience, so the app's landing container is there).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.eventgrid import SystemEventNames
from azure.storage.blob import BlobServiceClient, ContainerClient

from .clock import Clock
from .delivery import DeliveryQueue
from .eventgrid import EVENTGRID, format_time
from .subscriptions import BLOB, Subscription

log = logging.getLogger("devhost.blobwatch")

BLOB_CREATED = SystemEventNames.StorageBlobCreatedEventName.value
BLOB_DELETED = SystemEventNames.StorageBlobDeletedEventName.value
# Called inside the watcher's transaction with (db, connection setting, container, events): blob triggers.
BlobHook = Callable[[sqlite3.Connection, str, str, list[dict[str, Any]]], None]


@dataclass
class _Blob:
    etag: str
    size: int
    content_type: str
    blob_type: str
    copy_status: str | None


@dataclass
class _Target:
    connection: str  # the setting name: the key of what was seen
    container: str
    client: ContainerClient


def _list(client: ContainerClient) -> dict[str, _Blob]:
    """The container's blobs (an absent container has none)."""
    out = {}
    try:
        for b in client.list_blobs(include=["copy"]):
            ctype = b.content_settings.content_type if b.content_settings else None
            blob_type = getattr(b.blob_type, "value", b.blob_type) or "BlockBlob"
            copy_status = getattr(b.copy, "status", None) if b.copy is not None else None
            out[b.name] = _Blob(etag=str(b.etag), size=int(b.size or 0),
                                content_type=ctype or "application/octet-stream",
                                blob_type=str(blob_type), copy_status=getattr(copy_status, "value", copy_status))
    except ResourceNotFoundError:
        return {}
    return out


def _ensure_container(client: ContainerClient) -> None:
    """Create the container if it is missing (a local convenience: the app's landing container exists)."""
    try:
        client.create_container()
    except ResourceExistsError:
        pass


def _api(client: ContainerClient, name: str, blob: _Blob) -> str:
    """Which Storage operation most likely wrote this version."""
    if blob.copy_status == "success":
        return "CopyBlob"
    if blob.blob_type != "BlockBlob":
        return "PutBlob"
    try:
        committed, _ = client.get_blob_client(name).get_block_list("committed")
    except ResourceNotFoundError:
        return "PutBlob"
    return "PutBlockList" if committed else "PutBlob"


def next_interval(current: float, events: int, shortest: float, longest: float) -> float:
    """The wait before the next poll: the shortest after a poll that queued events, else twice the last one,
    at most ``longest``."""
    return shortest if events else min(current * 2, longest)


class BlobWatcher:
    """Polls the containers of blob subscriptions and queues their events."""

    def __init__(self, queue: DeliveryQueue, subs: list[Subscription], connections: dict[str, str], clock: Clock,
                 interval: float, subscription_id: str, resource_group: str,
                 extra_targets: list[tuple[str, str]] | None = None, hooks: list[BlobHook] | None = None,
                 max_interval: float | None = None) -> None:
        """``extra_targets`` are more (connection setting, container) pairs to watch (the containers of
        EventGrid-source blob triggers, their connection strings in ``connections``); each hook gets
        ``(db, connection, container, events)`` inside the transaction that records what was seen.
        Polls come every ``interval`` seconds after a change, backing off to ``max_interval`` while quiet."""
        self.queue = queue
        self.clock = clock
        self.interval = interval
        self.max_interval = max_interval if max_interval is not None else interval  # EventOptions checks the order
        self.subscription_id = subscription_id
        self.resource_group = resource_group
        services = {name: BlobServiceClient.from_connection_string(conn) for name, conn in connections.items()}
        pairs = sorted({(s.connection, c) for s in subs if s.source_type == BLOB for c in s.containers}
                       | set(extra_targets or []))
        self.hooks = list(hooks or [])
        self.targets = [_Target(conn, c, services[conn].get_container_client(c)) for conn, c in pairs]
        self.db = queue.db  # one connection, used on the event loop only
        self.db.execute("""CREATE TABLE IF NOT EXISTS blobs_seen (connection TEXT NOT NULL, container TEXT NOT NULL,
            name TEXT NOT NULL, etag TEXT NOT NULL, content_type TEXT, blob_type TEXT,
            PRIMARY KEY (connection, container, name))""")
        self.db.execute("CREATE TABLE IF NOT EXISTS blobs_watched (connection TEXT NOT NULL, container TEXT NOT NULL, "
                        "since TEXT NOT NULL, PRIMARY KEY (connection, container))")
        self.db.execute("CREATE TABLE IF NOT EXISTS blob_meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL)")
        row = self.db.execute("SELECT value FROM blob_meta WHERE key='sequencer'").fetchone()
        self._sequencer = int(row[0]) if row else 0
        # Storage calls block; they get their own threads so busy sync functions cannot starve polling.
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="devhost-blobwatch")
        self._task: asyncio.Task[None] | None = None
        self._failing = False
        self.emitted = 0

    async def start(self) -> None:
        """Create missing watched containers, catch up with what changed while devhost was down (or take
        the first baseline), then poll."""
        loop = asyncio.get_running_loop()
        for target in self.targets:
            try:
                await loop.run_in_executor(self._pool, _ensure_container, target.client)
            except Exception as exc:  # Storage not up yet: polling will retry, and say so
                log.warning("cannot create container %s: %s: %s", target.container, type(exc).__name__, exc)
        await self._poll_logged()
        self._task = asyncio.create_task(self._run(), name="blob-watcher")

    async def stop(self) -> None:
        """Stop polling."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def _run(self) -> None:
        # Listing every container costs the host and Storage alike; quiet containers are listed less often.
        interval = self.interval
        while True:
            await asyncio.sleep(interval)
            interval = next_interval(interval, await self._poll_logged(), self.interval, self.max_interval)

    async def _poll_logged(self) -> int:
        """One poll; the number of events it queued (0 when Storage could not be reached)."""
        try:
            events = await self.poll()
            if self._failing:
                log.info("blob storage is reachable again")
            self._failing = False
            return events
        except Exception as exc:  # Storage unreachable for a moment: say so once, try again next tick
            if not self._failing:
                log.warning("polling blob containers failed (will keep trying): %s: %s", type(exc).__name__, exc)
            self._failing = True
            return 0

    async def poll(self) -> int:
        """List every watched container once and queue events for what changed; the number of events."""
        loop = asyncio.get_running_loop()
        total = 0
        for target in self.targets:
            current = await loop.run_in_executor(self._pool, _list, target.client)
            key = (target.connection, target.container)
            seen = {name: (etag, ctype, btype) for name, etag, ctype, btype in self.db.execute(
                "SELECT name, etag, content_type, blob_type FROM blobs_seen WHERE connection=? AND container=?", key)}
            watched = self.db.execute("SELECT 1 FROM blobs_watched WHERE connection=? AND container=?", key).fetchone()
            changed = {n: b for n, b in current.items()
                       if (n not in seen or seen[n][0] != b.etag) and b.copy_status != "pending"}
            deleted = [n for n in seen if n not in current]
            if watched and not changed and not deleted:
                continue
            events: list[dict[str, Any]] = []
            if watched:
                for name, blob in sorted(changed.items()):
                    if blob.blob_type != "BlockBlob" and name in seen:
                        continue  # a page or append blob written again: Storage publishes no BlobCreated
                    api = await loop.run_in_executor(self._pool, _api, target.client, name, blob)
                    events.append(self._event(target, name, BLOB_CREATED, api, blob.content_type, blob.blob_type,
                                              blob))
                for name in sorted(deleted):
                    _, ctype, btype = seen[name]
                    events.append(self._event(target, name, BLOB_DELETED, "DeleteBlob", ctype, btype, None))
            rows = self.queue.route(events, EVENTGRID, BLOB, connection=target.connection, container=target.container)
            with self.queue.transaction() as db:
                self.queue.insert(db, rows)
                for hook in self.hooks:
                    hook(db, target.connection, target.container, events)
                db.executemany("INSERT OR REPLACE INTO blobs_seen VALUES (?,?,?,?,?,?)",
                               [(*key, n, b.etag, b.content_type, b.blob_type) for n, b in changed.items()])
                db.executemany("DELETE FROM blobs_seen WHERE connection=? AND container=? AND name=?",
                               [(*key, n) for n in deleted])
                db.execute("INSERT OR REPLACE INTO blob_meta VALUES ('sequencer', ?)", (self._sequencer,))
                if not watched:
                    db.execute("INSERT INTO blobs_watched VALUES (?,?,?)", (*key, format_time(self.clock.now())))
            if not watched:
                log.info("watching container %s (%d blobs already there: no events for them)", target.container,
                         len(current))
            self.queue.wake()
            total += len(events)
        self.emitted += total
        return total

    def _event(self, target: _Target, name: str, etype: str, api: str, content_type: str | None,
               blob_type: str | None, blob: _Blob | None) -> dict[str, Any]:
        self._sequencer += 1
        data: dict[str, Any] = {"api": api, "clientRequestId": str(uuid.uuid4()), "requestId": str(uuid.uuid4())}
        if blob is not None:
            etag = blob.etag if blob.etag.startswith('"') else f'"{blob.etag}"'
            data.update({"eTag": etag, "contentType": content_type, "contentLength": blob.size})
        else:
            data["contentType"] = content_type or "application/octet-stream"
        data.update({
            "blobType": blob_type or "BlockBlob",
            "url": target.client.get_blob_client(name).url,
            "sequencer": f"{self._sequencer:032X}",
            "storageDiagnostics": {"batchId": str(uuid.uuid4())},
        })
        account = target.client.account_name
        return {
            "topic": f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}/providers/"
                     f"Microsoft.Storage/storageAccounts/{account}",
            "subject": f"/blobServices/default/containers/{target.container}/blobs/{name}",
            "eventType": etype,
            "eventTime": format_time(self.clock.now()),
            "id": str(uuid.uuid4()),
            "data": data,
            "dataVersion": "",
            "metadataVersion": "1",
        }
