"""Helpers for end-to-end tests against the running local stack."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests
from azure.storage.blob import BlobServiceClient

from adapters.gateway_client import GatewayClient
from cli.sampledata import generate, scoring_rows, to_csv_bytes
from cli.stack import Stack, StackInfo
from mlops.events import APP_DRIFT_EVENT_TYPE

TERMINAL = {"Completed", "Failed", "Terminated"}
BAKE_PREFIXES = ("shadow", "a/b", "canary")  # the release stages that bake on a durable timer
FULL = 100  # the last canary step's percent: its bake is not analysed (orchestrators/release.py, _canary)


def principal(name: str, *roles: str) -> str:
    """An App Service authentication principal header value (x-ms-client-principal)."""
    claims = [{"typ": "name", "val": name}] + [{"typ": "roles", "val": r} for r in roles]
    return base64.b64encode(json.dumps({"auth_typ": "aad", "claims": claims, "name_typ": "name",
                                        "role_typ": "roles"}).encode()).decode()


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


@contextmanager
def running_stack(state_dir: Path, policy_dir: Path, extra_env: dict[str, str] | None = None) -> Iterator[Lab]:
    """A stack of its own on the virtual clock, that a killed test runner takes along; down when the block ends."""
    stack = Stack(state_dir, virtual_clock=True, policy_dir=policy_dir, extra_env=extra_env, die_with_parent=True)
    info = stack.up()
    try:
        yield Lab(info)
    finally:
        stack.down()


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

    def finished(self, prefix: str, count: int = 1, timeout: float = 120) -> list[dict[str, Any]]:
        """Wait until ``count`` instances with the prefix have finished; returns them."""
        def done() -> list[dict[str, Any]] | None:
            items = [i for i in self.instances(prefix) if i["runtimeStatus"] in TERMINAL]
            return items if len(items) >= count else None
        return list(self.wait(done, timeout=timeout, what=f"{count} finished {prefix}*"))

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

    # -- releases driven by hand ------------------------------------------------------------------
    def traffic(self, endpoint: str, n: int, drift: float = 0.0) -> list[str]:
        """Send n scoring requests through the live split; the deployments that answered."""
        answered = []
        for row in scoring_rows(n, seed=uuid.uuid4().int % 10_000, drift=drift):
            _, deployment = self.gateway.score_via_endpoint(endpoint, [row])
            answered.append(deployment)
        return answered

    def score_as(self, endpoint: str, rows: list[dict[str, Any]], request_id: str) -> list[Any]:
        """Score through the live split with our own request id (the gateway answers with it): the predictions."""
        resp = self.http.post(f"{self.info.gateway_url}/endpoints/{endpoint}/score", json={"input_data": rows},
                              headers={"x-gateway-key": self.info.gateway_key, "x-request-id": request_id}, timeout=30)
        resp.raise_for_status()
        assert resp.headers["x-request-id"] == request_id
        return list(resp.json()["predictions"])

    def model_detail(self, model: str) -> dict[str, Any]:
        """The operator API's detail of a model."""
        return dict(self.http.get(f"{self.info.devhost_url}/api/models/{model}",
                                  headers={"x-functions-key": self.info.function_key}, timeout=30).json())

    def release_of(self, model: str, version: str) -> dict[str, Any]:
        """The release run of ``model`` ``version`` (waits until it exists)."""
        return dict(self.wait(lambda: next((i for i in self.instances(f"release-{model}-")
                                            if str(run_input(i).get("version")) == version), None),
                              what=f"the release of {model} v{version}"))

    def land_and_register(self, model: str, name: str, seed: int, rows: int = 600) -> str:
        """Land good data for ``model``; the version its retrain registered (asserts the retrain completed)."""
        known = {i["instanceId"] for i in self.instances(f"retrain-{model}-")}
        self.land(model, name, to_csv_bytes(generate(rows, seed=seed)))
        runs = self.finished(f"retrain-{model}-", len(known) + 1)
        newest = next(r for r in runs if r["instanceId"] not in known)
        assert newest["runtimeStatus"] == "Completed", newest["output"]
        return str(newest["output"]["version"])

    def drive_release(self, iid: str, endpoint: str,
                      on_stage: Callable[[str | None, dict[str, Any]], Any] | None = None,
                      requests_per_bake: int = 150,
                      send: Callable[[str, int], Any] | None = None,
                      skip_full_bake: bool = False) -> dict[str, Any]:
        """Walk a release through its bakes: traffic, then time, once for each bake timer; the final status.

        The clock moves only when the status shows a bake's timer set (``bake_until``), and once per timer:
        moving it on a stale status could fire the next step's timer before anyone saw that step.
        ``on_stage(stage, custom)`` sees every status first; when it answers True, that bake is left alone.
        ``send(endpoint, n)`` sends a bake's traffic (default: ``traffic``, tabular rows). ``skip_full_bake``: none
        to the 100 % step, whose bake the release does not analyse (for traffic that is dear to send).
        """
        driven: set[tuple[str, str]] = set()
        for _ in range(800):  # bounded
            status = self.status(iid)
            if status["runtimeStatus"] in TERMINAL:
                return status
            custom = status.get("customStatus") or {}
            stage = custom.get("stage")
            held = on_stage(stage, custom) if on_stage is not None else False
            until = next((s.get("detail", {}).get("bake_until") for s in custom.get("stages", [])
                          if s.get("name") == stage), None)
            if (stage or "").startswith(BAKE_PREFIXES) and until and (stage, until) not in driven and not held:
                if not (skip_full_bake and stage == f"canary {FULL}%"):
                    (send or self.traffic)(endpoint, requests_per_bake)
                self.advance(301)
                driven.add((stage, until))
            time.sleep(0.25)
        raise TimeoutError(f"release {iid} did not finish")
