"""devhost configuration: command-line options, host.json and local.settings.json.

This module and ``__main__`` are the only places devhost reads the environment.
"""

from __future__ import annotations

import hmac
import json
import os
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_HUB = "TestHubName"
ENABLE_AUTH_SETTING = "DEVHOST_ENABLE_AUTH"  # the setting equivalent of ``--enable-auth``
_TRUE, _FALSE = {"true", "1", "yes"}, {"false", "0", "no", ""}


class ConfigError(Exception):
    """A configuration file or option is invalid; the message names it."""


@dataclass
class HostConfig:
    """Everything devhost needs to serve one app."""

    app_path: Path
    port: int = 7071
    host: str = "127.0.0.1"
    state_dir: Path = Path(".devhost")
    virtual_clock: bool = False
    settings: dict[str, str] = field(default_factory=dict)
    host_json: dict[str, Any] = field(default_factory=dict)
    master_key: str = ""
    function_key: str = ""
    system_key: str = ""
    subscriptions_path: Path | None = None
    # Keys are checked only when asked, as Core Tools checks them only under ``func start --enableAuth``:
    # "By default, authorization isn't enforced locally for HTTP endpoints ... all local HTTP requests are
    # handled as authLevel = "anonymous"" and, for the admin endpoints, "authentication and authorization is
    # bypassed" (https://learn.microsoft.com/azure/azure-functions/functions-run-local#considerations-when-running-locally,
    # https://learn.microsoft.com/azure/azure-functions/functions-core-tools-reference#func-start).
    enable_auth: bool = False

    @property
    def app_dir(self) -> Path:
        """The folder of the app (where host.json and local.settings.json live)."""
        return self.app_path.parent

    @property
    def durable(self) -> dict[str, Any]:
        """``extensions.durableTask`` of host.json."""
        ext = self.host_json.get("extensions", {}) or {}
        return dict(ext.get("durableTask", {}) or {})

    @property
    def hub_name(self) -> str:
        """The task hub name (host.json ``extensions.durableTask.hubName``)."""
        return str(self.durable.get("hubName") or DEFAULT_HUB)

    @property
    def route_prefix(self) -> str:
        """HTTP route prefix (host.json ``extensions.http.routePrefix``, default ``api``)."""
        ext = self.host_json.get("extensions", {}) or {}
        prefix = (ext.get("http", {}) or {}).get("routePrefix", "api")
        return str(prefix).strip("/")

    def concurrency(self, key: str, default: int) -> int:
        """A durableTask concurrency limit from host.json, validated."""
        value = self.durable.get(key, default)
        if not isinstance(value, int) or value < 1:
            raise ConfigError(f"host.json extensions.durableTask.{key} must be a positive integer, got {value!r}")
        return value

    def function_keys_for(self, function_name: str) -> set[str]:
        """Keys accepted at ``function`` level: the default key, a function-specific key, the master key."""
        keys = {self.function_key, self.master_key}
        specific = self.settings.get(f"DEVHOST_FUNCTION_KEY_{function_name.upper()}")
        if specific:
            keys.add(specific)
        return {k for k in keys if k}

    def authorized(self, key: str | None, accepted: Iterable[str]) -> bool:
        """Whether a request carrying ``key`` may pass a check that accepts ``accepted``.

        Without ``enable_auth`` every request passes, with or without a key, right or wrong (Core Tools
        authenticates every local request at admin level unless started with ``--enableAuth``).
        """
        if not self.enable_auth:
            return True
        if not key:
            return False
        given = key.encode("utf-8", "surrogateescape")
        return any(hmac.compare_digest(given, k.encode("utf-8", "surrogateescape")) for k in accepted if k)


def auth_setting(settings: dict[str, str]) -> bool:
    """``DEVHOST_ENABLE_AUTH`` read as a boolean (unset or empty: false); anything else is a ConfigError."""
    raw = settings.get(ENABLE_AUTH_SETTING, "").strip().lower()
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise ConfigError(f"{ENABLE_AUTH_SETTING} must be true or false, got {settings[ENABLE_AUTH_SETTING]!r}")


def _read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{what} ({path}) is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{what} ({path}) must hold a JSON object")
    return data


def load_settings(app_dir: Path, environ: dict[str, str] | None = None) -> dict[str, str]:
    """App settings as Core Tools builds them: ``local.settings.json`` ``Values``, then the environment.

    Values from the process environment win (as environment variables do for the worker), so a
    test or a shell can override a setting.
    """
    env = dict(os.environ if environ is None else environ)
    values: dict[str, str] = {}
    path = app_dir / "local.settings.json"
    if path.is_file():
        data = _read_json(path, "local.settings.json")
        raw = data.get("Values", {}) or {}
        if not isinstance(raw, dict):
            raise ConfigError("local.settings.json Values must be an object")
        for key, value in raw.items():
            values[str(key)] = "" if value is None else str(value)
    values.update(env)
    return values


KEYS_FILE = "keys.json"  # the keys devhost generated, in its state dir (0600)
RUNTIME_FILE = "runtime.json"  # written once devhost serves: pid, ports, clock


def private_dir(path: Path) -> Path:
    """Create ``path`` (and its parents) readable by its owner only; an existing one is made so too.

    devhost's state holds every orchestration's inputs and outputs and the keys: no other local user reads it.
    """
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path


def private_file(path: Path) -> Path:
    """Create ``path`` empty and 0600 if missing, else make it 0600 (SQLite gives its -wal/-shm files the same)."""
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    os.chmod(path, 0o600)
    return path


def stored_keys(state_dir: Path) -> dict[str, str]:
    """The keys devhost generated and kept in ``state_dir`` (empty before its first start)."""
    path = Path(state_dir) / KEYS_FILE
    return dict(_read_json(path, KEYS_FILE)) if path.is_file() else {}


def _key(settings: dict[str, str], state_dir: Path, name: str) -> str:
    """A key from settings, else one generated once and kept in the state dir."""
    if settings.get(name):
        return settings[name]
    path = state_dir / KEYS_FILE
    keys = stored_keys(state_dir)
    if name not in keys:
        keys[name] = secrets.token_urlsafe(24)
        state_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(keys, indent=2), encoding="utf-8")
        os.chmod(tmp, 0o600)
        tmp.replace(path)
    return keys[name]


def build_config(
    app_path: Path,
    port: int = 7071,
    state_dir: Path | None = None,
    virtual_clock: bool = False,
    environ: dict[str, str] | None = None,
    enable_auth: bool = False,
) -> HostConfig:
    """Read host.json and local.settings.json next to the app and settle the keys.

    Keys are enforced when ``enable_auth`` (the ``--enable-auth`` flag) is true or the
    ``DEVHOST_ENABLE_AUTH`` setting says ``true``; they are generated and kept either way.
    """
    app_path = app_path.resolve()
    app_dir = app_path.parent
    host_json_path = app_dir / "host.json"
    host_json = _read_json(host_json_path, "host.json") if host_json_path.is_file() else {"version": "2.0"}
    settings = load_settings(app_dir, environ)
    enforce = auth_setting(settings) or enable_auth
    state = private_dir((state_dir or app_dir / ".devhost").resolve())
    subs = settings.get("DEVHOST_SUBSCRIPTIONS")
    subs_path = Path(subs) if subs else app_dir / "eventgrid.subscriptions.json"
    if not subs_path.is_absolute():
        subs_path = app_dir / subs_path
    cfg = HostConfig(
        app_path=app_path,
        port=port,
        state_dir=state,
        virtual_clock=virtual_clock,
        settings=settings,
        host_json=host_json,
        master_key=_key(settings, state, "DEVHOST_MASTER_KEY"),
        function_key=_key(settings, state, "DEVHOST_FUNCTION_KEY"),
        system_key=_key(settings, state, "DEVHOST_SYSTEM_KEY"),
        subscriptions_path=subs_path if subs_path.is_file() else None,
        enable_auth=enforce,
    )
    cfg.concurrency("maxConcurrentActivityFunctions", 10)
    cfg.concurrency("maxConcurrentOrchestratorFunctions", 10)
    return cfg
