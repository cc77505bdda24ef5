"""devhost part 2: Event Grid (webhook, subscriptions, custom topics), the blob watcher and timers."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from . import eventgrid
from .blobwatch import BlobWatcher
from .config import _key
from .eventgrid import EventGridWebhook
from .subscriptions import Router, TopicEndpoint, load_subscriptions
from .timers import Timers

if TYPE_CHECKING:
    from .server import DevHost


class _Routes:
    """Adapts a routes-only component to the extension interface."""

    def __init__(self, component: Any) -> None:
        self.component = component

    def add_routes(self, app: web.Application) -> None:
        self.component.add_routes(app)

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None


class _Service:
    """Adapts a start/stop component to the extension interface."""

    def __init__(self, component: Any) -> None:
        self.component = component

    def add_routes(self, app: web.Application) -> None:
        return None

    async def start(self) -> None:
        await self.component.start()

    async def stop(self) -> None:
        await self.component.stop()


def build_extensions(host: DevHost) -> list[Any]:
    """The extension components for this app and its subscriptions file."""
    cfg = host.config
    def binding() -> str:
        return host.client_binding_for(f"http://127.0.0.1:{cfg.port}")  # the port is known once bound

    eventgrid._CLIENT_BINDING["value"] = binding
    subs = load_subscriptions(cfg.subscriptions_path, host.index)
    router = Router(subs, host.index, host.clock, cfg.state_dir)
    topics = sorted({s.topic for s in subs if s.source_type == "topic"})
    topic_keys = {t: _key(cfg.settings, cfg.state_dir, f"DEVHOST_TOPIC_KEY_{t.upper()}") for t in topics}
    parts: list[Any] = [
        _Routes(EventGridWebhook(host.index, {cfg.system_key, cfg.master_key})),
        _Routes(TopicEndpoint(router, topic_keys)),
        _Service(router),
    ]
    if any(s.source_type == "blob" for s in subs):
        interval = float(cfg.settings.get("DEVHOST_BLOB_POLL_SECONDS", "1"))
        parts.append(_Service(BlobWatcher(router, host.clock, cfg.settings, interval)))
    timers = Timers(host.index, host.clock, cfg.settings, cfg.state_dir, binding)
    if timers.functions:
        parts.append(_Service(timers))
    host.router = router
    return parts
