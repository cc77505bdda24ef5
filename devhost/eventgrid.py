"""Event Grid events: parse and validate a body, map between the two schemas, build the trigger value.

A body is either the Event Grid schema (a JSON array of events) or CloudEvents 1.0 in
structured mode: one event (``application/cloudevents+json``) or a batch
(``application/cloudevents-batch+json``). devhost checks what Event Grid checks when a
publisher sends events, so a malformed event gets a 400 that names the event and the field:

- Event Grid schema: ``id``, ``subject``, ``eventType``, ``eventTime``, ``data`` and
  ``dataVersion`` are required; ``metadataVersion``, if given, is ``"1"``
  (https://learn.microsoft.com/azure/event-grid/event-schema and the publish API,
  https://learn.microsoft.com/rest/api/eventgrid/dataplane/publish-events/publish-event-grid-events).
- CloudEvents: ``id``, ``source``, ``type``, ``specversion`` (``"1.0"``) are required, ``time``
  is RFC 3339, ``data`` and ``data_base64`` exclude each other, attribute names are lower-case
  letters and digits (https://github.com/cloudevents/spec/blob/v1.0/spec.md,
  https://learn.microsoft.com/azure/event-grid/cloud-event-schema).
- An array may hold up to 1 MB, and so may each event (413 beyond;
  https://learn.microsoft.com/azure/event-grid/event-schema#event-schema).
- JSON nests at most 64 levels deep: the default ``MaxDepth`` of System.Text.Json and Json.NET,
  the readers on Azure's side; deeper is refused (400) before any function sees it.

Nothing here does I/O: the webhook, the topics and the delivery queue share it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from azure.eventgrid import SystemEventNames
from azure.functions import meta
from azure.functions.eventgrid import EventGridEventInConverter

EVENTGRID = "EventGridSchema"
CLOUDEVENTS = "CloudEventSchemaV1_0"
CE_SINGLE = "application/cloudevents+json"
CE_BATCH = "application/cloudevents-batch+json"
_JSON_TYPES = {"application/json", "text/json", CE_SINGLE, CE_BATCH}
MAX_BYTES = 1024 * 1024
MAX_DEPTH = 64
VALIDATION_EVENT = SystemEventNames.EventGridSubscriptionValidationEventName.value

# RFC 3339 date-time; the offset may be left out (then UTC), as Event Grid's parser allows.
_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.(\d+))?([Zz]|[+-]\d{2}:\d{2})?$")
_CE_ATTRIBUTE = re.compile(r"^[a-z0-9]+$")
_BASE64 = re.compile(r"^[A-Za-z0-9+/]*={0,2}$")


class EventError(Exception):
    """An event or a body that Event Grid would refuse; the message names the event and field."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Batch:
    """A validated body: its schema and its events, as received."""

    schema: str  # EVENTGRID or CLOUDEVENTS
    events: list[dict[str, Any]]


def parse_time(value: Any, where: str) -> datetime:
    """An RFC 3339 time as an aware UTC datetime; EventError naming ``where`` otherwise."""
    if not isinstance(value, str):
        raise EventError(f"{where} must be an RFC 3339 date-time string, got {type(value).__name__}")
    m = _TIME.match(value)
    if not m:
        raise EventError(f"{where} {value!r} is not an RFC 3339 date-time (e.g. 2024-05-01T12:00:00Z)")
    text = value.upper().replace("Z", "+00:00")
    if m.group(1) is not None:  # .NET writes 7 fractional digits; Python reads up to 6
        digits = m.group(1)
        text = text.replace(f".{digits}", f".{digits[:6].ljust(6, '0')}", 1)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise EventError(f"{where} {value!r} is not a valid date-time: {exc}") from exc
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)


def format_time(moment: datetime) -> str:
    """UTC, ``Z``, microseconds: a form both Event Grid and the Python worker read."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _string(event: dict[str, Any], key: str, where: str, empty_ok: bool = False) -> None:
    if key not in event or event[key] is None:
        raise EventError(f"{where}: required property '{key}' is missing")
    if not isinstance(event[key], str):
        raise EventError(f"{where}: '{key}' must be a string, got {type(event[key]).__name__}")
    if not empty_ok and not event[key].strip():
        raise EventError(f"{where}: '{key}' must not be empty")


def validate_eventgrid(event: Any, index: int) -> dict[str, Any]:
    """One Event Grid schema event; EventError naming the field."""
    where = f"event [{index}]"
    if not isinstance(event, dict):
        raise EventError(f"{where} must be a JSON object, got {type(event).__name__}")
    if "specversion" in event:
        raise EventError(f"{where} is a CloudEvent (has 'specversion') inside an Event Grid schema batch")
    for key in ("id", "subject", "eventType"):
        _string(event, key, where)
    _string(event, "eventTime", where)
    parse_time(event["eventTime"], f"{where}: eventTime")
    if "data" not in event:
        raise EventError(f"{where}: required property 'data' is missing")
    _string(event, "dataVersion", where, empty_ok=True)  # Blob Storage sends ""
    if event.get("topic") is not None and not isinstance(event["topic"], str):
        raise EventError(f"{where}: 'topic' must be a string")
    if event.get("metadataVersion") not in (None, "1"):
        raise EventError(f"{where}: 'metadataVersion' must be \"1\" when given, got {event['metadataVersion']!r}")
    return event


def validate_cloudevent(event: Any, index: int) -> dict[str, Any]:
    """One CloudEvents 1.0 event; EventError naming the attribute."""
    where = f"event [{index}]"
    if not isinstance(event, dict):
        raise EventError(f"{where} must be a JSON object, got {type(event).__name__}")
    for key in ("specversion", "id", "source", "type"):
        _string(event, key, where)
    if event["specversion"] != "1.0":
        raise EventError(f"{where}: 'specversion' must be \"1.0\", got {event['specversion']!r}")
    for key in ("subject", "datacontenttype", "dataschema"):
        if key in event and not isinstance(event[key], str):
            raise EventError(f"{where}: '{key}' must be a string")
    if "time" in event:
        parse_time(event["time"], f"{where}: time")
    if "data" in event and "data_base64" in event:
        raise EventError(f"{where}: 'data' and 'data_base64' must not both be present")
    if "data_base64" in event and not (isinstance(event["data_base64"], str) and _BASE64.match(event["data_base64"])):
        raise EventError(f"{where}: 'data_base64' must be a base64 string")
    for key in event:
        if key not in ("data", "data_base64") and not _CE_ATTRIBUTE.match(key):
            raise EventError(f"{where}: attribute name {key!r} must be lower-case letters and digits only")
    return event


def _depth(value: Any) -> int:
    """How deep JSON containers nest in ``value``, without recursion (a hostile body may nest thousands deep)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, level)
            stack.extend((child, level + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def load_json(raw: bytes, what: str = "the body") -> Any:
    """Parse JSON no deeper than MAX_DEPTH; EventError (400) with the reason otherwise."""
    try:
        value = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise EventError(f"{what} is not valid JSON: {exc}") from exc
    except RecursionError as exc:  # the parser gives up near Python's recursion limit
        raise EventError(f"{what} is nested too deeply: JSON may nest at most {MAX_DEPTH} levels") from exc
    if _depth(value) > MAX_DEPTH:
        raise EventError(f"{what} is nested too deeply: JSON may nest at most {MAX_DEPTH} levels")
    return value


def parse_body(raw: bytes, content_type: str | None) -> Batch:
    """Validate a whole body; EventError (400, 413 or 415) says what is wrong."""
    mime = (content_type or "application/json").split(";")[0].strip().lower()
    if mime not in _JSON_TYPES:
        raise EventError(f"content type {mime!r} is not supported: send application/json, {CE_SINGLE} or "
                         f"{CE_BATCH}", status=415)
    if len(raw) > MAX_BYTES:
        raise EventError(f"the body is {len(raw)} bytes; Event Grid accepts at most {MAX_BYTES} (1 MB)", status=413)
    if not raw.strip():
        raise EventError("the body is empty")
    body = load_json(raw)
    if mime == CE_SINGLE:
        if not isinstance(body, dict):
            raise EventError(f"{CE_SINGLE} carries one event: a JSON object, got {type(body).__name__}")
        return Batch(CLOUDEVENTS, [validate_cloudevent(body, 0)])
    if mime == CE_BATCH:
        if not isinstance(body, list):
            raise EventError(f"{CE_BATCH} carries a JSON array of events, got {type(body).__name__}")
        if not body:
            raise EventError("the batch is empty")
        return Batch(CLOUDEVENTS, [validate_cloudevent(e, i) for i, e in enumerate(body)])
    # application/json: the Event Grid schema, or CloudEvents sent with a plain JSON content type.
    if isinstance(body, dict):
        if "specversion" in body:
            return Batch(CLOUDEVENTS, [validate_cloudevent(body, 0)])
        raise EventError("an Event Grid schema body must be a JSON array of events, got an object")
    if not isinstance(body, list):
        raise EventError(f"the body must be a JSON array of events, got {type(body).__name__}")
    if not body:
        raise EventError("the batch is empty")
    if isinstance(body[0], dict) and "specversion" in body[0]:
        return Batch(CLOUDEVENTS, [validate_cloudevent(e, i) for i, e in enumerate(body)])
    return Batch(EVENTGRID, [validate_eventgrid(e, i) for i, e in enumerate(body)])


def to_cloudevent(event: dict[str, Any]) -> dict[str, Any]:
    """An Event Grid schema event in CloudEvents 1.0 (topic -> source, eventType -> type, ...)."""
    out: dict[str, Any] = {"specversion": "1.0", "id": event["id"], "source": event.get("topic") or "",
                           "type": event["eventType"], "subject": event.get("subject", ""),
                           "time": event["eventTime"], "data": event.get("data")}
    if event.get("dataVersion"):
        out["dataversion"] = event["dataVersion"]
    return out


def to_eventgrid(event: dict[str, Any], now: datetime) -> dict[str, Any]:
    """A CloudEvent in the Event Grid schema (source -> topic, type -> eventType, ...)."""
    return {"id": event["id"], "topic": event.get("source", ""), "subject": event.get("subject") or "",
            "eventType": event["type"], "eventTime": event.get("time") or format_time(now),
            "data": event.get("data"), "dataVersion": event.get("dataschema") or "", "metadataVersion": "1"}


def in_schema(event: dict[str, Any], schema: str, wanted: str, now: datetime) -> dict[str, Any]:
    """The event in the schema a subscription delivers."""
    if schema == wanted:
        return event
    return to_cloudevent(event) if wanted == CLOUDEVENTS else to_eventgrid(event, now)


def event_type(event: dict[str, Any], schema: str) -> str:
    """``eventType`` or ``type``."""
    return str(event["type"] if schema == CLOUDEVENTS else event["eventType"])


def trigger_value(event: dict[str, Any], schema: str) -> Any:
    """What the Python worker passes to an eventGridTrigger function for this event.

    The host hands the worker each event as JSON and the worker decodes it with
    ``azure.functions``' own converter: a ``func.EventGridEvent`` for the Event Grid schema,
    a ``func.CloudEvent`` for CloudEvents. Times are normalised to UTC first, in a form the
    converter reads (it rejects offsets other than +00:00).
    """
    body = dict(event)
    key = "time" if schema == CLOUDEVENTS else "eventTime"
    if body.get(key):
        body[key] = format_time(parse_time(body[key], key))
    datum = meta.Datum(json.dumps(body), "json")
    return EventGridEventInConverter.decode(datum, trigger_metadata={})
