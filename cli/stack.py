"""The local stack: Azurite, the scoring gateway and devhost serving function_app.py.

``Stack.up`` starts the three processes (each in its own process group, so stopping them
never leaves orphans), waits until each answers, and records them in
``<state>/stack.json``; ``Stack.restart`` starts again, on the recorded ports and keys,
whichever of them is no longer running; ``Stack.down`` stops them and the training jobs the
app started. Used by ``mlops up``/``down``, the demo and the end-to-end tests.

Everything under the state directory is private to its owner: the directories the stack
creates are 0700 and its logs 0600 (they hold what the app and the gateway saw).
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

from adapters.local import running_jobs
from devhost import azurite
from devhost.config import RUNTIME_FILE, stored_keys
from devhost.process import ProcessError, alive, free_port, spawn, stop_groups, wait_ready

ROOT = Path(__file__).resolve().parents[1]

TOPIC = "mlops"

LANDING_CONTAINER = "landing"  # where the local stack's app watches for data (MLOPS_LANDING_CONTAINER)

COMPONENTS = ("azurite", "gateway", "devhost")  # in start order: devhost's app needs the other two


PORT_FIELDS = {"azurite": "azurite_port", "gateway": "gateway_port", "devhost": "devhost_port"}
PORT_ATTEMPTS = 3


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
    policy_dir: str = ""  # what devhost's app was started with, so a restart gives it the same
    extra_env: dict[str, str] = field(default_factory=dict)

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
                 policy_dir: Path | None = None, extra_env: dict[str, str] | None = None,
                 die_with_parent: bool = False) -> None:
        """``die_with_parent`` ties the processes to this one (test fixtures); ``mlops up`` leaves it off."""
        self.state_dir = Path(state_dir).resolve()
        self.die_with_parent = die_with_parent
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
            "MLOPS_STATE_DIR": str(self.platform_dir),
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

    @property
    def platform_dir(self) -> Path:
        """The local platform's state (MLflow, training jobs) under the stack's."""
        return self.state_dir / "mlops"

    def _log(self, name: str) -> Path:
        return self.state_dir / f"{name}.log"

    def _wait(self, name: str, url: str, pid: int, timeout: float) -> None:
        def ready() -> bool:
            requests.get(url, timeout=2)  # any answer will do: it serves
            return True

        self._wait_until(name, ready, pid, timeout)

    def _wait_until(self, name: str, ready: Callable[[], bool], pid: int, timeout: float) -> None:
        try:
            wait_ready(name, lambda: None if alive(pid) else "unknown", ready, timeout, self._log(name))
        except ProcessError as exc:
            stop_groups([pid])
            raise StackError(f"{exc}\n(log {self._log(name)})") from exc

    def _base_env(self) -> dict[str, str]:
        pythonpath = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
        return {**os.environ, "PYTHONPATH": pythonpath}

    def _launch(self, name: str) -> None:
        """Start one component on the recorded ports and keys, and record its pid."""
        info = self.info
        assert info is not None
        env = self._base_env()
        if name == "azurite":
            cmd = azurite.blob_command(info.azurite_port, _private_dir(self.state_dir / "azurite"))
        elif name == "gateway":
            # the key goes by environment: on a command line any local user could read it (ps), and a key
            # starting with "-" would be taken for an option
            cmd = [sys.executable, "-m", "gateway", "--port", str(info.gateway_port), "--state-dir",
                   str(self.state_dir / "gateway")]
            env["MLOPS_GATEWAY_KEY"] = info.gateway_key
        else:
            cmd = [sys.executable, "-m", "devhost", "--app", str(self.app_dir / "function_app.py"), "--port",
                   str(info.devhost_port), "--state-dir", str(self.state_dir / "devhost"), "--clock",
                   "virtual" if info.virtual_clock else "real",
                   # Keys enforced, as Azure enforces them: the stack tests the app's auth (401s), so it does
                   # not take Core Tools' local default of no keys (docs/devhost.md, "Settings and keys").
                   "--enable-auth"]
            env.update(self.app_settings(info))
            (self.state_dir / "devhost" / RUNTIME_FILE).unlink(missing_ok=True)
        info.pids[name] = spawn(cmd, self._log(name), env, self.app_dir, die_with_parent=self.die_with_parent).pid
        self._save()

    def _await(self, name: str) -> None:
        """Wait until a launched component answers (devhost: and has read its keys)."""
        info = self.info
        assert info is not None
        pid = info.pids[name]
        if name == "azurite":
            self._wait(name, f"http://127.0.0.1:{info.azurite_port}/", pid, 60)
        elif name == "gateway":
            self._wait(name, f"{info.gateway_url}/health", pid, 60)
        else:
            self._wait(name, f"{info.devhost_url}/", pid, 90)
            # devhost writes runtime.json once Event Grid, the blob watcher and timers have started
            self._wait_until(name, (self.state_dir / "devhost" / RUNTIME_FILE).exists, pid, 60)
            keys = stored_keys(self.state_dir / "devhost")
            info.function_key = keys["DEVHOST_FUNCTION_KEY"]
            info.master_key = keys["DEVHOST_MASTER_KEY"]
            info.system_key = keys["DEVHOST_SYSTEM_KEY"]
            self._save()

    def _start(self, names: list[str], movable: frozenset[str] = frozenset()) -> None:
        """Launch ``names`` in order; Azurite and the gateway start side by side, devhost once they answer.
        A component in ``movable`` (its port was picked free, not asked for) whose port was taken meanwhile
        moves to another free one."""
        first = [n for n in names if n != "devhost"]
        for name in first:
            self._launch(name)
        for name in first:
            self._await_or_move(name, name in movable)
        if "devhost" in names:
            self._launch("devhost")
            self._await_or_move("devhost", "devhost" in movable)

    def _await_or_move(self, name: str, movable: bool) -> None:
        """``_await``; if the port was free when picked but someone else bound it before the component did (any
        process's outgoing connection can take a port of the ephemeral range), start it on a new free port."""
        for attempt in range(PORT_ATTEMPTS):
            try:
                self._await(name)
                return
            except StackError as exc:
                text = str(exc).lower()
                if not movable or attempt == PORT_ATTEMPTS - 1 or \
                        not ("address already in use" in text or "eaddrinuse" in text):
                    raise
                assert self.info is not None
                setattr(self.info, PORT_FIELDS[name], free_port())
                self._launch(name)

    def up(self, devhost_port: int | None = None, gateway_port: int | None = None,
           azurite_port: int | None = None) -> StackInfo:
        """Start Azurite, the gateway and devhost; wait for each; record them."""
        _private_dir(self.state_dir)
        try:
            azurite.find_executable()
        except azurite.AzuriteError as exc:
            raise StackError(f"{exc} (./dev setup installs it)") from exc
        self.info = StackInfo(state_dir=str(self.state_dir), devhost_port=devhost_port or free_port(),
                              gateway_port=gateway_port or free_port(), azurite_port=azurite_port or free_port(),
                              gateway_key=secrets.token_urlsafe(18), topic_key=secrets.token_urlsafe(18),
                              virtual_clock=self.virtual_clock, policy_dir=str(self.policy_dir),
                              extra_env=self.extra_env)
        movable = frozenset(name for name, asked in (("devhost", devhost_port), ("gateway", gateway_port),
                                                       ("azurite", azurite_port)) if asked is None)
        try:
            self._start(list(COMPONENTS), movable)
        except StackError:
            self.down()  # a stack half up is no stack: stop what did start
            raise
        return self.info

    def restart(self) -> tuple[StackInfo, list[str]]:
        """Start whatever of the recorded stack is not running, on its ports and keys; the rest keeps running.

        Returns the stack and the components started again (none: it was all running). State is where it was:
        Azurite's blobs, devhost's history and keys, the gateway's deployments all live in the state dir.
        """
        self.info = self.load(self.state_dir)
        _private_dir(self.state_dir)
        if self.info.policy_dir:  # the app gets what it was started with, whoever restarts it
            self.policy_dir, self.extra_env = Path(self.info.policy_dir), dict(self.info.extra_env)
        dead = [name for name in COMPONENTS if not self._running(name)]
        self._start(dead)
        return self.info, dead

    def _running(self, name: str) -> bool:
        """True while the recorded process of ``name`` runs and is still that component (pids get reused)."""
        assert self.info is not None
        pid = self.info.pids.get(name, 0)
        if not pid or not alive(pid):
            return False
        port = {"azurite": self.info.azurite_port, "gateway": self.info.gateway_port,
                "devhost": self.info.devhost_port}[name]
        try:
            args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return True  # no /proc to ask: trust the pid
        return str(port).encode() in args

    def _save(self) -> None:
        assert self.info is not None
        tmp = self.info_path.with_suffix(".tmp")  # created 0600 before the keys go in, then swapped in whole
        with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as handle:
            handle.write(json.dumps(asdict(self.info), indent=2))
        tmp.replace(self.info_path)

    @classmethod
    def load(cls, state_dir: Path) -> StackInfo:
        """The running stack recorded in ``state_dir``."""
        path = Path(state_dir) / "stack.json"
        if not path.exists():
            raise StackError(f"no stack is running from {state_dir} (start one with `mlops up`)")
        return StackInfo(**json.loads(path.read_text()))

    def down(self) -> list[str]:
        """Stop every recorded process group, then the training jobs still running: SIGTERM, SIGKILL after 10 s.

        devhost goes first, so its app starts no job while the jobs are being stopped. Returns what was running.
        """
        info = self.info
        if info is None and self.info_path.exists():
            info = StackInfo(**json.loads(self.info_path.read_text()))
        names = [n for n in ("devhost", "gateway", "azurite") if info is not None and info.pids.get(n)]
        pids = {n: info.pids[n] for n in names} if info is not None else {}
        running = set(stop_groups([pids["devhost"]] if "devhost" in pids else []))
        jobs = {f"training job {job}": pid for job, pid in running_jobs(self.platform_dir).items()}
        rest = {**{n: p for n, p in pids.items() if n != "devhost"}, **jobs}
        running |= set(stop_groups(list(rest.values())))
        self.info_path.unlink(missing_ok=True)
        self.info = None
        return [n for n, pid in {**pids, **jobs}.items() if pid in running]


def _private_dir(path: Path) -> Path:
    """Create ``path`` (and its parents) readable by its owner only; an existing one is made so too."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path


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
