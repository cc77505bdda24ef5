"""Durable HTTP: ``context.call_http`` performed as the extension performs it, as a built-in activity.

The Durable extension runs ``call_http`` as the well-known activity ``BuiltIn::HttpActivity``: the
orchestrator's ``TaskScheduled`` carries the request as its input (a JSON array holding the
``DurableHttpRequest``: ``method``, ``uri``, ``content``, ``headers``, ``tokenSource``) and the
``TaskCompleted`` result is the ``DurableHttpResponse`` JSON ``{"statusCode": 200, "headers": {...},
"content": "..."}`` that the SDK decodes and hands to the orchestrator as a dict
(azure-functions-durable-extension ``TaskHttpActivityShim``, ``DurableHttpResponse``,
``HttpHeadersConverter``; https://learn.microsoft.com/azure/azure-functions/durable/durable-functions-http-features#consuming-http-apis).
As there:

- a request header ``Content-Type`` sets the content's type (``text/plain`` when content is given
  without one); multipart content is refused;
- any status, 4xx and 5xx included, is a completed task with that ``statusCode``; only a request
  that gets no answer (refused connection, timeout, bad URL) fails the task;
- the response's headers are those .NET puts in ``HttpResponseMessage.Headers``: content headers
  (``Content-Type``, ``Content-Length``...) are not among them; a header with one value is a string,
  with several a list;
- ``202 Accepted`` with a ``Location`` header is polled (the asynchronous pattern, on by default):
  ``GET`` the Location (relative to the request URL) with the request's headers, after ``Retry-After``
  seconds (30 s without it, the extension's default), until the answer is not such a 202.

devhost waits between polls inside the activity (plain sleeps on the wall clock, not durable timers:
the SDK numbers its own tasks, and timers it does not know of would shift them), so a restart during
polling starts the call again from the first request, and the virtual clock does not shorten the
waits. Polls are bounded (``DEVHOST_HTTP_MAX_POLLS``, 100); past the bound the task fails.

``tokenSource`` (``df.ManagedIdentityTokenSource``) asks Azure for a managed identity token; devhost
has no managed identity, so it fails the task with a message that says so, unless the setting
``DEVHOST_HTTP_TOKEN`` holds a bearer token to send instead (``Authorization: Bearer <token>``).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

import aiohttp

log = logging.getLogger("devhost.http_activity")

HTTP_ACTIVITY = "BuiltIn::HttpActivity"  # the extension's name for the activity behind call_http

# The headers System.Net.Http keeps in HttpContentHeaders rather than HttpResponseHeaders.
_CONTENT_HEADERS = {"allow", "content-disposition", "content-encoding", "content-language", "content-length",
                    "content-location", "content-md5", "content-range", "content-type", "expires", "last-modified"}
DEFAULT_POLL_SECONDS = 30.0  # the extension's HttpOptions.DefaultAsyncRequestSleepTimeMilliseconds


class HttpCallError(Exception):
    """The durable HTTP call could not be made or finished; the message says why (the task fails with it)."""


@dataclass(frozen=True)
class HttpOptions:
    """Settings of devhost's built-in HTTP activity."""

    token: str = ""  # DEVHOST_HTTP_TOKEN: sent for a tokenSource, as Bearer
    timeout_seconds: float = 100.0  # DEVHOST_HTTP_TIMEOUT_SECONDS: per request (HttpClient's default)
    max_polls: int = 100  # DEVHOST_HTTP_MAX_POLLS: Location polls before the task fails
    async_pattern: bool = True  # DEVHOST_HTTP_ASYNC_PATTERN: follow 202 + Location

    @classmethod
    def from_settings(cls, settings: dict[str, str]) -> HttpOptions:
        """Read the ``DEVHOST_HTTP_*`` settings; a bad value is a ValueError naming the setting."""
        def number(name: str, default: float, low: float) -> float:
            raw = settings.get(name, "").strip()
            try:
                value = float(raw) if raw else default
            except ValueError:
                raise ValueError(f"{name} must be a number, got {raw!r}") from None
            if value < low:
                raise ValueError(f"{name} must be at least {low:g}, got {raw!r}")
            return value

        pattern = settings.get("DEVHOST_HTTP_ASYNC_PATTERN", "true").strip().lower()
        if pattern not in ("true", "false", "1", "0", ""):
            raise ValueError(f"DEVHOST_HTTP_ASYNC_PATTERN must be true or false, got {pattern!r}")
        return cls(token=settings.get("DEVHOST_HTTP_TOKEN", ""),
                   timeout_seconds=number("DEVHOST_HTTP_TIMEOUT_SECONDS", 100.0, 0.001),
                   max_polls=int(number("DEVHOST_HTTP_MAX_POLLS", 100, 0)),
                   async_pattern=pattern in ("true", "1", ""))


def _header_items(raw: Any) -> list[tuple[str, str]]:
    if raw is None:
        return []
    if not isinstance(raw, dict):
        raise HttpCallError("the request's headers must be an object of names to values")
    items: list[tuple[str, str]] = []
    for name, value in raw.items():
        for one in value if isinstance(value, list) else [value]:
            items.append((str(name), str(one)))
    return items


def parse_request(raw_input: str | None) -> dict[str, Any]:
    """The DurableHttpRequest in a TaskScheduled input (a JSON array holding it, or the object itself)."""
    try:
        data = json.loads(raw_input or "null")
    except json.JSONDecodeError as exc:
        raise HttpCallError(f"the durable HTTP request is not JSON: {exc}") from exc
    if isinstance(data, list) and data:
        data = data[0]
    if not isinstance(data, dict) or not data.get("uri"):
        raise HttpCallError("the durable HTTP request has no uri")
    return data


def response_json(status: int, headers: list[tuple[str, str]], content: str) -> str:
    """The DurableHttpResponse JSON the extension records as the task's result."""
    grouped: dict[str, list[str]] = {}
    names: dict[str, str] = {}
    for name, value in headers:
        if name.lower() in _CONTENT_HEADERS:
            continue
        key = name.lower()
        names.setdefault(key, name)
        grouped.setdefault(key, []).append(value)
    shaped: dict[str, Any] = {names[k]: v[0] if len(v) == 1 else v for k, v in grouped.items()}
    return json.dumps({"statusCode": status, "headers": shaped, "content": content})


Sleep = Callable[[float], Awaitable[None]]


class HttpActivity:
    """Performs one durable HTTP call, polling 202 + Location when asked; returns the result JSON."""

    def __init__(self, options: HttpOptions, sleep: Sleep = asyncio.sleep) -> None:
        self.options = options
        self.sleep = sleep

    def _headers(self, request: dict[str, Any]) -> tuple[list[tuple[str, str]], str]:
        headers: list[tuple[str, str]] = []
        content_type = ""
        for name, value in _header_items(request.get("headers")):
            if name.lower() == "content-type":
                if "multipart" in value:
                    raise HttpCallError("Multipart content is not supported with CallHttpAsync.")
                content_type = value
            else:
                headers.append((name, value))
        source = request.get("tokenSource")
        if source:
            resource = source.get("resource", "") if isinstance(source, dict) else ""
            if not self.options.token:
                raise HttpCallError(
                    f"call_http with token_source (managed identity token for {resource!r}) needs Azure's managed "
                    "identity, which devhost does not have; set DEVHOST_HTTP_TOKEN to a bearer token to send "
                    "instead, or call without token_source")
            headers = [(n, v) for n, v in headers if n.lower() != "authorization"]
            headers.append(("Authorization", f"Bearer {self.options.token}"))
        return headers, content_type

    async def _send(self, session: aiohttp.ClientSession, method: str, url: str, headers: list[tuple[str, str]],
                    content: str | None, content_type: str) -> tuple[int, list[tuple[str, str]], str]:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise HttpCallError(f"the uri must be an absolute http or https URL, got {url!r}")
        sent = list(headers)
        data: bytes | None = None
        if content is not None:
            data = content.encode("utf-8")
            sent.append(("Content-Type", content_type or "text/plain"))
        try:
            async with session.request(method, url, headers=sent, data=data, allow_redirects=True) as resp:
                body = await resp.read()
                text = body.decode(resp.charset or "utf-8", errors="replace")
                return resp.status, list(resp.headers.items()), text
        except TimeoutError:
            raise HttpCallError(f"{method} {url} got no answer within {self.options.timeout_seconds:g}s") from None
        except aiohttp.ClientError as exc:
            raise HttpCallError(f"{method} {url} failed: {type(exc).__name__}: {exc}") from exc

    async def call(self, raw_input: str | None) -> str:
        """Make the call described by a TaskScheduled input; the DurableHttpResponse JSON, or HttpCallError."""
        request = parse_request(raw_input)
        method = str(request.get("method") or "GET").upper()
        url = str(request["uri"])
        headers, content_type = self._headers(request)
        content = request.get("content")
        timeout = aiohttp.ClientTimeout(total=self.options.timeout_seconds)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            status, resp_headers, text = await self._send(session, method, url, headers,
                                                          None if content is None else str(content), content_type)
            polls = 0
            while self.options.async_pattern and status == 202:
                location = next((v for n, v in resp_headers if n.lower() == "location"), None)
                if not location:
                    break
                if polls >= self.options.max_polls:
                    raise HttpCallError(f"{url} still answered 202 after {polls} polls of its Location "
                                        f"(DEVHOST_HTTP_MAX_POLLS={self.options.max_polls})")
                await self.sleep(_retry_after(resp_headers))
                url = urljoin(url, location)
                polls += 1
                log.info("durable HTTP: polling %s (%d)", url, polls)
                status, resp_headers, text = await self._send(session, "GET", url, headers, None, "")
        return response_json(status, resp_headers, text)


def _retry_after(headers: list[tuple[str, str]]) -> float:
    raw = next((v for n, v in headers if n.lower() == "retry-after"), None)
    if raw is None:
        return DEFAULT_POLL_SECONDS
    try:
        return max(0.0, float(int(raw.strip())))
    except ValueError:
        return DEFAULT_POLL_SECONDS  # an HTTP date or junk: the default interval
