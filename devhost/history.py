"""History events in the shape the Durable extension hands to out-of-process SDKs."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import IntEnum
from typing import Any

_FMT = "%Y-%m-%dT%H:%M:%S.%fZ"


class EventType(IntEnum):
    """DTFx history event types, numbered as in the SDK's ``HistoryEventType``."""

    EXECUTION_STARTED = 0
    EXECUTION_COMPLETED = 1
    EXECUTION_FAILED = 2
    EXECUTION_TERMINATED = 3
    TASK_SCHEDULED = 4
    TASK_COMPLETED = 5
    TASK_FAILED = 6
    SUB_ORCHESTRATION_INSTANCE_CREATED = 7
    SUB_ORCHESTRATION_INSTANCE_COMPLETED = 8
    SUB_ORCHESTRATION_INSTANCE_FAILED = 9
    TIMER_CREATED = 10
    TIMER_FIRED = 11
    ORCHESTRATOR_STARTED = 12
    ORCHESTRATOR_COMPLETED = 13
    EVENT_SENT = 14
    EVENT_RAISED = 15
    CONTINUE_AS_NEW = 16
    GENERIC_EVENT = 17
    HISTORY_STATE = 18
    EXECUTION_SUSPENDED = 19
    EXECUTION_RESUMED = 20


# Names the public HTTP API shows for each type (showHistory=true).
EVENT_NAMES = {t.value: "".join(p.capitalize() for p in t.name.split("_")) for t in EventType}
EVENT_NAMES[EventType.SUB_ORCHESTRATION_INSTANCE_CREATED] = "SubOrchestrationInstanceCreated"
EVENT_NAMES[EventType.SUB_ORCHESTRATION_INSTANCE_COMPLETED] = "SubOrchestrationInstanceCompleted"
EVENT_NAMES[EventType.SUB_ORCHESTRATION_INSTANCE_FAILED] = "SubOrchestrationInstanceFailed"


def iso(moment: datetime) -> str:
    """UTC timestamp with microseconds and a Z, sortable as text."""
    return moment.astimezone(UTC).strftime(_FMT)


def parse_iso(text: str) -> datetime:
    """Parse an ISO 8601 timestamp (with Z or an offset) into an aware UTC datetime."""
    value = text.strip()
    if value.endswith("Z"):
        value = value[:-1] + "+00:00"
    # Python 3.11 parses up to 6 fractional digits; .NET writes 7.
    if "." in value:
        head, _, tail = value.partition(".")
        digits = "".join(ch for ch in tail if ch.isdigit())
        rest = tail[len(digits):]
        value = f"{head}.{digits[:6].ljust(6, '0')}{rest}"
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def event(etype: EventType, event_id: int, at: datetime, **fields: Any) -> dict[str, Any]:
    """A history event as the SDK parses it (``HistoryEvent(**event)``)."""
    body: dict[str, Any] = {"EventType": int(etype), "EventId": event_id, "IsPlayed": False, "Timestamp": iso(at)}
    body.update(fields)
    return body
