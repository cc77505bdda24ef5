"""The blob watcher: Blob Storage events from Azurite (or any Storage account), as Event Grid sends them.

It polls the containers named in blob subscriptions and emits
``Microsoft.Storage.BlobCreated`` for every new blob version (ETag) and
``Microsoft.Storage.BlobDeleted`` for every blob gone, with the subject and data fields of
https://learn.microsoft.com/azure/event-grid/event-schema-blob-storage . What it has seen is
kept in SQLite and committed in the same transaction as the queued deliveries, so a restart
emits no duplicates, and blobs that landed (or went) while devhost was down are emitted at
the next start.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import uuid
from typing import Any

from .clock import Clock
from .history import iso
from .subscriptions import Router

log = logging.getLogger("devhost.blobwatch")

BLOB_CREATED = "Microsoft.Storage.BlobCreated"
BLOB_DELETED = "Microsoft.Storage.BlobDeleted"


def _service(connection: str) -> Any:
    from azure.storage.blob import BlobServiceClient

    return BlobServiceClient.from_connection_string(connection)


class BlobWatcher:
    """Polls containers and queues blob events through the router."""

    def __init__(self, router: Router, clock: Clock, settings: dict[str, str], interval: float = 1.0) -> None:
        self.router = router
        self.clock = clock
        self.interval = interval
        self.targets: dict[tuple[str, str], Any] = {}  # (connection setting, container) -> container client
        for sub in router.subs:
            if sub.source_type != "blob":
                continue
            connection = settings.get(sub.connection)
            if not connection:
                raise ValueError(f"subscription {sub.name}: setting {sub.connection!r} (the storage connection) "
                                 "is not set")
            service = _service(connection)
            for container in sub.containers:
                self.targets[(sub.connection, container)] = service.get_container_client(container)
        # Its own connection: polling runs in a worker thread, deliveries on the event loop.
        self.db = sqlite3.connect(str(router.state_dir / "eventgrid.sqlite"), check_same_thread=False,
                                  isolation_level=None, timeout=30)
        self.db.execute("PRAGMA journal_mode=WAL")
        db = self.db
        db.execute("""CREATE TABLE IF NOT EXISTS blobs_seen (connection TEXT, container TEXT, name TEXT, etag TEXT,
            PRIMARY KEY (connection, container, name))""")
        db.execute("CREATE TABLE IF NOT EXISTS blob_meta (key TEXT PRIMARY KEY, value INTEGER)")
        self._task: asyncio.Task[None] | None = None
        self.emitted = 0

    async def start(self) -> None:
        """Create the watched containers if needed and start polling."""
        loop = asyncio.get_running_loop()
        for client in self.targets.values():
            await loop.run_in_executor(None, _ensure_container, client)
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        """Stop polling."""
        if self._task is not None:
            self._task.cancel()
        self.db.close()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                await loop.run_in_executor(None, self.poll_once)
            except Exception:  # Storage unreachable for a moment: try again at the next tick
                log.exception("blob poll failed")
            await asyncio.sleep(self.interval)

    def _sequencer(self) -> str:
        row = self.db.execute("SELECT value FROM blob_meta WHERE key='sequencer'").fetchone()
        value = (row[0] if row else 0) + 1
        self.db.execute("INSERT OR REPLACE INTO blob_meta VALUES ('sequencer', ?)", (value,))
        return f"{value:032x}"

    def poll_once(self) -> int:
        """List every watched container once; queue events for what changed. Returns the number of events."""
        db = self.db
        total = 0
        for (connection, container), client in self.targets.items():
            current = {b.name: b for b in client.list_blobs()}
            seen = dict(db.execute("SELECT name, etag FROM blobs_seen WHERE connection=? AND container=?",
                                   (connection, container)).fetchall())
            created = [b for name, b in current.items() if seen.get(name) != b.etag]
            deleted = [name for name in seen if name not in current]
            if not created and not deleted:
                continue
            db.execute("BEGIN IMMEDIATE")
            try:
                rows: list[tuple[Any, ...]] = []
                for blob in created:
                    event = self._event(client, container, blob.name, BLOB_CREATED, blob)
                    rows += self.router.rows_for([event], "eventgrid", "blob", container=container)
                    db.execute("INSERT OR REPLACE INTO blobs_seen VALUES (?,?,?,?)",
                               (connection, container, blob.name, blob.etag))
                for name in deleted:
                    event = self._event(client, container, name, BLOB_DELETED, None)
                    rows += self.router.rows_for([event], "eventgrid", "blob", container=container)
                    db.execute("DELETE FROM blobs_seen WHERE connection=? AND container=? AND name=?",
                               (connection, container, name))
                db.executemany("INSERT INTO deliveries VALUES (?,?,?,?,?,?,?,?)", rows)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            self.router._poke()
            total += len(created) + len(deleted)
        self.emitted += total
        return total

    def _event(self, client: Any, container: str, name: str, etype: str, blob: Any) -> dict[str, Any]:
        account = client.account_name
        url = f"{client.url.rstrip('/')}/{name}"
        data: dict[str, Any] = {
            "api": "PutBlob" if etype == BLOB_CREATED else "DeleteBlob",
            "clientRequestId": str(uuid.uuid4()),
            "requestId": str(uuid.uuid4()),
            "contentType": (blob.content_settings.content_type if blob is not None and blob.content_settings
                            else "application/octet-stream") or "application/octet-stream",
            "blobType": "BlockBlob",
            "url": url,
            "sequencer": self._sequencer(),
            "storageDiagnostics": {"batchId": str(uuid.uuid4())},
        }
        if blob is not None:
            data["eTag"] = blob.etag
            data["contentLength"] = int(blob.size or 0)
        return {
            "id": str(uuid.uuid4()),
            "topic": f"/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/devhost/providers/"
                     f"Microsoft.Storage/storageAccounts/{account}",
            "subject": f"/blobServices/default/containers/{container}/blobs/{name}",
            "eventType": etype,
            "eventTime": iso(self.clock.now()),
            "data": json.loads(json.dumps(data)),
            "dataVersion": "",
            "metadataVersion": "1",
        }


def _ensure_container(client: Any) -> None:
    from azure.core.exceptions import ResourceExistsError

    try:
        client.create_container()
    except ResourceExistsError:
        pass
