"""Test support for the Event Grid, blob watcher and timer tests: a devhost on the events fixture app
with a subscriptions file written by the test, what its functions recorded, and Azurite."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from azure.storage.blob import BlobServiceClient, ContainerClient

from devhost.azurite import Azurite
from devhost.testing import DevHostProcess

APP_DIR = Path(__file__).parents[1] / "apps" / "events"
EVENTS_APP = APP_DIR / "function_app.py"
TIMER_APP = APP_DIR / "timer_app.py"
WEBHOOK = "/runtime/webhooks/eventgrid"


def unique(prefix: str = "c") -> str:
    """A fresh container (or topic) name, so tests sharing Azurite never see each other's blobs."""
    return f"{prefix}{uuid.uuid4().hex[:12]}"


def blob_sub(name: str, function: str, containers: list[str], **extra: Any) -> dict[str, Any]:
    """A blob-source subscription entry."""
    return {"name": name, "source": {"type": "blob", "connection": "AzureWebJobsStorage", "containers": containers},
            "destination": {"function": function}, **extra}


def topic_sub(name: str, function: str, topic: str, **extra: Any) -> dict[str, Any]:
    """A topic-source subscription entry (``inputSchema`` may be passed in ``source_extra``)."""
    source = {"type": "topic", "name": topic, **extra.pop("source_extra", {})}
    return {"name": name, "source": source, "destination": {"function": function}, **extra}


@dataclass
class EventsHost:
    """A devhost on an events fixture app, what its functions recorded, and Azurite."""

    host: DevHostProcess
    out: Path
    azurite: Azurite
    topic_keys: dict[str, str] = field(default_factory=dict)

    @property
    def storage(self) -> BlobServiceClient:
        return BlobServiceClient.from_connection_string(self.azurite.connection_string)

    def container(self, name: str) -> ContainerClient:
        client = self.storage.get_container_client(name)
        if not client.exists():
            client.create_container()
        return client

    def records(self, function: str) -> list[dict[str, Any]]:
        folder = self.out / function
        return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))] if folder.exists() else []

    def wait_records(self, function: str, count: int = 1, where: Callable[[dict[str, Any]], bool] = lambda r: True,
                     timeout: float = 30) -> list[dict[str, Any]]:
        """Poll (bounded) until ``function`` recorded at least ``count`` matching invocations."""
        deadline = time.monotonic() + timeout
        found: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            found = [r for r in self.records(function) if where(r)]
            if len(found) >= count:
                return found
            time.sleep(0.05)
        raise AssertionError(f"{function}: {len(found)} of {count} records after {timeout}s; "
                             f"all: {self.records(function)}; status: {self.status()}\n{self.host.log_tail()}")

    def webhook(self, function: str | None, body: Any = None, *, raw: bytes | None = None, key: str | None = "system",
                event_type: str | None = "Notification", content_type: str = "application/json",
                method: str = "POST", headers: dict[str, str] | None = None) -> requests.Response:
        """Call the Event Grid webhook as Event Grid does (system key, aeg-event-type header)."""
        params = {"functionName": function} if function else {}
        if key == "system":
            params["code"] = self.host.system_key
        elif key:
            params["code"] = key
        hdrs = {"Content-Type": content_type, **(headers or {})}
        if event_type:
            hdrs["aeg-event-type"] = event_type
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        return self.host.session.request(method, self.host.base_url + WEBHOOK, params=params, data=data,
                                         headers=hdrs, timeout=30)

    def topic_endpoint(self, topic: str) -> str:
        return f"{self.host.base_url}/runtime/webhooks/eventgrid/topics/{topic}/api/events"

    def status(self) -> dict[str, Any]:
        resp = self.host.session.get(self.host.base_url + "/admin/devhost/eventgrid",
                                     headers={"x-functions-key": self.host.master_key}, timeout=10)
        resp.raise_for_status()
        return dict(resp.json())

    def wait_status(self, until: Callable[[dict[str, Any]], bool], timeout: float = 30) -> dict[str, Any]:
        """Poll (bounded) the delivery status until ``until`` holds; the last status."""
        deadline = time.monotonic() + timeout
        last: dict[str, Any] = {}
        while time.monotonic() < deadline:
            last = self.status()
            if until(last):
                return last
            time.sleep(0.05)
        raise AssertionError(f"delivery status never got there in {timeout}s: {last}")

    def wait_idle(self, timeout: float = 30) -> dict[str, Any]:
        """Poll (bounded) until no delivery is due or running."""
        deadline = time.monotonic() + timeout
        last: dict[str, Any] = {}
        while time.monotonic() < deadline:
            last = self.status()
            if not last["pending"] and not last["inFlight"]:
                return last
            time.sleep(0.05)
        raise AssertionError(f"deliveries still pending after {timeout}s: {last}")


def make_events_host(root: Path, azurite: Azurite, subscriptions: list[dict[str, Any]] | None = None,
                     app: Path = EVENTS_APP, env: dict[str, str] | None = None, virtual_clock: bool = True,
                     topic_keys: dict[str, str] | None = None, enable_auth: bool = False) -> EventsHost:
    """A devhost (not yet started) on a fixture app, its state and outputs under ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    out = root / "out"
    out.mkdir(exist_ok=True)
    subs_path = root / "eventgrid.subscriptions.json"
    subs_path.write_text(json.dumps(subscriptions or [], indent=2))
    keys = dict(topic_keys or {})
    settings = {"AzureWebJobsStorage": azurite.connection_string, "EVENTS_OUT_DIR": str(out),
                "DEVHOST_SUBSCRIPTIONS": str(subs_path), "DEVHOST_BLOB_POLL_SECONDS": "0.1",
                **{f"DEVHOST_TOPIC_KEY_{t.upper()}": k for t, k in keys.items()}, **(env or {})}
    host = DevHostProcess(app, root / "state", virtual_clock=virtual_clock, env=settings, enable_auth=enable_auth)
    return EventsHost(host, out, azurite, keys)
