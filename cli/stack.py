"""The local stack: Azurite, the scoring gateway and devhost serving function_app.py.

``Stack.up`` starts the three processes (each in its own process group, so stopping them
never leaves orphans), waits until each answers, and records them in
``<state>/stack.json``; ``Stack.down`` stops them. Used by ``mlops up``/``down``, the demo
and the end-to-end tests.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import requests

from devhost import azurite
from devhost.config import RUNTIME_FILE, stored_keys
from devhost.process import ProcessError, alive, free_port, spawn, stop_groups, wait_ready

ROOT = Path(__file__).resolve().parents[1]

TOPIC = "mlops"

LANDING_CONTAINER = "landing"  # where the local stack's app watches for data (MLOPS_LANDING_CONTAINER)


def azurite_connection_string(port: int) -> str:
    """Connection string of a local Azurite blob service (its documented development account)."""
    return azurite.connection_string(port)


@dataclass
class StackInfo:
    """Where the running stack is."""

    state_dir: str
    devhost_port: int
    gateway_port: int
    azurite_port: int
    gateway_key: str
    topic_key: str
    function_key: str = ""
    master_key: str = ""
    system_key: str = ""
    pids: dict[str, int] = field(default_factory=dict)
    virtual_clock: bool = False

    @property
    def devhost_url(self) -> str:
        """devhost's base URL."""
        return f"http://127.0.0.1:{self.devhost_port}"

    @property
    def gateway_url(self) -> str:
        """The scoring gateway's base URL."""
        return f"http://127.0.0.1:{self.gateway_port}"

    @property
    def storage(self) -> str:
        """Azurite's connection string."""
        return azurite_connection_string(self.azurite_port)

    @property
    def topic_endpoint(self) -> str:
        """devhost's custom topic endpoint for the app's own events."""
        return f"{self.devhost_url}/runtime/webhooks/eventgrid/topics/{TOPIC}/api/events"


class StackError(Exception):
    """A part of the stack did not start; the message says which and shows its log."""


class Stack:
    """Start and stop the local stack."""

    def __init__(self, state_dir: Path, app_dir: Path = ROOT, virtual_clock: bool = False,
                 policy_dir: Path | None = None, extra_env: dict[str, str] | None = None) -> None:
        self.state_dir = Path(state_dir).resolve()
        self.app_dir = Path(app_dir).resolve()
        self.virtual_clock = virtual_clock
        self.policy_dir = Path(policy_dir or self.app_dir / "policies").resolve()
        self.extra_env = dict(extra_env or {})
        self.info: StackInfo | None = None

    @property
    def info_path(self) -> Path:
        """Where the running stack is recorded."""
        return self.state_dir / "stack.json"

    def app_settings(self, info: StackInfo) -> dict[str, str]:
        """The app settings devhost passes to function_app.py (what local.settings.json would hold)."""
        return {
            "AzureWebJobsStorage": info.storage,
            "MLOPS_PLATFORM": "local",
            "MLOPS_STATE_DIR": str(self.state_dir / "mlops"),
            "MLOPS_POLICY_DIR": str(self.policy_dir),
            "MLOPS_LANDING_CONTAINER": LANDING_CONTAINER,
            "MLOPS_GATEWAY_URL": info.gateway_url,
            "MLOPS_GATEWAY_KEY": info.gateway_key,
            "MLOPS_EVENTGRID_TOPIC_ENDPOINT": info.topic_endpoint,
            "MLOPS_EVENTGRID_TOPIC_KEY": info.topic_key,
            f"DEVHOST_TOPIC_KEY_{TOPIC.upper()}": info.topic_key,
            "DEVHOST_BLOB_POLL_SECONDS": "0.25",
            "MLOPS_MONITOR_SCHEDULE": "*/10 * * * * *",
            **self.extra_env,
        }

    def _log(self, name: str) -> Path:
        return self.state_dir / f"{name}.log"

    def _spawn(self, name: str, cmd: list[str], env: dict[str, str]) -> int:
        return spawn(cmd, self._log(name), env, self.app_dir).pid

    def _wait(self, name: str, url: str, pid: int, timeout: float) -> None:
        def ready() -> bool:
            requests.get(url, timeout=2)  # any answer will do: it serves
            return True

        self._wait_until(name, ready, pid, timeout)

    def _wait_for_file(self, name: str, path: Path, pid: int, timeout: float) -> None:
        self._wait_until(name, path.exists, pid, timeout)

    def _wait_until(self, name: str, ready: Callable[[], bool], pid: int, timeout: float) -> None:
        try:
            wait_ready(name, lambda: None if alive(pid) else "unknown", ready, timeout, self._log(name))
        except ProcessError as exc:
            self.down()
            raise StackError(f"{exc}\n(log {self._log(name)})") from exc

    def up(self, devhost_port: int | None = None, gateway_port: int | None = None,
           azurite_port: int | None = None) -> StackInfo:
        """Start Azurite, the gateway and devhost; wait for each; record them."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        try:
            azurite.find_executable()
        except azurite.AzuriteError as exc:
            raise StackError(f"{exc} (./dev setup installs it)") from exc
        info = StackInfo(state_dir=str(self.state_dir), devhost_port=devhost_port or free_port(),
                         gateway_port=gateway_port or free_port(), azurite_port=azurite_port or free_port(),
                         gateway_key=secrets.token_urlsafe(18), topic_key=secrets.token_urlsafe(18),
                         virtual_clock=self.virtual_clock)
        pythonpath = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
        base_env = {**os.environ, "PYTHONPATH": pythonpath}
        (self.state_dir / "azurite").mkdir(exist_ok=True)
        info.pids["azurite"] = self._spawn("azurite", azurite.blob_command(info.azurite_port,
                                                                           self.state_dir / "azurite"), base_env)
        # the key goes by environment: on a command line any local user could read it (ps), and a key
        # starting with "-" would be taken for an option
        info.pids["gateway"] = self._spawn("gateway", [sys.executable, "-m", "gateway", "--port",
                                                       str(info.gateway_port), "--state-dir",
                                                       str(self.state_dir / "gateway")],
                                           {**base_env, "MLOPS_GATEWAY_KEY": info.gateway_key})
        self.info = info
        self._save()
        self._wait("azurite", f"http://127.0.0.1:{info.azurite_port}/", info.pids["azurite"], 60)
        self._wait("gateway", f"{info.gateway_url}/health", info.pids["gateway"], 60)
        env = {**base_env, **self.app_settings(info)}
        cmd = [sys.executable, "-m", "devhost", "--app", str(self.app_dir / "function_app.py"), "--port",
               str(info.devhost_port), "--state-dir", str(self.state_dir / "devhost"), "--clock",
               "virtual" if self.virtual_clock else "real"]
        runtime_file = self.state_dir / "devhost" / RUNTIME_FILE
        runtime_file.unlink(missing_ok=True)
        info.pids["devhost"] = self._spawn("devhost", cmd, env)
        self._save()
        self._wait("devhost", f"{info.devhost_url}/", info.pids["devhost"], 90)
        # devhost writes runtime.json once Event Grid, the blob watcher and timers have started
        self._wait_for_file("devhost", runtime_file, info.pids["devhost"], 60)
        keys = stored_keys(self.state_dir / "devhost")
        info.function_key = keys["DEVHOST_FUNCTION_KEY"]
        info.master_key = keys["DEVHOST_MASTER_KEY"]
        info.system_key = keys["DEVHOST_SYSTEM_KEY"]
        self._save()
        return info

    def _save(self) -> None:
        assert self.info is not None
        self.info_path.write_text(json.dumps(asdict(self.info), indent=2))
        os.chmod(self.info_path, 0o600)

    @classmethod
    def load(cls, state_dir: Path) -> StackInfo:
        """The running stack recorded in ``state_dir``."""
        path = Path(state_dir) / "stack.json"
        if not path.exists():
            raise StackError(f"no stack is running from {state_dir} (start one with `mlops up`)")
        return StackInfo(**json.loads(path.read_text()))

    def down(self) -> list[str]:
        """Stop every recorded process group: SIGTERM, then SIGKILL after 10 s."""
        info = self.info
        if info is None and self.info_path.exists():
            info = StackInfo(**json.loads(self.info_path.read_text()))
        if info is None:
            return []
        names = [n for n in ("devhost", "gateway", "azurite") if info.pids.get(n)]
        running = set(stop_groups([info.pids[n] for n in names]))
        stopped = [n for n in names if info.pids[n] in running]
        self.info_path.unlink(missing_ok=True)
        self.info = None
        return stopped


def call(info: StackInfo, method: str, path: str, **kwargs: Any) -> requests.Response:
    """Call an /api route of the running app with the function key."""
    headers = {"x-functions-key": info.function_key, **kwargs.pop("headers", {})}
    return requests.request(method, f"{info.devhost_url}/api/{path.lstrip('/')}", headers=headers,
                            timeout=kwargs.pop("timeout", 30), **kwargs)


def _principal(name: str, *roles: str) -> str:
    """An App Service authentication principal (X-MS-CLIENT-PRINCIPAL), base64 JSON with claims."""
    claims = [{"typ": "name", "val": name}] + [{"typ": "roles", "val": r} for r in roles]
    return base64.b64encode(json.dumps({"auth_typ": "local", "claims": claims, "name_typ": "name",
                                        "role_typ": "roles"}).encode()).decode()


# Locally there is no App Service authentication: devhost signs every API call in as this operator.
LOCAL_OPERATOR = {"DEVHOST_CLIENT_PRINCIPAL": _principal("local-operator", "mlops.operator")}
