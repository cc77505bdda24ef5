"""Helpers for end-to-end tests against the running local stack."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests
from azure.storage.blob import BlobServiceClient

from adapters.gateway_client import GatewayClient
from cli.sampledata import generate, to_csv_bytes
from cli.stack import StackInfo
from mlops.events import APP_DRIFT_EVENT_TYPE

TERMINAL = {"Completed", "Failed", "Terminated"}


def run_input(instance: dict[str, Any]) -> dict[str, Any]:
    """An instance's input as a dict (sub-orchestration inputs are shown as the SDK's JSON text)."""
    value = instance.get("input")
    for _ in range(2):
        if isinstance(value, str):
            value = json.loads(value)
    return value if isinstance(value, dict) else {}


def drift_event(model: str, version: str) -> dict[str, Any]:
    """The app's own drift event for ``model`` ``version`` (Event Grid schema), as the monitor publishes it."""
    return {"id": str(uuid.uuid4()), "subject": f"models/{model}:{version}", "eventType": APP_DRIFT_EVENT_TYPE,
            "eventTime": "2026-11-24T12:00:00Z", "dataVersion": "1.0",
            "data": {"model": model, "version": version,
                     "features": {"f0": {"statistic": "psi", "value": 0.9, "threshold": 0.2}}}}


class Lab:
    """The running stack plus helpers a test needs."""

    def __init__(self, info: StackInfo) -> None:
        self.info = info
        self.blobs = BlobServiceClient.from_connection_string(info.storage)
        self.gateway = GatewayClient(info.gateway_url, info.gateway_key)
        self.http = requests.Session()

    def land(self, model: str, name: str, content: bytes) -> str:
        """Upload a file to landing/<model>/<name>; returns its URL."""
        blob = self.blobs.get_blob_client("landing", f"{model}/{name}")
        blob.upload_blob(content, overwrite=True)
        return str(blob.url)

    def land_and_promote(self, model: str, name: str, seed: int) -> None:
        """Land good sample data for ``model`` and wait until the release it causes completes."""
        releases = {i["instanceId"] for i in self.instances(f"release-{model}-")}
        self.land(model, name, to_csv_bytes(generate(400, seed=seed)))
        self.wait(lambda: next((i for i in self.instances(f"release-{model}-") if i["instanceId"] not in releases
                                and i["runtimeStatus"] == "Completed"), None), what=f"the release after {name}")

    def durable(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """The Durable HTTP API with the system key."""
        params = {"code": self.info.system_key, **kwargs.pop("params", {})}
        return self.http.request(method, f"{self.info.devhost_url}/runtime/webhooks/durabletask/{path}",
                                 params=params, timeout=30, **kwargs)

    def instances(self, prefix: str) -> list[dict[str, Any]]:
        """Instances whose id starts with ``prefix``."""
        return list(self.durable("GET", "instances", params={"instanceIdPrefix": prefix, "showInput": "true"}).json())

    def status(self, iid: str) -> dict[str, Any]:
        """One instance's status ({"runtimeStatus": None} if there is no such instance)."""
        resp = self.durable("GET", f"instances/{iid}")
        return {"runtimeStatus": None} if resp.status_code == 404 else dict(resp.json())

    def idle(self, model: str) -> None:
        """Wait until the model's lifecycle has nothing in flight."""
        self.wait(lambda: self.status(f"lifecycle-{model}")["runtimeStatus"] in (None, "Completed", "Failed"),
                  what=f"the {model} lifecycle to be idle")

    def wait(self, predicate: Callable[[], Any], timeout: float = 120, what: str = "condition",
             tick: Callable[[], None] | None = None) -> Any:
        """Poll until ``predicate`` returns something truthy (bounded)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            if tick is not None:
                tick()
            time.sleep(0.25)
        raise TimeoutError(f"{what} not reached in {timeout}s\n{self.log_tail()}")

    def finished(self, prefix: str, count: int = 1) -> list[dict[str, Any]]:
        """Wait until ``count`` instances with the prefix have finished; returns them."""
        def done() -> list[dict[str, Any]] | None:
            items = [i for i in self.instances(prefix) if i["runtimeStatus"] in TERMINAL]
            return items if len(items) >= count else None
        return list(self.wait(done, what=f"{count} finished {prefix}*"))

    def advance(self, seconds: float) -> None:
        """Move devhost's virtual clock."""
        self.http.post(f"{self.info.devhost_url}/admin/devhost/clock", json={"seconds": seconds},
                       headers={"x-functions-key": self.info.master_key}, timeout=30).raise_for_status()

    def advance_bakes(self, model: str, seconds: float = 61) -> None:
        """Move the virtual clock, but only while a release of ``model`` bakes (shadow or a canary step).

        Advancing it at other times would race the release's deadlines: a deployment still loading in
        real time would run out its 30 virtual minutes in a few seconds.
        """
        stages = {(i.get("customStatus") or {}).get("stage") or "" for i in self.instances(f"release-{model}-")
                  if i["runtimeStatus"] == "Running"}
        if any(stage.startswith(("shadow", "canary")) for stage in stages):
            self.advance(seconds)

    def publish(self, events: list[dict[str, Any]]) -> requests.Response:
        """Post Event Grid schema events to the custom topic."""
        return self.http.post(self.info.topic_endpoint, data=json.dumps(events),
                              headers={"aeg-sas-key": self.info.topic_key, "Content-Type": "application/json"},
                              timeout=30)

    def log(self) -> str:
        """devhost's log: the host's and the app's records."""
        return (Path(self.info.state_dir) / "devhost.log").read_text(errors="replace")

    def log_tail(self) -> str:
        """The end of devhost's log."""
        return self.log()[-4000:]
