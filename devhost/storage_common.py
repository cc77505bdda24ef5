"""What the blob and queue triggers share: connection settings, ``%setting%`` expressions, host.json's
``extensions.queues`` options, and invoking a storage-triggered function.

Connections: the trigger's ``connection`` names an app setting holding a connection string; an empty one
means ``AzureWebJobsStorage``, and ``<NAME>`` is also looked up as ``AzureWebJobs<NAME>``, as the host does
(https://learn.microsoft.com/azure/azure-functions/functions-bindings-storage-queue-trigger#connections).
"""

from __future__ import annotations

import asyncio
import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .app_loader import DURABLE_CLIENT, FunctionContext, FunctionInfo
from .config import ConfigError

DEFAULT_CONNECTION = "AzureWebJobsStorage"
_SETTING_EXPR = re.compile(r"%([^%]+)%")
_TIMESPAN = re.compile(r"^(?:(\d+)\.)?(\d{1,2}):(\d{1,2}):(\d{1,2}(?:\.\d+)?)$")


def connection_string(fn: FunctionInfo, settings: dict[str, str]) -> tuple[str, str]:
    """(setting name, connection string) of a storage trigger; ConfigError naming the function if unset."""
    name = str(fn.trigger.get("connection") or DEFAULT_CONNECTION)
    for candidate in (name, f"AzureWebJobs{name}"):
        if settings.get(candidate):
            return candidate, settings[candidate]
    raise ConfigError(f"function {fn.name!r}: app setting {name!r} (the storage connection string of its "
                      f"{fn.trigger_type}) is not set")


def resolve(value: str, settings: dict[str, str], where: str) -> str:
    """Replace ``%Setting%`` with the app setting's value, as binding expressions do; ConfigError if unset."""
    def one(m: re.Match[str]) -> str:
        if m.group(1) not in settings:
            raise ConfigError(f"{where}: app setting {m.group(1)!r} (in %{m.group(1)}%) is not set")
        return settings[m.group(1)]
    return _SETTING_EXPR.sub(one, value)


def timespan_seconds(value: Any, where: str) -> float:
    """A host.json TimeSpan (``hh:mm:ss[.fff]`` or ``d.hh:mm:ss``) in seconds; ConfigError otherwise."""
    m = _TIMESPAN.match(value) if isinstance(value, str) else None
    if m is None:
        raise ConfigError(f"host.json {where} must be a TimeSpan such as \"00:00:30\", got {value!r}")
    days, hours, minutes, seconds = m.groups()
    return int(days or 0) * 86400 + int(hours) * 3600 + int(minutes) * 60 + float(seconds)


@dataclass
class QueueOptions:
    """host.json ``extensions.queues``, with the extension's defaults
    (https://learn.microsoft.com/azure/azure-functions/functions-bindings-storage-queue#hostjson-settings)."""

    batch_size: int = 16
    new_batch_threshold: int = 8
    max_dequeue_count: int = 5
    visibility_timeout: float = 0.0
    max_polling_interval: float = 60.0
    message_encoding: str = "base64"

    @classmethod
    def from_host_json(cls, host_json: dict[str, Any]) -> QueueOptions:
        """Read and check ``extensions.queues``; a bad value is a ConfigError naming it."""
        raw = (host_json.get("extensions", {}) or {}).get("queues", {}) or {}
        if not isinstance(raw, dict):
            raise ConfigError("host.json extensions.queues must be an object")
        known = {"batchSize", "newBatchThreshold", "maxDequeueCount", "visibilityTimeout", "maxPollingInterval",
                 "messageEncoding"}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ConfigError(f"host.json extensions.queues: unknown setting(s) {', '.join(unknown)} "
                              f"(known: {', '.join(sorted(known))})")
        opts = cls()

        def integer(key: str, low: int, high: int, default: int) -> int:
            value = raw.get(key, default)
            if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
                raise ConfigError(f"host.json extensions.queues.{key} must be an integer from {low} to {high}, "
                                  f"got {value!r}")
            return value

        opts.batch_size = integer("batchSize", 1, 32, 16)
        opts.new_batch_threshold = integer("newBatchThreshold", 0, 10_000, opts.batch_size // 2)
        opts.max_dequeue_count = integer("maxDequeueCount", 1, 10_000, 5)
        if "visibilityTimeout" in raw:
            opts.visibility_timeout = timespan_seconds(raw["visibilityTimeout"], "extensions.queues.visibilityTimeout")
            if opts.visibility_timeout > 7 * 86400:
                raise ConfigError("host.json extensions.queues.visibilityTimeout must be at most 7 days")
        if "maxPollingInterval" in raw:
            poll = raw["maxPollingInterval"]
            # A number is milliseconds (the 1.x form the host still reads); a string is a TimeSpan.
            opts.max_polling_interval = (poll / 1000 if isinstance(poll, int | float) and not isinstance(poll, bool)
                                         else timespan_seconds(poll, "extensions.queues.maxPollingInterval"))
            if opts.max_polling_interval < 0.1:
                raise ConfigError("host.json extensions.queues.maxPollingInterval must be at least 100 ms")
        encoding = raw.get("messageEncoding", "base64")
        if not isinstance(encoding, str) or encoding.lower() not in ("base64", "none"):
            raise ConfigError(f"host.json extensions.queues.messageEncoding must be base64 or none, got {encoding!r}")
        opts.message_encoding = encoding.lower()
        return opts




async def invoke(fn: FunctionInfo, value: Any, client_binding: Callable[[], str]) -> None:
    """Run a storage-triggered function once with its trigger value (sync ones in the thread pool); the
    function's exception propagates."""
    kwargs: dict[str, Any] = {fn.trigger_param: value}
    for binding in fn.input_bindings(DURABLE_CLIENT):
        kwargs[binding["name"]] = client_binding()
    if "context" in fn.params and "context" not in kwargs:
        kwargs["context"] = FunctionContext(fn.name)
    if fn.is_async:
        await fn.func(**kwargs)
    else:
        await asyncio.get_running_loop().run_in_executor(None, functools.partial(fn.func, **kwargs))
