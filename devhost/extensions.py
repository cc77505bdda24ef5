"""devhost's event sources, assembled: the Event Grid webhook, subscriptions and their delivery
queue, custom topics, the blob watcher, timer triggers, and blob and queue triggers.

``build_extensions(host)`` is what ``DevHost`` loads; each part has ``add_routes(app)``,
``async start()`` and ``async stop()``. Start order is queue, blob watcher, timers (stop is
the reverse), so nothing is emitted before the queue can take it. The host is seen through
``EventHost``, the little of it the event sources use, so this module does not import the server.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from aiohttp import web

from .app_loader import FunctionIndex
from .blob_triggers import BlobTriggers
from .blobwatch import BlobWatcher
from .clock import Clock
from .config import ConfigError, HostConfig
from .delivery import DeliveryQueue
from .eventgrid_webhook import EventGridTrigger, EventGridWebhook
from .queue_triggers import QueueTriggers
from .subscriptions import BLOB, TOPIC, SubscriptionError, blob_connections, load_subscriptions
from .timers import Timers
from .topics import TopicEndpoint, topic_keys


class EventHost(Protocol):
    """What the event sources need of the host (``devhost.server.DevHost`` is one)."""

    config: HostConfig
    index: FunctionIndex
    clock: Clock

    def client_binding_for(self, origin: str) -> str:
        """The durableClient binding data, with URLs on ``origin``."""
        ...


@dataclass
class EventOptions:
    """The settings the event sources read (all optional)."""

    blob_poll_seconds: float = 0.25
    blob_poll_max_seconds: float = 0.5
    delivery_concurrency: int = 16
    subscription_id: str = "00000000-0000-0000-0000-000000000000"
    resource_group: str = "devhost"

    @classmethod
    def from_settings(cls, settings: dict[str, str]) -> EventOptions:
        """``DEVHOST_BLOB_POLL_SECONDS``, ``DEVHOST_BLOB_POLL_MAX_SECONDS``, ``DEVHOST_EVENTGRID_CONCURRENCY``,
        ``DEVHOST_AZURE_SUBSCRIPTION_ID``,
        ``DEVHOST_RESOURCE_GROUP``; a bad value is a ConfigError naming the setting."""
        opts = cls()
        try:
            opts.blob_poll_seconds = float(settings.get("DEVHOST_BLOB_POLL_SECONDS") or opts.blob_poll_seconds)
            if not 0.01 <= opts.blob_poll_seconds <= 3600:
                raise ValueError("must be between 0.01 and 3600")
        except ValueError as exc:
            raise ConfigError(f"setting DEVHOST_BLOB_POLL_SECONDS: {exc}") from exc
        try:
            raw = settings.get("DEVHOST_BLOB_POLL_MAX_SECONDS")
            opts.blob_poll_max_seconds = float(raw) if raw else max(opts.blob_poll_max_seconds,
                                                                     opts.blob_poll_seconds)
            if not opts.blob_poll_seconds <= opts.blob_poll_max_seconds <= 3600:
                raise ValueError(f"must be between DEVHOST_BLOB_POLL_SECONDS ({opts.blob_poll_seconds:g}) and 3600")
        except ValueError as exc:
            raise ConfigError(f"setting DEVHOST_BLOB_POLL_MAX_SECONDS: {exc}") from exc
        try:
            opts.delivery_concurrency = int(settings.get("DEVHOST_EVENTGRID_CONCURRENCY")
                                            or opts.delivery_concurrency)
            if opts.delivery_concurrency < 1:
                raise ValueError("must be a positive integer")
        except ValueError as exc:
            raise ConfigError(f"setting DEVHOST_EVENTGRID_CONCURRENCY: {exc}") from exc
        opts.subscription_id = settings.get("DEVHOST_AZURE_SUBSCRIPTION_ID") or opts.subscription_id
        opts.resource_group = settings.get("DEVHOST_RESOURCE_GROUP") or opts.resource_group
        return opts


class _Part:
    """Adapts a component to the extension interface; missing hooks do nothing."""

    def __init__(self, component: Any) -> None:
        self.component = component

    def add_routes(self, app: web.Application) -> None:
        if hasattr(self.component, "add_routes"):
            self.component.add_routes(app)

    async def start(self) -> None:
        if hasattr(self.component, "start"):
            await self.component.start()

    async def stop(self) -> None:
        if hasattr(self.component, "stop"):
            await self.component.stop()


class _Status:
    """``GET /admin/devhost/eventgrid`` (master key): queue depth and counters."""

    def __init__(self, host: EventHost, queue: DeliveryQueue, watcher: BlobWatcher | None,
                 timers: Timers | None, blobs: BlobTriggers | None = None, queues: QueueTriggers | None = None) -> None:
        self.host, self.queue, self.watcher, self.timers = host, queue, watcher, timers
        self.blobs, self.queues = blobs, queues

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/admin/devhost/eventgrid", self.handle)

    async def handle(self, request: web.Request) -> web.Response:
        key = request.headers.get("x-functions-key") or request.query.get("code")
        if not self.host.config.authorized(key, {self.host.config.master_key}):
            return web.json_response({"error": "the master key is required"}, status=401)
        return web.json_response({**self.queue.stats(),
                                  "blobEventsEmitted": self.watcher.emitted if self.watcher else 0,
                                  "timerInvocations": self.timers.fired if self.timers else {},
                                  "blobTriggers": self.blobs.stats() if self.blobs and self.blobs.functions else {},
                                  "queueTriggers": self.queues.stats() if self.queues else {}})


def build_extensions(host: EventHost) -> list[Any]:
    """The event components for this app and its subscriptions file."""
    cfg = host.config
    opts = EventOptions.from_settings(cfg.settings)

    def client_binding() -> str:
        return host.client_binding_for(f"http://{cfg.host}:{cfg.port}")  # read late: the port is bound at start

    trigger = EventGridTrigger(host.index, client_binding)
    subs = load_subscriptions(cfg.subscriptions_path, host.index)
    queue = DeliveryQueue(cfg.state_dir, subs, trigger, host.clock, opts.delivery_concurrency)
    webhook = EventGridWebhook(trigger, {cfg.system_key, cfg.master_key}, enforce=cfg.enable_auth)
    parts: list[Any] = [_Part(webhook), _Part(queue)]
    topics = sorted({s.topic for s in subs if s.source_type == TOPIC})
    if topics:
        keys = topic_keys(topics, cfg.settings, cfg.state_dir)
        parts.append(_Part(TopicEndpoint(queue, subs, keys, opts.subscription_id, opts.resource_group)))
    # Blob triggers (the EventGrid source fed by the watcher below) and queue triggers.
    blob_triggers = BlobTriggers(host.index, cfg.settings, cfg.host_json, cfg.state_dir, host.clock, client_binding)
    if blob_triggers.functions:
        parts.append(_Part(blob_triggers))
    watched = blob_triggers.event_grid_targets
    watcher = None
    if any(s.source_type == BLOB for s in subs) or watched:
        connections = {**{c: blob_triggers.connections[c] for c, _ in watched}, **blob_connections(subs, cfg.settings)}
        try:
            watcher = BlobWatcher(queue, subs, connections, host.clock, opts.blob_poll_seconds, opts.subscription_id,
                                  opts.resource_group, extra_targets=watched,
                                  hooks=[blob_triggers.on_blob_events] if watched else [],
                                  max_interval=opts.blob_poll_max_seconds)
        except ValueError as exc:  # the SDK's words for a malformed connection string
            raise SubscriptionError(f"a blob subscription's storage connection string is invalid: {exc}") from exc
        parts.append(_Part(watcher))
    timers = Timers(host.index, host.clock, cfg.settings, cfg.state_dir, client_binding)
    if timers.timers:
        parts.append(_Part(timers))
    queue_triggers = QueueTriggers(host.index, cfg.settings, cfg.host_json, client_binding)
    if queue_triggers.listeners:
        parts.append(_Part(queue_triggers))
    parts.append(_Part(_Status(host, queue, watcher, timers if timers.timers else None, blob_triggers,
                               queue_triggers)))
    return parts
