"""Event subscriptions: the subscriptions file, its validation, and Event Grid's filters.

The file (``eventgrid.subscriptions.json`` next to the app, or the path in the
``DEVHOST_SUBSCRIPTIONS`` setting) is a JSON array; each entry mirrors an Event Grid event
subscription (the schema is in docs/devhost.md)::

    {"name": "landing-csv",
     "source": {"type": "blob", "connection": "AzureWebJobsStorage", "containers": ["landing"]},
     "filter": {"includedEventTypes": ["Microsoft.Storage.BlobCreated"],
                "subjectBeginsWith": "/blobServices/default/containers/landing/",
                "subjectEndsWith": ".csv"},
     "destination": {"function": "on_blob_created"},
     "schema": "EventGridSchema",
     "retry": {"maxDeliveryAttempts": 30, "eventTimeToLiveInMinutes": 1440}}

A ``topic`` source (``{"type": "topic", "name": "orders", "inputSchema": "EventGridSchema"}``)
is a custom topic that devhost serves. The file is checked at start-up; an error names the
entry and the field.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .app_loader import EVENT_GRID_TRIGGER, FunctionIndex
from .eventgrid import CLOUDEVENTS, EVENTGRID

BLOB, TOPIC = "blob", "topic"
SCHEMAS = (EVENTGRID, CLOUDEVENTS)
# Names as Azure allows them: https://learn.microsoft.com/azure/azure-resource-manager/management/resource-name-rules
_SUBSCRIPTION_NAME = re.compile(r"^[A-Za-z0-9-]{3,64}$")
_TOPIC_NAME = re.compile(r"^[A-Za-z0-9-]{3,50}$")
_CONTAINER_NAME = re.compile(r"^(?=.{3,63}$)[a-z0-9]+(?:-[a-z0-9]+)*$")
_KEYS = {"name", "source", "filter", "destination", "schema", "retry"}
_FILTER_KEYS = {"includedEventTypes", "subjectBeginsWith", "subjectEndsWith", "isSubjectCaseSensitive"}


class SubscriptionError(Exception):
    """The subscriptions file is invalid; the message names the entry and the field."""


@dataclass
class Subscription:
    """One event subscription: where events come from, which pass, where they go, how they are retried."""

    name: str
    source_type: str  # BLOB | TOPIC
    function: str
    topic: str = ""
    input_schema: str = EVENTGRID  # a topic's input schema
    connection: str = "AzureWebJobsStorage"
    containers: list[str] = field(default_factory=list)
    included_event_types: list[str] = field(default_factory=list)
    subject_begins_with: str = ""
    subject_ends_with: str = ""
    case_sensitive: bool = False
    schema: str = EVENTGRID
    max_attempts: int = 30
    ttl_minutes: int = 1440

    def matches(self, event_type: str, subject: str) -> bool:
        """Event Grid's basic filters (https://learn.microsoft.com/azure/event-grid/event-filtering).

        Event types compare without regard to case; subjects too unless ``isSubjectCaseSensitive``.
        """
        if self.included_event_types and event_type.lower() not in {t.lower() for t in self.included_event_types}:
            return False
        subj, begins, ends = subject, self.subject_begins_with, self.subject_ends_with
        if not self.case_sensitive:
            subj, begins, ends = subj.lower(), begins.lower(), ends.lower()
        return subj.startswith(begins) and subj.endswith(ends)


def _require(cond: bool, where: str, message: str) -> None:
    if not cond:
        raise SubscriptionError(f"{where}: {message}")


def _strings(value: Any, where: str) -> list[str]:
    _require(isinstance(value, list) and all(isinstance(v, str) and v for v in value), where,
             f"must be a list of non-empty strings, got {value!r}")
    return list(value)


def _int(value: Any, where: str, low: int, high: int) -> int:
    _require(isinstance(value, int) and not isinstance(value, bool) and low <= value <= high, where,
             f"must be an integer from {low} to {high}, got {value!r}")
    return int(value)


def _parse_one(item: Any, where: str, index: FunctionIndex) -> Subscription:
    """One entry of the file, checked field by field in the order the file reads."""
    name = _check_entry(item, where)
    where = f"subscription {name!r}"
    sub = _read_source(name, item.get("source"), where)
    _read_filter(sub, item.get("filter", {}), where)
    sub.function = _destination(item.get("destination"), index, where)
    _read_schema(sub, item.get("schema", EVENTGRID), where)
    sub.max_attempts, sub.ttl_minutes = _retry(item.get("retry", {}), where)
    return sub


def _check_entry(item: Any, where: str) -> str:
    """An entry is an object with known fields only and a valid name; the name."""
    _require(isinstance(item, dict), where, "must be a JSON object")
    unknown = sorted(set(item) - _KEYS)
    _require(not unknown, where, f"unknown field(s) {unknown}; allowed: {sorted(_KEYS)}")
    name = item.get("name")
    _require(isinstance(name, str) and bool(_SUBSCRIPTION_NAME.match(name)), f"{where}.name",
             f"must be 3-64 letters, digits or hyphens, got {name!r}")
    return str(name)


def _read_source(name: str, source: Any, where: str) -> Subscription:
    """A subscription to a blob or a topic source (its function comes later)."""
    _require(isinstance(source, dict), f"{where}.source", "is required (an object with 'type')")
    sub = Subscription(name=name, source_type=str(source.get("type")), function="")
    if sub.source_type == BLOB:
        _read_blob_source(sub, source, where)
    elif sub.source_type == TOPIC:
        _read_topic_source(sub, source, where)
    else:
        raise SubscriptionError(f"{where}.source.type: must be 'blob' or 'topic', got {source.get('type')!r}")
    return sub


def _read_blob_source(sub: Subscription, source: dict[str, Any], where: str) -> None:
    extra = sorted(set(source) - {"type", "connection", "containers"})
    _require(not extra, f"{where}.source", f"unknown field(s) {extra} for a blob source")
    sub.connection = source.get("connection", "AzureWebJobsStorage")
    _require(isinstance(sub.connection, str) and bool(sub.connection), f"{where}.source.connection",
             "must name the app setting that holds the storage connection string")
    sub.containers = _strings(source.get("containers"), f"{where}.source.containers")
    _require(bool(sub.containers), f"{where}.source.containers", "must list at least one container")
    for c in sub.containers:
        _require(bool(_CONTAINER_NAME.match(c)), f"{where}.source.containers",
                 f"{c!r} is not a valid container name (3-63 lower-case letters, digits, single hyphens)")


def _read_topic_source(sub: Subscription, source: dict[str, Any], where: str) -> None:
    extra = sorted(set(source) - {"type", "name", "inputSchema"})
    _require(not extra, f"{where}.source", f"unknown field(s) {extra} for a topic source")
    sub.topic = source.get("name", "")
    _require(isinstance(sub.topic, str) and bool(_TOPIC_NAME.match(sub.topic)), f"{where}.source.name",
             f"must be a topic name of 3-50 letters, digits or hyphens, got {sub.topic!r}")
    sub.input_schema = source.get("inputSchema", EVENTGRID)
    _require(sub.input_schema in SCHEMAS, f"{where}.source.inputSchema", f"must be one of {list(SCHEMAS)}")


def _read_filter(sub: Subscription, flt: Any, where: str) -> None:
    """Event Grid's basic filters; advanced filters are refused."""
    _require(isinstance(flt, dict), f"{where}.filter", "must be an object")
    unknown = sorted(set(flt) - _FILTER_KEYS)
    _require(not unknown, f"{where}.filter", f"unknown field(s) {unknown} (devhost supports {sorted(_FILTER_KEYS)}; "
                                             "advanced filters are not supported)")
    if "includedEventTypes" in flt and flt["includedEventTypes"] is not None:
        sub.included_event_types = _strings(flt["includedEventTypes"], f"{where}.filter.includedEventTypes")
    for key, attr in (("subjectBeginsWith", "subject_begins_with"), ("subjectEndsWith", "subject_ends_with")):
        value = flt.get(key, "")
        _require(isinstance(value, str), f"{where}.filter.{key}", "must be a string")
        setattr(sub, attr, value)
    sub.case_sensitive = flt.get("isSubjectCaseSensitive", False)
    _require(isinstance(sub.case_sensitive, bool), f"{where}.filter.isSubjectCaseSensitive", "must be true or false")


def _destination(dest: Any, index: FunctionIndex, where: str) -> str:
    """The name of the app's eventGridTrigger function the events go to."""
    _require(isinstance(dest, dict) and isinstance(dest.get("function"), str), f"{where}.destination",
             "must be {\"function\": \"<eventGridTrigger function name>\"}")
    fn = index.get(dest["function"])
    _require(fn is not None, f"{where}.destination.function",
             f"the app has no function named {dest['function']!r} (functions: {sorted(index.functions)})")
    assert fn is not None
    _require(fn.trigger_type == EVENT_GRID_TRIGGER, f"{where}.destination.function",
             f"{fn.name!r} is a {fn.trigger_type} function, not an eventGridTrigger")
    return fn.name


def _read_schema(sub: Subscription, schema: Any, where: str) -> None:
    """The delivery schema, which must be one the source can be delivered in."""
    sub.schema = schema
    _require(sub.schema in SCHEMAS, f"{where}.schema", f"must be one of {list(SCHEMAS)}, got {sub.schema!r}")
    # https://learn.microsoft.com/azure/event-grid/cloud-event-schema : CloudEvents in, Event Grid schema out
    # is not a conversion Event Grid offers.
    _require(not (sub.source_type == TOPIC and sub.input_schema == CLOUDEVENTS and sub.schema == EVENTGRID),
             f"{where}.schema", "a CloudEventSchemaV1_0 topic can only deliver CloudEventSchemaV1_0")


def _retry(retry: Any, where: str) -> tuple[int, int]:
    """(maxDeliveryAttempts, eventTimeToLiveInMinutes), each within Event Grid's limits."""
    _require(isinstance(retry, dict), f"{where}.retry", "must be an object")
    unknown = sorted(set(retry) - {"maxDeliveryAttempts", "eventTimeToLiveInMinutes"})
    _require(not unknown, f"{where}.retry", f"unknown field(s) {unknown}")
    # Limits from https://learn.microsoft.com/azure/event-grid/manage-event-delivery
    return (_int(retry.get("maxDeliveryAttempts", 30), f"{where}.retry.maxDeliveryAttempts", 1, 30),
            _int(retry.get("eventTimeToLiveInMinutes", 1440), f"{where}.retry.eventTimeToLiveInMinutes", 1, 1440))


def load_subscriptions(path: Path | None, index: FunctionIndex) -> list[Subscription]:
    """Read and check the subscriptions file; no file means no subscriptions."""
    if path is None:
        return []
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SubscriptionError(f"cannot read the subscriptions file {path}: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise SubscriptionError(f"the subscriptions file {path} is not valid JSON: {exc}") from exc
    if not isinstance(raw, list):
        raise SubscriptionError(f"the subscriptions file {path} must hold a JSON array of subscriptions")
    subs = [_parse_one(item, f"{path.name}[{i}]", index) for i, item in enumerate(raw)]
    seen: dict[str, str] = {}
    topic_schema: dict[str, str] = {}
    for sub in subs:
        if sub.name.lower() in seen:
            raise SubscriptionError(f"{path.name}: subscription name {sub.name!r} is used twice")
        seen[sub.name.lower()] = sub.name
        if sub.source_type == TOPIC:
            first = topic_schema.setdefault(sub.topic, sub.input_schema)
            if first != sub.input_schema:
                raise SubscriptionError(f"subscription {sub.name!r}: topic {sub.topic!r} has inputSchema {first} in "
                                        f"another subscription; a topic has one input schema")
    return subs


def blob_connections(subs: list[Subscription], settings: dict[str, str]) -> dict[str, str]:
    """Connection strings of the blob sources by setting name; SubscriptionError if a setting is missing."""
    out: dict[str, str] = {}
    for sub in subs:
        if sub.source_type != BLOB:
            continue
        value = settings.get(sub.connection, "")
        if not value:
            raise SubscriptionError(f"subscription {sub.name!r}: app setting {sub.connection!r} (the storage "
                                    "connection string) is not set")
        out[sub.connection] = value
    return out
