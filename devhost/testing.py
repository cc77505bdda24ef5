"""Test support: run devhost as a real process on an app and talk to it.

Use it from pytest::

    pytest_plugins = ["devhost.testing"]

    def test_chaining(devhost_factory):
        host = devhost_factory("path/to/function_app.py", virtual_clock=True)
        iid = host.start_orchestration("chaining")
        assert host.wait_for(iid)["runtimeStatus"] == "Completed"

The process is stopped at the end of the test. ``kill()`` sends SIGKILL and
``restart()`` starts it again on the same state directory.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from .config import RUNTIME_FILE, stored_keys

# The in-process runner: orchestrations replayed in the test's own process, no devhost process needed.
from .inprocess import ActivityCall as ActivityCall
from .inprocess import ActivityNotReplacedError as ActivityNotReplacedError
from .inprocess import ExternalEvent as ExternalEvent
from .inprocess import InProcessError as InProcessError
from .inprocess import InstanceResult as InstanceResult
from .inprocess import OrchestrationRunner as OrchestrationRunner
from .inprocess import RunawayOrchestrationError as RunawayOrchestrationError
from .inprocess import RunResult as RunResult
from .inprocess import UnknownFunctionError as UnknownFunctionError
from .inprocess import load_app as load_app

# Server processes: one supervisor for devhost, the gateway and anything else a test starts.
from .process import ProcessError as ProcessError
from .process import ServerProcess as ServerProcess
from .process import free_port as free_port

TERMINAL = {"Completed", "Failed", "Terminated", "Canceled"}


class DevHostProcess(ServerProcess):
    """A devhost subprocess serving one app, with helpers for the Durable HTTP API."""

    name = "devhost"

    def __init__(self, app_path: Path, state_dir: Path, virtual_clock: bool = False,
                 env: dict[str, str] | None = None, port: int | None = None, log_path: Path | None = None,
                 enable_auth: bool = False) -> None:
        self.app_path = Path(app_path).resolve()
        self.state_dir = Path(state_dir).resolve()
        super().__init__(log_path or self.state_dir / "devhost.log")
        self.virtual_clock = virtual_clock
        self.enable_auth = enable_auth  # --enable-auth: keys enforced (default: not, as with func start)
        self.env = dict(env or {})
        self.port = port or free_port()
        self.session = requests.Session()

    # -- process ---------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        """http://127.0.0.1:<port>"""
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> DevHostProcess:
        """Start the process and wait until it answers."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "devhost", "--app", str(self.app_path), "--port", str(self.port),
               "--state-dir", str(self.state_dir), "--clock", "virtual" if self.virtual_clock else "real"]
        if self.enable_auth:
            cmd.append("--enable-auth")
        env = {**os.environ, **self.env}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(__file__).resolve().parents[1]),
                                                          env.get("PYTHONPATH")]))
        runtime = self.state_dir / RUNTIME_FILE
        runtime.unlink(missing_ok=True)

        def ready() -> bool:
            if not runtime.exists():  # written once devhost has bound its ports
                return False
            self.session.get(self.base_url + "/", timeout=2)  # any answer will do: it serves
            return True

        self.launch(cmd, env, self.app_path.parent, ready, timeout)
        return self

    def restart(self) -> DevHostProcess:
        """Start again on the same state directory and port."""
        self.stop()
        return self.start()

    # -- keys ------------------------------------------------------------------------------
    def keys(self) -> dict[str, str]:
        """Keys from the environment given to the process, else the generated keys file."""
        return {**stored_keys(self.state_dir), **{k: v for k, v in self.env.items() if k.endswith("_KEY")}}

    @property
    def master_key(self) -> str:
        """The master (admin) key."""
        return self.keys()["DEVHOST_MASTER_KEY"]

    @property
    def function_key(self) -> str:
        """The default function key."""
        return self.keys()["DEVHOST_FUNCTION_KEY"]

    @property
    def system_key(self) -> str:
        """The extensions' system key (Durable and Event Grid webhooks)."""
        return self.keys()["DEVHOST_SYSTEM_KEY"]

    # -- HTTP helpers ----------------------------------------------------------------------
    def api(self, method: str, path: str, key: str | None = "function", **kwargs: Any) -> requests.Response:
        """Call ``/api/<path>`` with the function key (or ``key=None`` for none, or an explicit key)."""
        headers = dict(kwargs.pop("headers", {}) or {})
        if key == "function":
            headers["x-functions-key"] = self.function_key
        elif key:
            headers["x-functions-key"] = key
        return self.session.request(method, f"{self.base_url}/api/{path.lstrip('/')}", headers=headers,
                                    timeout=kwargs.pop("timeout", 30), **kwargs)

    def durable(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """Call the public Durable HTTP API with the system key."""
        params = dict(kwargs.pop("params", {}) or {})
        params.setdefault("code", self.system_key)
        return self.session.request(method, f"{self.base_url}/runtime/webhooks/durabletask/{path.lstrip('/')}",
                                    params=params, timeout=kwargs.pop("timeout", 30), **kwargs)

    def start_orchestration(self, name: str, input: Any = None, instance_id: str | None = None) -> str:
        """Start through the public API, encoding the input as the SDK's client does; returns the id."""
        path = f"orchestrators/{name}" + (f"/{instance_id}" if instance_id else "")
        # DurableOrchestrationClient.start_new posts json.dumps(input) as a JSON string value.
        resp = self.durable("POST", path, data=None if input is None else json.dumps(json.dumps(input)),
                            headers={"Content-Type": "application/json"})
        resp.raise_for_status()
        return str(resp.json()["id"])

    def status(self, instance_id: str, **params: Any) -> dict[str, Any] | None:
        """The status document, or None if the instance is unknown."""
        resp = self.durable("GET", f"instances/{instance_id}", params=params)
        if resp.status_code == 404:
            return None
        resp.raise_for_status()
        return dict(resp.json())

    def wait_for(self, instance_id: str, timeout: float = 60,
                 until: Callable[[dict[str, Any]], bool] | None = None) -> dict[str, Any]:
        """Poll until the instance is finished (or ``until`` says so); the last status."""
        deadline = time.monotonic() + timeout
        last: dict[str, Any] | None = None
        while time.monotonic() < deadline:
            last = self.status(instance_id)
            if last is not None and (until(last) if until else last["runtimeStatus"] in TERMINAL):
                return last
            time.sleep(0.05)
        raise TimeoutError(f"instance {instance_id} did not get there within {timeout}s; last status: {last}\n"
                           f"{self.log_tail()}")

    def raise_event(self, instance_id: str, name: str, data: Any = None) -> requests.Response:
        """POST raiseEvent."""
        return self.durable("POST", f"instances/{instance_id}/raiseEvent/{name}", data=json.dumps(data),
                            headers={"Content-Type": "application/json"})

    def advance_clock(self, seconds: float) -> dict[str, Any]:
        """Move the virtual clock forward (the host must run with the virtual clock)."""
        resp = self.session.post(f"{self.base_url}/admin/devhost/clock", json={"seconds": seconds},
                                 headers={"x-functions-key": self.master_key}, timeout=30)
        resp.raise_for_status()
        return dict(resp.json())


@pytest.fixture
def devhost_factory(tmp_path: Path) -> Iterator[Callable[..., DevHostProcess]]:
    """Start devhost processes on apps; all are stopped when the test ends."""
    started: list[DevHostProcess] = []

    def make(app_path: str | Path, virtual_clock: bool = False, env: dict[str, str] | None = None,
             state_dir: Path | None = None, enable_auth: bool = False) -> DevHostProcess:
        host = DevHostProcess(Path(app_path), state_dir or tmp_path / f"devhost-{len(started)}",
                              virtual_clock=virtual_clock, env=env, enable_auth=enable_auth)
        started.append(host)
        return host.start()

    yield make
    for host in started:
        host.stop()
