"""Event Grid: the webhook Event Grid calls on a Functions app, and event validation.

``POST /runtime/webhooks/eventgrid?functionName=NAME`` accepts the Event Grid schema (a JSON
array) and CloudEvents 1.0 in structured mode (one event, or a batch), answers the
subscription validation handshake (``aeg-event-type: SubscriptionValidation``) and the
CloudEvents OPTIONS abuse-protection handshake, and hands each event to the function as
``func.EventGridEvent``. See
https://learn.microsoft.com/azure/azure-functions/functions-bindings-event-grid-trigger and
https://learn.microsoft.com/azure/event-grid/webhook-event-delivery .

A batch is validated whole before any function runs: one bad event gets the batch a 400
whose body says which event and which field.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

import azure.functions as func
from aiohttp import web

from .app_loader import EVENT_GRID_TRIGGER, FunctionIndex, FunctionInfo

log = logging.getLogger("devhost.eventgrid")

VALIDATION_EVENT = "Microsoft.EventGrid.SubscriptionValidationEvent"
CLOUDEVENTS_TYPES = ("application/cloudevents+json", "application/cloudevents-batch+json")
_EG_REQUIRED = ("id", "subject", "eventType", "eventTime", "dataVersion")
_CE_REQUIRED = ("id", "source", "type", "specversion")


class EventError(Exception):
    """An event or a body that Event Grid would not deliver; the message names the problem."""


def _time(value: Any, where: str) -> datetime:
    if not isinstance(value, str):
        raise EventError(f"{where}: must be an ISO 8601 string")
    text = value.replace("Z", "+00:00")
    if "." in text:
        head, _, tail = text.partition(".")
        digits = "".join(c for c in tail if c.isdigit())
        text = f"{head}.{digits[:6].ljust(6, '0')}{tail[len(digits):]}"
    try:
        return datetime.fromisoformat(text)
    except ValueError as exc:
        raise EventError(f"{where}: {value!r} is not an ISO 8601 time") from exc


def validate_eventgrid(event: Any, index: int) -> dict[str, Any]:
    """One Event Grid schema event; raises EventError naming the field."""
    where = f"event {index}"
    if not isinstance(event, dict):
        raise EventError(f"{where}: must be a JSON object")
    for key in _EG_REQUIRED:
        # dataVersion may be empty (Blob Storage sends ""), but must be present
        if key not in event or event[key] is None or (event[key] == "" and key != "dataVersion"):
            raise EventError(f"{where}: required field '{key}' is missing")
        if not isinstance(event[key], str):
            raise EventError(f"{where}: '{key}' must be a string")
    if "data" not in event:
        raise EventError(f"{where}: required field 'data' is missing")
    _time(event["eventTime"], f"{where}: eventTime")
    if "topic" in event and event["topic"] is not None and not isinstance(event["topic"], str):
        raise EventError(f"{where}: 'topic' must be a string")
    return event


def validate_cloudevent(event: Any, index: int) -> dict[str, Any]:
    """One CloudEvents 1.0 event; raises EventError naming the field."""
    where = f"event {index}"
    if not isinstance(event, dict):
        raise EventError(f"{where}: must be a JSON object")
    for key in _CE_REQUIRED:
        if key not in event or event[key] in (None, ""):
            raise EventError(f"{where}: required attribute '{key}' is missing")
        if not isinstance(event[key], str):
            raise EventError(f"{where}: '{key}' must be a string")
    if event["specversion"] != "1.0":
        raise EventError(f"{where}: specversion must be '1.0', got {event['specversion']!r}")
    if "time" in event:
        _time(event["time"], f"{where}: time")
    if "data" in event and "data_base64" in event:
        raise EventError(f"{where}: 'data' and 'data_base64' are mutually exclusive")
    return event


def parse_body(raw: bytes, content_type: str) -> tuple[str, list[dict[str, Any]]]:
    """(schema, events) from a webhook or topic body; EventError with the reason."""
    if not raw.strip():
        raise EventError("the body is empty")
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise EventError(f"the body is not valid JSON: {exc}") from exc
    cloud = content_type.split(";")[0].strip().lower() in CLOUDEVENTS_TYPES or (
        isinstance(body, dict) and "specversion" in body) or (
        isinstance(body, list) and body and isinstance(body[0], dict) and "specversion" in body[0])
    if cloud:
        events = body if isinstance(body, list) else [body]
        if not events:
            raise EventError("the batch is empty")
        return "cloudevents", [validate_cloudevent(e, i) for i, e in enumerate(events)]
    if not isinstance(body, list):
        raise EventError("an Event Grid schema body must be a JSON array of events")
    if not body:
        raise EventError("the batch is empty")
    return "eventgrid", [validate_eventgrid(e, i) for i, e in enumerate(body)]


def to_function_event(event: dict[str, Any], schema: str) -> func.EventGridEvent:
    """The func.EventGridEvent the Python worker builds (CloudEvents mapped onto it)."""
    if schema == "cloudevents":
        return func.EventGridEvent(id=event["id"], data=event.get("data") or {}, topic=event.get("source", ""),
                                   subject=event.get("subject", ""), event_type=event["type"],
                                   event_time=_time(event["time"], "time") if event.get("time") else None,
                                   data_version=event.get("dataschema") or "")
    return func.EventGridEvent(id=event["id"], data=event.get("data") or {}, topic=event.get("topic") or "",
                               subject=event["subject"], event_type=event["eventType"],
                               event_time=_time(event["eventTime"], "eventTime"), data_version=event["dataVersion"])


async def invoke(fn: FunctionInfo, event: func.EventGridEvent) -> None:
    """Run an Event Grid-triggered function with one event (sync ones in a thread)."""
    kwargs: dict[str, Any] = {fn.trigger_param: event}
    for binding in fn.bindings:
        if binding.get("type") == "durableClient":
            kwargs[binding["name"]] = _CLIENT_BINDING["value"]()
    if fn.is_async:
        await fn.func(**kwargs)
    else:
        await asyncio.get_running_loop().run_in_executor(None, functools.partial(fn.func, **kwargs))


# Builds the durableClient binding for functions triggered by events; set by the host at start.
_CLIENT_BINDING: dict[str, Callable[[], str]] = {"value": lambda: "{}"}


class EventGridWebhook:
    """``/runtime/webhooks/eventgrid``: what Event Grid posts to."""

    def __init__(self, index: FunctionIndex, keys: set[str]) -> None:
        self.index = index
        self.keys = keys

    def add_routes(self, app: web.Application) -> None:
        """Mount the webhook."""
        app.router.add_post("/runtime/webhooks/eventgrid", self.handle)
        app.router.add_route("OPTIONS", "/runtime/webhooks/eventgrid", self.options)

    async def options(self, request: web.Request) -> web.Response:
        """CloudEvents abuse protection: allow the requesting origin."""
        origin = request.headers.get("WebHook-Request-Origin", "*")
        return web.Response(status=200, headers={"WebHook-Allowed-Origin": origin, "WebHook-Allowed-Rate": "*"})

    def function(self, name: str | None) -> FunctionInfo:
        """The event-grid-triggered function, or EventError/LookupError."""
        if not name:
            raise EventError("query parameter 'functionName' is required")
        fn = self.index.get(name)
        if fn is None or fn.trigger_type != EVENT_GRID_TRIGGER:
            raise LookupError(f"no eventGridTrigger function named {name!r}")
        return fn

    async def handle(self, request: web.Request) -> web.Response:
        """Validate the whole batch, answer handshakes, then invoke the function once per event."""
        key = request.query.get("code") or request.headers.get("x-functions-key")
        if not key or key not in self.keys:
            return web.json_response({"error": "a valid system key is required (query 'code')"}, status=401)
        try:
            fn = self.function(request.query.get("functionName"))
        except LookupError as exc:
            return web.json_response({"error": str(exc)}, status=404)
        except EventError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        raw = await request.read()
        try:
            schema, events = parse_body(raw, request.headers.get("Content-Type", ""))
        except EventError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        if request.headers.get("aeg-event-type") == "SubscriptionValidation" or (
                schema == "eventgrid" and events[0].get("eventType") == VALIDATION_EVENT):
            code = (events[0].get("data") or {}).get("validationCode")
            if not code:
                return web.json_response({"error": "validation event without data.validationCode"}, status=400)
            return web.json_response({"validationResponse": code})
        status, message = await deliver(fn, schema, events)
        return web.json_response({"delivered": len(events)} if status == 200 else {"error": message}, status=status)


async def deliver(fn: FunctionInfo, schema: str, events: list[dict[str, Any]]) -> tuple[int, str]:
    """Invoke the function for each event; (200, "") or (500, why) on the first failure."""
    for event in events:
        try:
            await invoke(fn, to_function_event(event, schema))
        except Exception as exc:  # the function failed: Event Grid retries a 500
            log.exception("function %s failed on event %s", fn.name, event.get("id"))
            return 500, f"function {fn.name} failed: {type(exc).__name__}: {exc}"
    return 200, ""
