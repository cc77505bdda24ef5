"""Custom topics: ``POST /runtime/webhooks/eventgrid/topics/<topic>/api/events``.

The endpoint speaks what an Event Grid topic speaks, so ``azure-eventgrid``'s
``EventGridPublisherClient(endpoint, AzureKeyCredential(key))`` publishes to it unchanged
(the client takes ``http://`` endpoints as given). A publisher authenticates with the
``aeg-sas-key`` header (the topic key) or an ``aeg-sas-token`` made by
``azure.eventgrid.generate_sas`` (https://learn.microsoft.com/azure/event-grid/authenticate-with-access-keys-shared-access-signatures);
otherwise 401. The body is validated like the webhook's (400 with the reason); a topic takes
its ``inputSchema`` only (Event Grid schema by default). The answer is 200 once the events
are committed to the delivery queue, routed by the topic's subscriptions and their filters.
Event Grid sets ``topic`` on Event Grid schema events to the topic's resource id; so does
devhost (https://learn.microsoft.com/azure/event-grid/event-schema#event-properties).

Topic keys: the ``DEVHOST_TOPIC_KEY_<TOPIC>`` setting (upper case, ``-`` as ``_``), else a
key generated once and kept in ``<state>/keys.json``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import os
import secrets
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import unquote, urlsplit

from aiohttp import web

from .config import KEYS_FILE
from .delivery import DeliveryQueue
from .eventgrid import CLOUDEVENTS, EVENTGRID, EventError, parse_body
from .subscriptions import TOPIC, Subscription

log = logging.getLogger("devhost.topics")

TOPIC_PATH = "/runtime/webhooks/eventgrid/topics/{topic}/api/events"


def topic_key_setting(topic: str) -> str:
    """The setting that holds a topic's key."""
    return "DEVHOST_TOPIC_KEY_" + topic.upper().replace("-", "_")


def topic_keys(topics: list[str], settings: dict[str, str], state_dir: Path) -> dict[str, str]:
    """Each topic's key: from its setting, else generated once (base64, like Azure's) and kept in keys.json."""
    path = state_dir / KEYS_FILE
    stored: dict[str, str] = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    keys, changed = {}, False
    for topic in topics:
        name = topic_key_setting(topic)
        if settings.get(name):
            keys[topic] = settings[name]
            continue
        if name not in stored:
            stored[name] = base64.b64encode(secrets.token_bytes(32)).decode()
            changed = True
        keys[topic] = stored[name]
    if changed:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(stored, indent=2), encoding="utf-8")
        os.chmod(tmp, 0o600)
        tmp.replace(path)
    return keys


def _b64decode(key: str) -> bytes:
    # The same decoding azure.eventgrid.generate_sas applies to the key it signs with.
    return base64.b64decode(key)


def sas_valid(token: str, key: str, topic: str, now: datetime) -> bool:
    """Whether an ``aeg-sas-token`` (``r=<resource>&e=<expiry>&s=<signature>``) is signed with ``key`` for ``topic``."""
    unsigned, sep, signature = token.rpartition("&s=")
    if not sep:
        return False
    parts = dict(p.split("=", 1) for p in unsigned.split("&") if "=" in p)
    if "r" not in parts or "e" not in parts:
        return False
    try:
        expected = base64.b64encode(hmac.new(_b64decode(key), unsigned.encode("ascii"), hashlib.sha256).digest())
        expires = datetime.fromisoformat(unquote(parts["e"]))
    except (binascii.Error, ValueError, UnicodeEncodeError):
        return False
    if not hmac.compare_digest(expected, unquote(signature).encode("ascii", "replace")):
        return False
    path = urlsplit(unquote(parts["r"])).path.rstrip("/").lower()
    expires = expires if expires.tzinfo else expires.replace(tzinfo=UTC)
    return path.endswith(f"/topics/{topic.lower()}/api/events") and expires > now


class TopicEndpoint:
    """Custom topics devhost serves; one per topic named in the subscriptions."""

    def __init__(self, queue: DeliveryQueue, subs: list[Subscription], keys: dict[str, str],
                 subscription_id: str, resource_group: str) -> None:
        self.queue = queue
        self.keys = keys
        self.schemas = {s.topic: s.input_schema for s in subs if s.source_type == TOPIC}
        self.resource_prefix = (f"/subscriptions/{subscription_id}/resourceGroups/{resource_group}"
                                "/providers/Microsoft.EventGrid/topics/")

    def add_routes(self, app: web.Application) -> None:
        """Mount the publish endpoint."""
        app.router.add_post(TOPIC_PATH, self.publish)

    def _authorized(self, request: web.Request, topic: str) -> bool:
        key = self.keys[topic]
        given = request.headers.get("aeg-sas-key")
        if given:
            return hmac.compare_digest(given.encode(), key.encode())
        token = request.headers.get("aeg-sas-token")
        # SAS expiry is the publisher's wall-clock time, not devhost's (possibly virtual) clock.
        return token is not None and sas_valid(token, key, topic, datetime.now(UTC))

    async def publish(self, request: web.Request) -> web.Response:
        """Authorise, validate the whole batch, queue it durably, then answer 200."""
        topic = next((t for t in self.keys if t.lower() == request.match_info["topic"].lower()), None)
        if topic is None:
            return web.json_response({"error": f"topic {request.match_info['topic']!r} is not served by devhost: "
                                               "no subscription has it as source"}, status=404)
        if not self._authorized(request, topic):
            return web.json_response({"error": "Unauthorized: a valid aeg-sas-key or aeg-sas-token header is "
                                               "required"}, status=401)
        try:
            batch = parse_body(await request.read(), request.headers.get("Content-Type"))
        except EventError as exc:
            return web.json_response({"error": str(exc)}, status=exc.status)
        wanted = self.schemas[topic]
        if batch.schema != wanted:
            got = "CloudEvents" if batch.schema == CLOUDEVENTS else "Event Grid"
            return web.json_response({"error": f"topic {topic!r} takes {wanted} events (its inputSchema), got "
                                               f"{got} schema events"}, status=400)
        if batch.schema == EVENTGRID:
            for event in batch.events:
                event["topic"] = self.resource_prefix + topic
                event.setdefault("metadataVersion", "1")
        self.queue.enqueue(self.queue.route(batch.events, batch.schema, TOPIC, topic=topic))
        return web.Response(status=200)
