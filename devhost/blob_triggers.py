"""Blob triggers on Azure Blob Storage (Azurite locally), as the host's blob trigger runs them
(https://learn.microsoft.com/azure/azure-functions/functions-bindings-storage-blob-trigger):

- ``path`` is ``<container>/<blob name pattern>``: the container is literal (``%Setting%`` is resolved), the
  pattern's ``{param}`` parts match any text (``{name}`` may span virtual folders) and ``{{``/``}}`` are
  literal braces; a blob runs the function only if its whole name matches, case-sensitively;
- ``source="EventGrid"`` (the only source Flex Consumption supports): fed by the ``BlobCreated`` events of
  devhost's blob watcher (``blobwatch.py``), which watches the container from the first start on, as a new
  Event Grid subscription does (blobs already there do not run);
- the standard source (``LogsAndContainerScan``, the default): devhost lists the container every
  ``DEVHOST_BLOB_TRIGGER_POLL_SECONDS`` (2 s); blobs already there run too, as the host's scan does;
- blob receipts: a (function, container, blob name, ETag) that ran is recorded in ``<state>/eventgrid.sqlite``,
  so a blob version runs a function once, across restarts; an overwritten blob (new ETag) runs again; deleting
  the receipt row forces a rerun, as deleting a receipt blob does on Azure;
- retries and poison blobs: a failed run is retried after host.json ``extensions.queues.visibilityTimeout``
  (the trigger runs over a queue internally) until ``maxDequeueCount`` (5) runs failed; then a message
  ``{"FunctionId", "BlobType", "ContainerName", "BlobName", "ETag"}`` goes to the ``webjobs-blobtrigger-poison``
  queue of the account (when its connection string has a queue endpoint; otherwise to
  ``<state>/blobtrigger-poison/``), and the version is not run again;
- at most ``batchSize + newBatchThreshold`` (host.json ``extensions.queues``) runs at once, per function;
- the function gets ``func.InputStream`` from ``azure.functions``' own converter with the host's trigger
  metadata: ``name`` is ``<container>/<blob name>`` (``BlobTrigger``), ``uri``, ``length``
  (``Properties.ContentLength``), ``blob_properties``, ``metadata``; the pattern's parameters are in the
  metadata too (the host's binding data; the Python worker does not pass them as arguments).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import re
import sqlite3
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.functions import meta
from azure.functions.blob import BlobConverter
from azure.storage.blob import BlobServiceClient, ContainerClient
from azure.storage.queue import QueueServiceClient

from .app_loader import BLOB_TRIGGER, FunctionIndex, FunctionInfo
from .clock import Clock
from .config import ConfigError
from .delivery import open_db
from .eventgrid import format_time
from .storage_common import QueueOptions, connection_string, invoke, resolve

log = logging.getLogger("devhost.blobtriggers")

EVENT_GRID_SOURCE = "EventGrid"
POISON_QUEUE = "webjobs-blobtrigger-poison"
BLOB_CREATED = "Microsoft.Storage.BlobCreated"
_CONTAINER = re.compile(r"^(?=.{3,63}$)[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9]))*$")
_PARAM = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_BLOB_TYPES = {"BlockBlob": "Block", "PageBlob": "Page", "AppendBlob": "Append"}


@dataclass
class BlobPath:
    """A trigger's ``path``: the container and the blob name pattern."""

    container: str
    pattern: str
    regex: re.Pattern[str]
    params: list[str]

    def match(self, name: str) -> dict[str, str] | None:
        """The pattern's parameters if the blob name matches, else None."""
        m = self.regex.fullmatch(name)
        return None if m is None else {p: m.group(p) for p in self.params}


def parse_path(path: str, where: str) -> BlobPath:
    """Parse ``container/pattern``; ConfigError naming ``where`` if it is not one."""
    container, _, pattern = path.partition("/")
    if not _CONTAINER.match(container):
        raise ConfigError(f"{where}: path {path!r} must start with a container name (3-63 lower-case letters, "
                          "digits and single hyphens; binding expressions are not allowed there)")
    regex, params, i = "", [], 0
    while i < len(pattern):
        ch = pattern[i]
        if pattern.startswith("{{", i) or pattern.startswith("}}", i):
            regex += re.escape(ch)
            i += 2
        elif ch == "{":
            end = pattern.find("}", i)
            param = pattern[i + 1:end] if end > 0 else ""
            if not _PARAM.fullmatch(param) or param in params:
                raise ConfigError(f"{where}: path {path!r} has a bad or repeated parameter at {pattern[i:]!r}")
            params.append(param)
            regex += f"(?P<{param}>.*)"  # the WebJobs path template: a parameter matches any text
            i = end + 1
        elif ch == "}":
            raise ConfigError(f"{where}: path {path!r} has an unmatched '}}' (write '}}}}' for a literal one)")
        else:
            regex += re.escape(ch)
            i += 1
    if not pattern:
        regex = ".+"  # "container" alone: every blob in it
    return BlobPath(container, pattern, re.compile(regex, re.DOTALL), params)


@dataclass
class BlobFunction:
    """One blobTrigger function and where it reads."""

    fn: FunctionInfo
    setting: str
    path: BlobPath
    event_grid: bool
    container: ContainerClient
    queues: QueueServiceClient | None  # the account's queue service, for the poison queue


@dataclass
class _Work:
    function: str
    container: str
    name: str
    etag: str
    attempts: int


def _etag(value: Any) -> str:
    return str(value or "").strip('"')


class BlobTriggers:
    """All blobTrigger functions: the container scan, the blob watcher's hook, and the runs with receipts."""

    def __init__(self, index: FunctionIndex, settings: dict[str, str], host_json: dict[str, Any],
                 state_dir: Path, clock: Clock, client_binding: Callable[[], str]) -> None:
        self.clock = clock
        self.client_binding = client_binding
        self.state_dir = state_dir
        self.functions: dict[str, BlobFunction] = {}
        self.poll_seconds = _poll_seconds(settings)
        self.opts = QueueOptions.from_host_json(host_json) if index.of_type(BLOB_TRIGGER) else QueueOptions()
        self.connections: dict[str, str] = {}
        blob_services: dict[str, BlobServiceClient] = {}
        for fn in index.of_type(BLOB_TRIGGER):
            setting, conn = connection_string(fn, settings)
            where = f"function {fn.name!r}"
            path = parse_path(resolve(str(fn.trigger.get("path") or ""), settings, where), where)
            source = str(fn.trigger.get("source") or "LogsAndContainerScan")
            if source not in (EVENT_GRID_SOURCE, "LogsAndContainerScan"):
                raise ConfigError(f"{where}: source must be EventGrid or LogsAndContainerScan, got {source!r}")
            try:
                svc = blob_services.setdefault(setting, BlobServiceClient.from_connection_string(conn))
                low = conn.lower().replace(" ", "")
                # The account has a queue service when the string names one or derives every endpoint.
                has_queue = "queueendpoint=" in low or "usedevelopmentstorage=true" in low or "blobendpoint=" not in low
                queues = QueueServiceClient.from_connection_string(conn) if has_queue else None
            except ValueError as exc:  # the SDK's words for a malformed connection string
                raise ConfigError(f"{where}: app setting {setting!r} is not a usable storage connection string: "
                                  f"{exc}") from exc
            self.connections[setting] = conn
            self.functions[fn.name] = BlobFunction(fn, setting, path, source == EVENT_GRID_SOURCE,
                                                   svc.get_container_client(path.container), queues)
        self.db: sqlite3.Connection | None = None
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="devhost-blobtriggers")
        self._inflight: dict[str, set[tuple[str, str, str]]] = {name: set() for name in self.functions}
        self._tasks: set[asyncio.Task[None]] = set()
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: asyncio.Task[None] | None = None
        self._scanner: asyncio.Task[None] | None = None
        self._scan_failing = False
        self.runs = 0
        self.poisoned = 0
        if self.functions:
            self.db = open_db(state_dir)
            self.db.execute("""CREATE TABLE IF NOT EXISTS blob_receipts (function TEXT NOT NULL,
                container TEXT NOT NULL, name TEXT NOT NULL, etag TEXT NOT NULL,
                outcome TEXT NOT NULL, at TEXT NOT NULL,
                PRIMARY KEY (function, container, name, etag))""")
            self.db.execute("""CREATE TABLE IF NOT EXISTS blob_trigger_work (function TEXT NOT NULL,
                container TEXT NOT NULL, name TEXT NOT NULL, etag TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
                next_at REAL NOT NULL, last_error TEXT, PRIMARY KEY (function, container, name, etag))""")
            clock.on_advance(self.wake)

    # -- what the blob watcher needs --------------------------------------------------------
    @property
    def event_grid_targets(self) -> list[tuple[str, str]]:
        """(connection setting, container) pairs the blob watcher must watch for EventGrid-source functions."""
        return sorted({(b.setting, b.path.container) for b in self.functions.values() if b.event_grid})

    def on_blob_events(self, db: sqlite3.Connection, connection: str, container: str,
                       events: list[dict[str, Any]]) -> None:
        """The watcher's hook, inside its transaction: queue runs for the BlobCreated events that match."""
        rows = []
        now = self.clock.now().timestamp()
        for event in events:
            if event.get("eventType") != BLOB_CREATED:
                continue
            name = str(event.get("subject", "")).split("/blobs/", 1)[-1]
            etag = _etag((event.get("data") or {}).get("eTag"))
            for b in self.functions.values():
                if b.event_grid and b.setting == connection and b.path.container == container and \
                        b.path.match(name) is not None:
                    rows.append((b.fn.name, container, name, etag, now))
        if rows:
            db.executemany("INSERT OR IGNORE INTO blob_trigger_work (function, container, name, etag, next_at) "
                           "VALUES (?,?,?,?,?)", rows)
            self.wake()

    # -- lifecycle ---------------------------------------------------------------------------
    def add_routes(self, app: Any) -> None:
        """No routes (the Event Grid source is fed in-process by the blob watcher)."""

    async def start(self) -> None:
        """Create missing containers, then scan (standard source) and run queued work."""
        if not self.functions:
            return
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        for b in self.functions.values():
            try:
                await self._call(b.container.create_container)
            except ResourceExistsError:
                pass
            except Exception as exc:  # storage not up yet: the scan keeps trying and says so
                log.warning("cannot create container %s: %s: %s", b.path.container, type(exc).__name__, exc)
        self._runner = asyncio.create_task(self._run(), name="blob-trigger-runner")
        if any(not b.event_grid for b in self.functions.values()):
            self._scanner = asyncio.create_task(self._scan_loop(), name="blob-trigger-scan")

    async def stop(self) -> None:
        """Stop; runs cut short stay queued and run again at the next start (at least once)."""
        tasks = [t for t in (self._runner, self._scanner, *self._tasks) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._pool.shutdown(wait=False, cancel_futures=True)
        if self.db is not None:
            self.db.close()

    def wake(self) -> None:
        """Look for due work now (thread-safe)."""
        if self._loop is not None and self._wake is not None:
            self._loop.call_soon_threadsafe(self._wake.set)

    async def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._pool, lambda: fn(*args, **kwargs))

    # -- the container scan (standard source) ------------------------------------------------
    async def _scan_loop(self) -> None:
        while True:
            try:
                await self.scan()
                if self._scan_failing:
                    log.info("blob storage is reachable again for blob triggers")
                self._scan_failing = False
            except Exception as exc:  # storage unreachable for a moment: say so once, keep scanning
                if not self._scan_failing:
                    log.warning("scanning containers for blob triggers failed (will keep trying): %s: %s",
                                type(exc).__name__, exc)
                self._scan_failing = True
            await asyncio.sleep(self.poll_seconds)

    async def scan(self) -> int:
        """List the standard-source containers and queue every matching blob version without a receipt."""
        assert self.db is not None
        now = self.clock.now().timestamp()
        rows = []
        for b in self.functions.values():
            if b.event_grid:
                continue
            blobs = await self._call(lambda c=b.container: [(x.name, _etag(x.etag)) for x in c.list_blobs()])
            done = {(n, e) for n, e in self.db.execute(
                "SELECT name, etag FROM blob_receipts WHERE function=? AND container=?", (b.fn.name, b.path.container))}
            queued = {(n, e) for n, e in self.db.execute(
                "SELECT name, etag FROM blob_trigger_work WHERE function=? AND container=?",
                (b.fn.name, b.path.container))}
            rows += [(b.fn.name, b.path.container, n, e, now) for n, e in blobs
                     if (n, e) not in done and (n, e) not in queued and b.path.match(n) is not None]
        if rows:
            self.db.executemany("INSERT OR IGNORE INTO blob_trigger_work (function, container, name, etag, next_at) "
                                "VALUES (?,?,?,?,?)", rows)
            self.wake()
        return len(rows)

    # -- runs --------------------------------------------------------------------------------
    async def _run(self) -> None:
        assert self._wake is not None and self.db is not None
        limit = self.opts.batch_size + self.opts.new_batch_threshold
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=0.25)
            self._wake.clear()
            now = self.clock.now().timestamp()
            try:
                due = [_Work(*r) for r in self.db.execute(
                    "SELECT function, container, name, etag, attempts FROM blob_trigger_work WHERE next_at <= ? "
                    "ORDER BY next_at LIMIT 1000", (now,))]
            except sqlite3.Error:  # busy: try at the next tick
                log.exception("reading the blob trigger queue failed")
                continue
            for work in due:
                running = self._inflight.get(work.function)
                key = (work.container, work.name, work.etag)
                if running is None or key in running or len(running) >= limit:
                    continue
                running.add(key)
                task = asyncio.create_task(self._attempt(work))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def _attempt(self, work: _Work) -> None:
        try:
            await self._run_one(work)
        except asyncio.CancelledError:
            raise
        except Exception:  # never lose the work to a bug here: it stays queued
            log.exception("running blob trigger %s on %s/%s failed unexpectedly", work.function, work.container,
                          work.name)
        finally:
            self._inflight[work.function].discard((work.container, work.name, work.etag))
            self.wake()

    def _forget(self, work: _Work) -> None:
        assert self.db is not None
        self.db.execute("DELETE FROM blob_trigger_work WHERE function=? AND container=? AND name=? AND etag=?",
                        (work.function, work.container, work.name, work.etag))

    def _receipt(self, work: _Work, etag: str, outcome: str) -> None:
        assert self.db is not None
        self.db.execute("BEGIN IMMEDIATE")
        try:
            self.db.execute("INSERT OR REPLACE INTO blob_receipts VALUES (?,?,?,?,?,?)",
                            (work.function, work.container, work.name, etag, outcome,
                             format_time(self.clock.now())))
            self._forget(work)
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    async def _run_one(self, work: _Work) -> None:
        assert self.db is not None
        b = self.functions[work.function]
        client = b.container.get_blob_client(work.name)
        try:
            downloader = await self._call(client.download_blob)
            content = await self._call(downloader.readall)
        except ResourceNotFoundError:  # deleted before it ran: nothing to run
            self._forget(work)
            return
        props = downloader.properties
        etag = _etag(props.etag)
        if self.db.execute("SELECT 1 FROM blob_receipts WHERE function=? AND container=? AND name=? AND etag=?",
                           (work.function, work.container, work.name, etag)).fetchone():
            self._forget(work)  # this version (written again since it was queued) already ran
            return
        params = b.path.match(work.name) or {}
        value = trigger_value(b, work.name, content, props, client.url, params)
        self.runs += 1
        try:
            await invoke(b.fn, value, self.client_binding)
        except Exception as exc:  # the function failed: retry after visibilityTimeout, poison after maxDequeueCount
            attempts = work.attempts + 1
            error = f"{type(exc).__name__}: {exc}"
            log.error("function %s failed on blob %s/%s (attempt %d of %d): %s", work.function, work.container,
                      work.name, attempts, self.opts.max_dequeue_count, error)
            if attempts >= self.opts.max_dequeue_count:
                await self._poison(b, work, etag, str(getattr(props.blob_type, "value", props.blob_type)))
                self._receipt(work, etag, "poisoned")
                return
            self.db.execute("UPDATE blob_trigger_work SET attempts=?, next_at=?, last_error=? WHERE function=? AND "
                            "container=? AND name=? AND etag=?",
                            (attempts, self.clock.now().timestamp() + self.opts.visibility_timeout, error,
                             work.function, work.container, work.name, work.etag))
            return
        self._receipt(work, etag, "succeeded")

    async def _poison(self, b: BlobFunction, work: _Work, etag: str, blob_type: str) -> None:
        """The host's poison-blob message, to ``webjobs-blobtrigger-poison`` (or a file without a queue service)."""
        message = json.dumps({"FunctionId": f"Host.Functions.{b.fn.name}",
                              "BlobType": _BLOB_TYPES.get(blob_type, blob_type), "ContainerName": work.container,
                              "BlobName": work.name, "ETag": f'"{etag}"'})
        text = base64.b64encode(message.encode()).decode() if self.opts.message_encoding == "base64" else message
        self.poisoned += 1
        if b.queues is not None:
            queue = b.queues.get_queue_client(POISON_QUEUE)
            try:
                with contextlib.suppress(ResourceExistsError):
                    await self._call(queue.create_queue)
                await self._call(queue.send_message, text)
                log.warning("blob %s/%s failed %d times: message sent to queue %s", work.container, work.name,
                            self.opts.max_dequeue_count, POISON_QUEUE)
                return
            except Exception as exc:  # no queue service there: keep the message in a file instead
                log.warning("cannot write to queue %s (%s: %s); writing the poison message to a file", POISON_QUEUE,
                            type(exc).__name__, exc)
        folder = self.state_dir / "blobtrigger-poison"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{uuid.uuid4().hex}.json").write_text(message, encoding="utf-8")
        log.warning("blob %s/%s failed %d times: poison message written to %s", work.container, work.name,
                    self.opts.max_dequeue_count, folder)

    def stats(self) -> dict[str, Any]:
        """Counters, for the admin status."""
        pending = self.db.execute("SELECT COUNT(*) FROM blob_trigger_work").fetchone()[0] if self.db else 0
        return {"runs": self.runs, "poisoned": self.poisoned, "pending": pending}


def trigger_value(b: BlobFunction, name: str, content: bytes, props: Any, url: str, params: dict[str, str]) -> Any:
    """``func.InputStream`` from the worker's converter, with the host's trigger metadata."""
    settings = props.content_settings
    md5 = settings.content_md5 if settings is not None else None
    properties = {
        "ContentLength": props.size, "ContentType": settings.content_type if settings else None,
        "ContentEncoding": settings.content_encoding if settings else None,
        "ContentMD5": base64.b64encode(bytes(md5)).decode() if md5 else None,
        "ETag": f'"{_etag(props.etag)}"',
        "BlobType": _BLOB_TYPES.get(str(getattr(props.blob_type, "value", props.blob_type)), "Block"),
        "LastModified": format_time(props.last_modified) if props.last_modified else None,
        "CreatedOn": format_time(props.creation_time) if props.creation_time else None,
    }
    metadata: dict[str, meta.Datum] = {
        "BlobTrigger": meta.Datum(f"{b.path.container}/{name}", "string"),
        "Uri": meta.Datum(url, "string"),
        "Properties": meta.Datum(json.dumps(properties), "json"),
        "Metadata": meta.Datum(json.dumps(dict(props.metadata or {})), "json"),
    }
    for key, value in params.items():
        metadata.setdefault(key, meta.Datum(value, "string"))
    return BlobConverter.decode(meta.Datum(content, "bytes"), trigger_metadata=metadata)


def _poll_seconds(settings: dict[str, str]) -> float:
    raw = settings.get("DEVHOST_BLOB_TRIGGER_POLL_SECONDS") or "2"
    try:
        value = float(raw)
        if not 0.05 <= value <= 60:
            raise ValueError("must be between 0.05 and 60")
    except ValueError as exc:
        raise ConfigError(f"setting DEVHOST_BLOB_TRIGGER_POLL_SECONDS: {exc} (got {raw!r})") from exc
    return value
