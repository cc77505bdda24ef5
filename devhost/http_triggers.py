"""HTTP triggers: routes under ``/api``, function keys, and func.HttpRequest/HttpResponse conversion.

Route templates follow ASP.NET attribute routing as the Functions host does:
``{name}``, optional ``{name?}``, constraints ``{id:int}`` / ``{name:alpha}`` /
``{id:guid}``, and a catch-all ``{*rest}``. Keys follow
https://learn.microsoft.com/azure/azure-functions/function-keys-how-to : a key comes
from the ``x-functions-key`` header or the ``code`` query parameter; ``function``
level accepts a function key or the master key, ``admin`` only the master key.
Keys are checked only with ``--enable-auth``: by default every level is served as
``anonymous``, as Core Tools does without ``func start --enableAuth``
(https://learn.microsoft.com/azure/azure-functions/functions-run-local#considerations-when-running-locally).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import azure.functions as func
from aiohttp import web

from .app_loader import DURABLE_CLIENT, HTTP_TRIGGER, FunctionContext, FunctionIndex, FunctionInfo
from .config import HostConfig

log = logging.getLogger("devhost.http")

_CONSTRAINTS = {"int": r"-?\d+", "long": r"-?\d+", "alpha": r"[A-Za-z]+", "bool": r"(?i:true|false)",
                "guid": r"[0-9A-Fa-f]{8}-?[0-9A-Fa-f]{4}-?[0-9A-Fa-f]{4}-?[0-9A-Fa-f]{4}-?[0-9A-Fa-f]{12}",
                "double": r"-?\d+(?:\.\d+)?", "float": r"-?\d+(?:\.\d+)?", "decimal": r"-?\d+(?:\.\d+)?"}
_PARAM = re.compile(r"\{(\*)?([A-Za-z_][A-Za-z0-9_]*)(?::([A-Za-z]+)(?:\([^)]*\))?)?(\?)?(?:=([^}]*))?\}")


def compile_route(template: str) -> tuple[re.Pattern[str], dict[str, str]]:
    """Turn a route template into a regex over the path after the prefix, plus default values."""
    pattern = ""
    defaults: dict[str, str] = {}
    segments = [s for s in template.strip("/").split("/") if s]
    for i, segment in enumerate(segments):
        sep = "/" if i else ""
        pos = 0
        seg_re = ""
        optional_whole = False
        for m in _PARAM.finditer(segment):
            seg_re += re.escape(segment[pos:m.start()])
            catch_all, name, constraint, optional, default = m.groups()
            body = r".*" if catch_all else _CONSTRAINTS.get((constraint or "").lower(), r"[^/]+")
            seg_re += f"(?P<{name}>{body})"
            if optional or default is not None or catch_all:
                optional_whole = m.start() == 0 and m.end() == len(segment)
            if default is not None:
                defaults[name] = default
            pos = m.end()
        seg_re += re.escape(segment[pos:])
        pattern += f"(?:{sep}{seg_re})?" if optional_whole else f"{sep}{seg_re}"
    return re.compile(f"^{pattern}/?$"), defaults


@dataclass
class _Route:
    regex: re.Pattern[str]
    defaults: dict[str, str]
    methods: set[str] | None
    fn: FunctionInfo
    auth_level: str
    literal_weight: int


def _headers(request: web.Request) -> dict[str, str]:
    merged: dict[str, str] = {}
    for key in request.headers:
        merged[key.lower()] = ", ".join(request.headers.getall(key))
    return merged


def to_web_response(result: Any) -> web.Response:
    """Convert what an HTTP function returned into an aiohttp response, as the worker does."""
    if result is None:
        return web.Response(status=204)
    if isinstance(result, func.HttpResponse):
        headers = {k: v for k, v in result.headers.items() if k.lower() not in ("content-length",)}
        if "content-type" not in {k.lower() for k in headers}:
            mimetype = result.mimetype or "text/plain"
            headers["Content-Type"] = f"{mimetype}; charset={result.charset or 'utf-8'}"
        return web.Response(status=result.status_code, body=result.get_body(), headers=headers)
    if isinstance(result, (bytes, bytearray)):
        return web.Response(status=200, body=bytes(result), content_type="application/octet-stream")
    if isinstance(result, str):
        return web.Response(status=200, text=result, content_type="text/plain")
    raise TypeError(f"an HTTP function must return func.HttpResponse, str or bytes, not {type(result).__name__}")


class HttpTriggers:
    """Dispatches ``/<prefix>/...`` requests to the app's HTTP-triggered functions."""

    def __init__(self, index: FunctionIndex, config: HostConfig, client_binding: Callable[[web.Request], str],
                 principal: Callable[[web.Request], str | None] | None = None) -> None:
        self.config = config
        self.client_binding = client_binding
        self.principal = principal
        self.routes: list[_Route] = []
        for fn in index.of_type(HTTP_TRIGGER):
            template = fn.trigger.get("route") or fn.name
            regex, defaults = compile_route(template)
            methods = fn.trigger.get("methods")
            literal = sum(1 for s in template.split("/") if s and "{" not in s)
            self.routes.append(_Route(regex, defaults, {m.upper() for m in methods} if methods else None, fn,
                                      str(fn.trigger.get("authLevel") or "function").lower(), literal))
        # More literal segments first, as the host orders routes: `runs/stats` before `runs/{id}`.
        self.routes.sort(key=lambda r: -r.literal_weight)

    def _match(self, path: str, method: str) -> tuple[_Route | None, dict[str, str], bool]:
        path_matched = False
        for route in self.routes:
            m = route.regex.match(path)
            if not m:
                continue
            path_matched = True
            if route.methods is not None and method not in route.methods:
                continue
            params = {**route.defaults, **{k: v for k, v in m.groupdict().items() if v is not None}}
            return route, params, True
        return None, {}, path_matched

    def _authorized(self, route: _Route, request: web.Request) -> bool:
        if route.auth_level == "anonymous":
            return True
        key = request.headers.get("x-functions-key") or request.query.get("code")
        if route.auth_level == "admin":
            return self.config.authorized(key, {self.config.master_key})
        return self.config.authorized(key, self.config.function_keys_for(route.fn.name))

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Route, authorise, convert, invoke, convert back."""
        tail = request.match_info.get("tail", "")
        route, params, path_matched = self._match(tail, request.method)
        if route is None:
            return web.Response(status=405 if path_matched else 404)
        if not self._authorized(route, request):
            return web.Response(status=401, text="Unauthorized: a valid function key is required "
                                                 "(header x-functions-key or query parameter code)")
        body = await request.read()
        headers = _headers(request)
        if self.principal is not None and "x-ms-client-principal" not in headers:
            injected = self.principal(request)
            if injected:
                headers["x-ms-client-principal"] = injected
        req = func.HttpRequest(method=request.method, url=str(request.url), headers=headers,
                               params=dict(request.query), route_params=params, body=body)
        fn = route.fn
        kwargs: dict[str, Any] = {fn.trigger_param: req}
        for binding in fn.input_bindings(DURABLE_CLIENT):
            kwargs[binding["name"]] = self.client_binding(request)
        if "context" in fn.params and "context" not in kwargs:
            kwargs["context"] = FunctionContext(fn.name)
        try:
            if fn.is_async:
                result = await fn.func(**kwargs)
            else:
                loop = asyncio.get_running_loop()
                result = await loop.run_in_executor(None, functools.partial(fn.func, **kwargs))
            return to_web_response(result)
        except Exception:  # the user's function raised: 500, and the traceback goes to the log
            log.exception("function %s failed", fn.name)
            return web.Response(status=500, text=f"Exception while executing function: Functions.{fn.name}")


