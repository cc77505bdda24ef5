"""The Event Grid webhook of a Functions app, and the invocation of eventGridTrigger functions.

``POST /runtime/webhooks/eventgrid?functionName=NAME`` is what Event Grid calls
(https://learn.microsoft.com/azure/azure-functions/functions-bindings-event-grid-trigger#local-testing-with-viewer-web-app
and https://learn.microsoft.com/azure/event-grid/receive-events). As the Functions host's
Event Grid extension does:

- with ``--enable-auth``, the extension's system key (or the master key) is required (query ``code`` or
  header ``x-functions-key``), else 401; by default no key is needed, as with Core Tools, whose local
  URL ``http://localhost:7071/runtime/webhooks/eventgrid?functionName=NAME`` carries none
  (https://learn.microsoft.com/azure/azure-functions/functions-run-local#considerations-when-running-locally);
- an unknown ``functionName`` is 404;
- the ``aeg-event-type`` header decides: ``SubscriptionValidation`` answers
  ``{"validationResponse": <data.validationCode>}``, ``Notification`` runs the function once per
  event (in parallel), ``Unsubscribe`` is 202, anything else (or no header) is 400;
- success is 202; if any invocation fails the answer is 500 with its message (Event Grid
  then retries the whole batch).

devhost also validates the events (400 with the reason, nothing invoked), and answers the
CloudEvents abuse-protection handshake, ``OPTIONS`` with ``WebHook-Request-Origin``
(https://learn.microsoft.com/azure/event-grid/end-point-validation-cloud-events-schema).
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from collections.abc import Callable
from typing import Any

from aiohttp import web

from .app_loader import DURABLE_CLIENT, EVENT_GRID_TRIGGER, FunctionContext, FunctionIndex, FunctionInfo
from .eventgrid import VALIDATION_EVENT, Batch, EventError, load_json, parse_body, trigger_value

log = logging.getLogger("devhost.eventgrid")

WEBHOOK_PATH = "/runtime/webhooks/eventgrid"




class EventGridTrigger:
    """Runs eventGridTrigger functions; the webhook and the delivery queue both come through here."""

    def __init__(self, index: FunctionIndex, client_binding: Callable[[], str]) -> None:
        self.index = index
        self.client_binding = client_binding
        self.invocations = 0

    def function(self, name: str | None) -> FunctionInfo:
        """The eventGridTrigger function called ``name``; LookupError with the reason otherwise."""
        fn = self.index.get(name) if name else None
        if fn is None:
            raise LookupError(f"cannot find function: '{name or ''}' (query parameter functionName)")
        if fn.trigger_type != EVENT_GRID_TRIGGER:
            raise LookupError(f"function '{name}' is a {fn.trigger_type} function, not an eventGridTrigger")
        return fn

    async def _invoke_one(self, fn: FunctionInfo, value: Any) -> None:
        kwargs: dict[str, Any] = {fn.trigger_param: value}
        for binding in fn.input_bindings(DURABLE_CLIENT):
            kwargs[binding["name"]] = self.client_binding()
        if "context" in fn.params and "context" not in kwargs:
            kwargs["context"] = FunctionContext(fn.name)
        self.invocations += 1
        if fn.is_async:
            await fn.func(**kwargs)
        else:
            await asyncio.get_running_loop().run_in_executor(None, functools.partial(fn.func, **kwargs))

    async def invoke(self, fn: FunctionInfo, batch: Batch) -> str | None:
        """Run the function once per event, all at once; None if every run succeeded, else the first error."""
        values = [trigger_value(event, batch.schema) for event in batch.events]
        results = await asyncio.gather(*(self._invoke_one(fn, v) for v in values), return_exceptions=True)
        for event, result in zip(batch.events, results, strict=True):
            if isinstance(result, BaseException):
                if not isinstance(result, Exception):
                    raise result  # cancellation and the like are not the function's failure
                log.error("function %s failed on event %s: %s: %s", fn.name, event.get("id"),
                          type(result).__name__, result, exc_info=result)
                return f"Exception while executing function: Functions.{fn.name}: {type(result).__name__}: {result}"
        return None


def _validation_code(raw: bytes) -> str:
    """data.validationCode of a SubscriptionValidationEvent (Event Grid array or CloudEvent object)."""
    body = load_json(raw, "the validation body")
    event = body[0] if isinstance(body, list) and body else body
    if not isinstance(event, dict):
        raise EventError("the validation body must be an array holding the validation event, or one CloudEvent")
    etype = event.get("eventType", event.get("type"))
    if etype != VALIDATION_EVENT:
        raise EventError(f"aeg-event-type is SubscriptionValidation but the event type is {etype!r}, "
                         f"not {VALIDATION_EVENT}")
    data = event.get("data")
    if isinstance(data, str):  # a CloudEvent's data may arrive JSON-encoded once more
        try:
            data = json.loads(data)
        except json.JSONDecodeError:
            data = None
    code = data.get("validationCode") if isinstance(data, dict) else None
    if not isinstance(code, str) or not code:
        raise EventError("the validation event has no data.validationCode")
    return code


class EventGridWebhook:
    """``/runtime/webhooks/eventgrid``: what Event Grid posts to."""

    def __init__(self, trigger: EventGridTrigger, keys: set[str], enforce: bool = True) -> None:
        self.trigger = trigger
        self.keys = {k for k in keys if k}
        self.enforce = enforce  # False: any request passes (devhost's default, as Core Tools without --enableAuth)

    def add_routes(self, app: web.Application) -> None:
        """Mount the webhook."""
        app.router.add_post(WEBHOOK_PATH, self.handle)
        app.router.add_route("OPTIONS", WEBHOOK_PATH, self.options)

    def _authorized(self, request: web.Request) -> bool:
        if not self.enforce:
            return True
        key = request.query.get("code") or request.headers.get("x-functions-key")
        return bool(key) and key in self.keys

    @staticmethod
    def _error(status: int, message: str) -> web.Response:
        return web.json_response({"error": message}, status=status)

    async def options(self, request: web.Request) -> web.Response:
        """CloudEvents abuse protection: allow the origin that asks."""
        if not self._authorized(request):
            return self._error(401, "a valid system key is required (query 'code' or header 'x-functions-key')")
        origin = request.headers.get("WebHook-Request-Origin")
        if not origin:
            return self._error(400, "the abuse-protection handshake needs a WebHook-Request-Origin header")
        return web.Response(status=200, headers={"WebHook-Allowed-Origin": origin, "WebHook-Allowed-Rate": "*",
                                                 "Allow": "POST, OPTIONS"})

    async def handle(self, request: web.Request) -> web.Response:
        """Authorise, answer handshakes, validate the batch, then invoke once per event."""
        if not self._authorized(request):
            return self._error(401, "a valid system key is required (query 'code' or header 'x-functions-key')")
        try:
            fn = self.trigger.function(request.query.get("functionName"))
        except LookupError as exc:
            return self._error(404, str(exc))
        kind = request.headers.get("aeg-event-type", "").strip().lower()
        raw = await request.read()
        try:
            if kind == "subscriptionvalidation":
                log.info("subscription validation handshake for function %s", fn.name)
                return web.json_response({"validationResponse": _validation_code(raw)})
            if kind == "unsubscribe":
                return web.Response(status=202)
            if kind != "notification":
                return self._error(400, "header aeg-event-type must be Notification, SubscriptionValidation or "
                                        f"Unsubscribe (Event Grid always sends it), got {kind or 'none'!r}")
            batch = parse_body(raw, request.headers.get("Content-Type"))
        except EventError as exc:
            return self._error(exc.status, str(exc))
        error = await self.trigger.invoke(fn, batch)
        return web.Response(status=202) if error is None else self._error(500, error)
