"""Queue triggers over Azure Queue Storage (Azurite's queue service locally), as the host's queue listener runs them.

https://learn.microsoft.com/azure/azure-functions/functions-bindings-storage-queue-trigger and the host.json
settings at https://learn.microsoft.com/azure/azure-functions/functions-bindings-storage-queue#hostjson-settings:

- each ``queueTrigger`` function has a listener that gets up to ``batchSize`` messages at once, runs them in
  parallel, and gets the next batch once the messages still running drop to ``newBatchThreshold``: at most
  ``batchSize + newBatchThreshold`` run at once per function;
- an empty queue is polled again after a delay that doubles from 100 ms up to ``maxPollingInterval``
  (default 1 minute); a message found resets it;
- a message is received invisible for 10 minutes; success deletes it; a failure makes it visible again after
  ``visibilityTimeout`` (default 0), and once it was dequeued ``maxDequeueCount`` times (default 5) it is
  moved to ``<queue>-poison`` (created if missing) and deleted from the queue ("poison messages");
- ``messageEncoding`` ``base64`` (the default): the message text is base64 and the function gets the decoded
  bytes; a message that is not base64 goes to the poison queue at once, as it cannot be decoded;
- the function gets ``func.QueueMessage`` built by ``azure.functions``' own converter: ``id``, ``get_body()``,
  ``dequeue_count``, ``insertion_time``, ``expiration_time``, ``time_next_visible``, ``pop_receipt``.

The trigger queue is created at start if it does not exist (a local convenience).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

from azure.core.exceptions import ResourceExistsError
from azure.functions import meta
from azure.functions.queue import QueueMessageInConverter
from azure.storage.queue import QueueClient, QueueMessage, QueueServiceClient

from .app_loader import QUEUE_TRIGGER, FunctionIndex, FunctionInfo
from .config import ConfigError
from .eventgrid import format_time
from .storage_common import QueueOptions, connection_string, invoke, resolve

log = logging.getLogger("devhost.queues")

RECEIVE_VISIBILITY_SECONDS = 600  # what the host asks for when it gets messages (10 minutes)
MIN_POLL_SECONDS = 0.1
POISON_SUFFIX = "-poison"


def valid_queue_name(name: str) -> bool:
    """3-63 lower-case letters, digits and single hyphens, starting and ending with a letter or digit
    (https://learn.microsoft.com/rest/api/storageservices/naming-queues-and-metadata)."""
    import re
    return bool(re.fullmatch(r"[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62}", name))


def _time(value: datetime | None) -> meta.Datum | None:
    return None if value is None else meta.Datum(format_time(value), "string")


def trigger_value(message: QueueMessage, body: bytes) -> Any:
    """What the Python worker passes: ``func.QueueMessage`` from the converter, with the host's trigger metadata."""
    try:
        datum = meta.Datum(body.decode("utf-8"), "string")
    except UnicodeDecodeError:
        datum = meta.Datum(body, "bytes")
    metadata = {"Id": meta.Datum(str(message.id), "string"), "DequeueCount": meta.Datum(int(message.dequeue_count
                                                                                          or 0), "int"),
                "PopReceipt": meta.Datum(str(message.pop_receipt), "string"),
                "InsertionTime": _time(message.inserted_on), "ExpirationTime": _time(message.expires_on),
                "NextVisibleTime": _time(message.next_visible_on)}
    return QueueMessageInConverter.decode(datum, trigger_metadata={k: v for k, v in metadata.items() if v})


class QueueListener:
    """One queueTrigger function's listener."""

    def __init__(self, fn: FunctionInfo, queue: QueueClient, poison: QueueClient, opts: QueueOptions,
                 client_binding: Callable[[], str], pool: ThreadPoolExecutor) -> None:
        self.fn, self.queue, self.poison, self.opts = fn, queue, poison, opts
        self.client_binding = client_binding
        self._pool = pool
        self._running: set[asyncio.Task[None]] = set()
        self._changed: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._failing = False
        self.processed = 0
        self.failed = 0
        self.poisoned = 0
        self.peak = 0  # the most messages that ran at once

    async def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, lambda: fn(*args, **kwargs))

    async def start(self) -> None:
        """Create the queue if missing, then listen."""
        self._changed = asyncio.Event()
        try:
            await self._call(self.queue.create_queue)
        except ResourceExistsError:
            pass
        except Exception as exc:  # storage not up yet: the listener keeps trying and says so
            log.warning("cannot create queue %s: %s: %s", self.queue.queue_name, type(exc).__name__, exc)
        self._task = asyncio.create_task(self._run(), name=f"queue-listener-{self.fn.name}")

    async def stop(self) -> None:
        """Stop listening; messages still running are cut short and reappear after their visibility timeout."""
        tasks = [t for t in (self._task, *self._running) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        assert self._changed is not None
        delay = MIN_POLL_SECONDS
        while True:
            if len(self._running) > self.opts.new_batch_threshold:
                self._changed.clear()
                await self._changed.wait()
                continue
            try:
                messages = await self._call(lambda: list(self.queue.receive_messages(
                    max_messages=self.opts.batch_size, messages_per_page=self.opts.batch_size,
                    visibility_timeout=RECEIVE_VISIBILITY_SECONDS)))
                if self._failing:
                    log.info("queue %s is reachable again", self.queue.queue_name)
                self._failing = False
            except Exception as exc:  # storage unreachable for a moment: say so once, keep polling
                if not self._failing:
                    log.warning("getting messages from queue %s failed (will keep trying): %s: %s",
                                self.queue.queue_name, type(exc).__name__, exc)
                self._failing = True
                messages = []
            if messages:
                delay = MIN_POLL_SECONDS
                for message in messages:
                    task = asyncio.create_task(self._process(message))
                    self._running.add(task)
                    task.add_done_callback(self._done)
                self.peak = max(self.peak, len(self._running))
                continue
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.opts.max_polling_interval)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        if self._changed is not None:
            self._changed.set()

    def _decode(self, message: QueueMessage) -> bytes | None:
        text = message.content if isinstance(message.content, str) else bytes(message.content).decode("utf-8")
        if self.opts.message_encoding == "none":
            return text.encode("utf-8")
        try:
            return base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            return None

    async def _process(self, message: QueueMessage) -> None:
        try:
            count = int(message.dequeue_count or 0)
            if count > self.opts.max_dequeue_count:  # left running by a host that stopped: already too many tries
                await self._to_poison(message, f"dequeued {count} times")
                return
            body = self._decode(message)
            if body is None:
                await self._to_poison(message, "its content is not base64 (host.json extensions.queues."
                                               "messageEncoding is base64)")
                return
            try:
                await invoke(self.fn, trigger_value(message, body), self.client_binding)
            except Exception as exc:  # the function failed: retry later, or poison after maxDequeueCount
                self.failed += 1
                log.error("function %s failed on queue message %s (dequeue count %d): %s: %s", self.fn.name,
                          message.id, count, type(exc).__name__, exc)
                if count >= self.opts.max_dequeue_count:
                    await self._to_poison(message, f"it failed {count} times (maxDequeueCount "
                                                   f"{self.opts.max_dequeue_count})")
                else:
                    await self._call(self.queue.update_message, message, pop_receipt=message.pop_receipt,
                                     visibility_timeout=int(self.opts.visibility_timeout))
                return
            await self._call(self.queue.delete_message, message, pop_receipt=message.pop_receipt)
            self.processed += 1
        except asyncio.CancelledError:
            raise
        except Exception:  # storage failed while settling: the message reappears after its visibility timeout
            log.exception("settling queue message %s of %s failed", message.id, self.queue.queue_name)

    async def _to_poison(self, message: QueueMessage, why: str) -> None:
        """Copy the message, as it is, to ``<queue>-poison`` and delete it from the queue."""
        try:
            await self._call(self.poison.create_queue)
        except ResourceExistsError:
            pass
        await self._call(self.poison.send_message, message.content)
        await self._call(self.queue.delete_message, message, pop_receipt=message.pop_receipt)
        self.poisoned += 1
        log.warning("message %s moved to queue %s: %s", message.id, self.poison.queue_name, why)


class QueueTriggers:
    """All queueTrigger functions of an app: ``start``/``stop`` with the host, ``add_routes`` adds none."""

    def __init__(self, index: FunctionIndex, settings: dict[str, str], host_json: dict[str, Any],
                 client_binding: Callable[[], str]) -> None:
        functions = index.of_type(QUEUE_TRIGGER)
        self.listeners: list[QueueListener] = []
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="devhost-queues")
        if not functions:
            return
        opts = QueueOptions.from_host_json(host_json)
        services: dict[str, QueueServiceClient] = {}
        for fn in functions:
            setting, conn = connection_string(fn, settings)
            name = resolve(str(fn.trigger.get("queueName") or ""), settings, f"function {fn.name!r} queueName")
            if not valid_queue_name(name) or len(name) + len(POISON_SUFFIX) > 63:
                raise ConfigError(f"function {fn.name!r}: queue name {name!r} is not a valid queue name (3-56 "
                                  "lower-case letters, digits and single hyphens, so <queue>-poison fits in 63)")
            if setting not in services:
                try:
                    services[setting] = QueueServiceClient.from_connection_string(conn)
                except ValueError as exc:  # the SDK's words for a malformed connection string
                    raise ConfigError(f"function {fn.name!r}: app setting {setting!r} is not a usable queue "
                                      f"connection string: {exc}") from exc
            svc = services[setting]
            self.listeners.append(QueueListener(fn, svc.get_queue_client(name),
                                                svc.get_queue_client(name + POISON_SUFFIX), opts, client_binding,
                                                self._pool))

    def add_routes(self, app: Any) -> None:
        """No routes: queue triggers are pulled from storage."""

    async def start(self) -> None:
        """Start every listener."""
        for listener in self.listeners:
            await listener.start()

    async def stop(self) -> None:
        """Stop every listener."""
        for listener in self.listeners:
            await listener.stop()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def stats(self) -> dict[str, Any]:
        """Counters per function, for the admin status."""
        return {lst.fn.name: {"queue": lst.queue.queue_name, "processed": lst.processed, "failed": lst.failed,
                              "poisoned": lst.poisoned, "peakConcurrency": lst.peak} for lst in self.listeners}
