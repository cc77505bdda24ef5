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
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parents[1]

# Azurite's well-known development account (public, documented; not a secret):
# https://learn.microsoft.com/azure/storage/common/storage-use-azurite#http-connection-strings
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
TOPIC = "mlops"

LANDING_CONTAINER = "landing"  # where the local stack's app watches for data (MLOPS_LANDING_CONTAINER)


def free_port() -> int:
    """A TCP port that was free a moment ago on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def azurite_connection_string(port: int) -> str:
    """Connection string of a local Azurite blob service."""
    return (f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
            f"BlobEndpoint=http://127.0.0.1:{port}/{AZURITE_ACCOUNT};")


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

    def _spawn(self, name: str, cmd: list[str], env: dict[str, str]) -> int:
        log = (self.state_dir / f"{name}.log").open("ab")
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=self.app_dir,
                                start_new_session=True)
        log.close()
        return proc.pid

    def _wait(self, name: str, url: str, pid: int, timeout: float, headers: dict[str, str] | None = None) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                requests.get(url, timeout=2, headers=headers or {})
                return
            except requests.RequestException:
                pass
            if not _alive(pid):
                break
            time.sleep(0.1)
        log = (self.state_dir / f"{name}.log").read_text(errors="replace")[-3000:]
        self.down()
        raise StackError(f"{name} did not start (log {self.state_dir / f'{name}.log'}):\n{log}")

    def up(self, devhost_port: int | None = None, gateway_port: int | None = None,
           azurite_port: int | None = None) -> StackInfo:
        """Start Azurite, the gateway and devhost; wait for each; record them."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        azurite = ROOT / "node_modules" / ".bin" / "azurite-blob"
        if not azurite.exists():
            raise StackError(f"{azurite} is missing: run ./dev setup (npm install) first")
        info = StackInfo(state_dir=str(self.state_dir), devhost_port=devhost_port or free_port(),
                         gateway_port=gateway_port or free_port(), azurite_port=azurite_port or free_port(),
                         gateway_key=secrets.token_urlsafe(18), topic_key=secrets.token_urlsafe(18),
                         virtual_clock=self.virtual_clock)
        pythonpath = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
        base_env = {**os.environ, "PYTHONPATH": pythonpath}
        (self.state_dir / "azurite").mkdir(exist_ok=True)
        info.pids["azurite"] = self._spawn("azurite", [str(azurite), "--blobHost", "127.0.0.1", "--blobPort",
                                                       str(info.azurite_port), "--location",
                                                       str(self.state_dir / "azurite"), "--skipApiVersionCheck",
                                                       "--loose", "--silent"], base_env)
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
        runtime_file = self.state_dir / "devhost" / "runtime.json"
        runtime_file.unlink(missing_ok=True)
        info.pids["devhost"] = self._spawn("devhost", cmd, env)
        self._save()
        self._wait("devhost", f"{info.devhost_url}/", info.pids["devhost"], 90)
        # devhost writes runtime.json once Event Grid, the blob watcher and timers have started
        for _ in range(600):  # bounded: 60 s
            if runtime_file.exists() or not _alive(info.pids["devhost"]):
                break
            time.sleep(0.1)
        keys = json.loads((self.state_dir / "devhost" / "keys.json").read_text())
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
        stopped = []
        for name in ("devhost", "gateway", "azurite"):
            pid = info.pids.get(name)
            if pid and _alive(pid):
                _signal_group(pid, signal.SIGTERM)
                stopped.append(name)
        deadline = time.monotonic() + 10
        for name in ("devhost", "gateway", "azurite"):
            pid = info.pids.get(name)
            while pid and _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if pid and _alive(pid):
                _signal_group(pid, signal.SIGKILL)
        self.info_path.unlink(missing_ok=True)
        self.info = None
        return stopped


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass


def _alive(pid: int) -> bool:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


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
