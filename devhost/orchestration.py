"""One orchestration episode: new events in, the SDK replays, actions out.

This is the heart of the Durable extension's out-of-process protocol as devhost
speaks it. The SDK's own orchestrator handle (built by ``@app.orchestration_trigger``)
receives the whole history as JSON and returns the whole list of actions it has
scheduled so far; devhost keeps the history, assigns each new action the sequence
number the SDK gave its task, and turns the new actions into work.

Sequence numbers follow the Durable Task Framework: every scheduled task, timer and
sub-orchestration takes the next number, external-event waits take none, and a
``*_with_retry`` call takes one number per retry timer and one per new attempt
(see ``RetryAbleTask`` in the SDK). Completion events name the number they complete.
"""

from __future__ import annotations

import json
import logging
import traceback
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from .entities import OPERATION_EVENT, new_request, request_body
from .history import EventType, event, iso, parse_iso
from .http_activity import HTTP_ACTIVITY

log = logging.getLogger("devhost.orchestration")

REPLAY_SCHEMA_V2 = 1  # upperSchemaVersion the SDK receives; V2 nests task_all/task_any as compound actions

# Action types as numbered by the SDK (azure.durable_functions.models.actions.ActionType).
CALL_ACTIVITY = 0
CALL_ACTIVITY_WITH_RETRY = 1
CALL_SUB_ORCHESTRATOR = 2
CALL_SUB_ORCHESTRATOR_WITH_RETRY = 3
CONTINUE_AS_NEW = 4
CREATE_TIMER = 5
WAIT_FOR_EXTERNAL_EVENT = 6
CALL_ENTITY = 7
CALL_HTTP = 8
SIGNAL_ENTITY = 9
WHEN_ANY = 11
WHEN_ALL = 12

_TAKES_NO_SEQUENCE = {WAIT_FOR_EXTERNAL_EVENT}
_UNSUPPORTED = {CALL_ENTITY: "call_entity", SIGNAL_ENTITY: "signal_entity"}  # call_http: BuiltIn::HttpActivity
_ENTITY_ACTIONS = {CALL_ENTITY, SIGNAL_ENTITY}

RUNNING = "Running"
PENDING = "Pending"
COMPLETED = "Completed"
FAILED = "Failed"
TERMINATED = "Terminated"
SUSPENDED = "Suspended"
TERMINAL = {COMPLETED, FAILED, TERMINATED}


@dataclass
class Instance:
    """The durable state of one orchestration instance (its current execution)."""

    instance_id: str
    name: str
    execution_id: str
    status: str
    input: str | None
    created_at: str
    updated_at: str
    output: str | None = None
    custom_status: str | None = None
    parent_id: str | None = None
    parent_task_id: int | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    next_seq: int = 0
    actions_seen: int = 0
    retries: dict[str, dict[str, Any]] = field(default_factory=dict)
    suspended: bool = False

    @property
    def terminal(self) -> bool:
        """True once the instance completed, failed or was terminated."""
        return self.status in TERMINAL

    def state_json(self) -> str:
        """Bookkeeping that is not history, as JSON for the store."""
        return json.dumps(
            {"next_seq": self.next_seq, "actions_seen": self.actions_seen, "retries": self.retries,
             "suspended": self.suspended}
        )

    def load_state(self, raw: str | None) -> None:
        """Restore what ``state_json`` saved."""
        data = json.loads(raw or "{}")
        self.next_seq = int(data.get("next_seq", 0))
        self.actions_seen = int(data.get("actions_seen", 0))
        self.retries = dict(data.get("retries", {}))
        self.suspended = bool(data.get("suspended", False))


@dataclass
class Activity:
    """An activity to run: it completes task ``task_id`` of the instance."""

    instance_id: str
    execution_id: str
    task_id: int
    name: str
    input: str | None


@dataclass
class Message:
    """A message for an instance: a history event, possibly delivered later (timers)."""

    instance_id: str
    body: dict[str, Any]
    visible_at: str = ""
    msg_id: int | None = None  # set once stored
    work_id: int | None = None  # set for an activity's result: the work item it retires


@dataclass
class StartRequest:
    """Create (or replace) an instance and deliver its ExecutionStarted event."""

    instance_id: str
    name: str
    input: str | None
    parent_id: str | None = None
    parent_task_id: int | None = None
    version: str | None = None  # None: the host's defaultVersion (host.json), set by the engine


@dataclass
class EpisodeResult:
    """What one episode produced besides the instance's new history."""

    activities: list[Activity] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)  # timers, parent notifications
    starts: list[StartRequest] = field(default_factory=list)  # sub-orchestrations
    new_events: list[dict[str, Any]] = field(default_factory=list)
    reset_history: bool = False  # continue_as_new started a new execution


OrchestratorLookup = Callable[[str], Callable[[str], str] | None]


def context_input(stored: str | None) -> str | None:
    """The orchestration input as the SDK expects it in its context: JSON text.

    devhost stores the input as the JSON token the start request carried. The SDK's
    client double-encodes (it posts a JSON string holding JSON), so a string token is
    already the JSON text; any other token is serialised.
    """
    if stored is None:
        return None
    token = json.loads(stored)
    return token if isinstance(token, str) else json.dumps(token)


def flatten(actions: Any) -> Iterator[dict[str, Any]]:
    """Atomic actions in scheduling order; compound (when_all/when_any) actions are opened up."""
    if isinstance(actions, list):
        for item in actions:
            yield from flatten(item)
    elif isinstance(actions, dict):
        if "compoundActions" in actions:
            yield from flatten(actions["compoundActions"])
        else:
            yield actions


def is_retry_trigger(inst: Instance, body: dict[str, Any]) -> bool:
    """True for events that make the SDK assign sequence numbers while it replays (retries).

    Such an event is delivered alone in its episode so that devhost can tell which
    numbers the SDK gave to the retry timer and to the next attempt.
    """
    etype = body.get("EventType")
    if etype in (EventType.TASK_FAILED, EventType.SUB_ORCHESTRATION_INSTANCE_FAILED):
        return str(body.get("TaskScheduledId")) in inst.retries
    if etype == EventType.TIMER_FIRED:
        return str(body.get("TimerId")) in inst.retries
    return False


def select_batch(inst: Instance, messages: list[Message]) -> list[Message]:
    """The messages to deliver in the next episode (all of them, unless a retry event comes first)."""
    batch: list[Message] = []
    for msg in messages:
        if is_retry_trigger(inst, msg.body):
            return batch or [msg]
        batch.append(msg)
    return batch


def split_stale(inst: Instance, messages: list[Message]) -> tuple[list[Message], list[Message]]:
    """(current, stale): messages stamped with an earlier execution (before continue_as_new) are stale."""
    current: list[Message] = []
    stale: list[Message] = []
    for msg in messages:
        execution = msg.body.get("ExecutionId")
        (stale if execution and execution != inst.execution_id else current).append(msg)
    return current, stale


def next_batch(inst: Instance, messages: list[Message]) -> tuple[list[Message], list[Message]]:
    """(deliver now, hold back) among an instance's current messages."""
    # ExecutionStarted opens the history, whatever arrived before it.
    ordered = sorted(messages, key=lambda m: 0 if m.body.get("EventType") == EventType.EXECUTION_STARTED else 1)
    if not inst.history and (not ordered or ordered[0].body.get("EventType") != EventType.EXECUTION_STARTED):
        return [], ordered
    chosen = select_batch(inst, ordered)
    return chosen, ordered[len(chosen):]


def new_instance(req: StartRequest, now: datetime) -> tuple[Instance, Message]:
    """A Pending instance for the request, and the ExecutionStarted message that starts it."""
    at = iso(now)
    inst = Instance(
        instance_id=req.instance_id, name=req.name, execution_id=uuid.uuid4().hex, status=PENDING,
        input=req.input, created_at=at, updated_at=at, parent_id=req.parent_id,
        parent_task_id=req.parent_task_id,
    )
    started = event(EventType.EXECUTION_STARTED, -1, now, Name=req.name, Input=req.input,
                    Version=req.version or "", ParentInstanceId=req.parent_id)
    return inst, Message(inst.instance_id, started, visible_at=at)


def activity_message(activity: Activity, body: dict[str, Any], at: datetime) -> Message:
    """Wrap an activity's result event as a message for its instance (stamped with its execution)."""
    body["ExecutionId"] = activity.execution_id
    return Message(activity.instance_id, body, visible_at=iso(at))


def _retry_delay(entry: dict[str, Any]) -> timedelta:
    # The Python SDK's RetryOptions carries only the first interval and the attempt count, so the
    # backoff coefficient is DTFx's default of 1: every retry waits the first interval.
    return timedelta(milliseconds=int(entry["interval_ms"]))


def _sub_instance_id(inst: Instance, action: dict[str, Any], seq: int) -> str:
    given = action.get("instanceId")
    return str(given) if given else f"{inst.instance_id}:{seq:04d}"


class Episode:
    """Runs one episode for one instance. Mutates the instance; returns the work it produced.

    With ``entities`` (the engine), ``signal_entity``/``call_entity`` send operation requests
    (see devhost/entities.py); without (the in-process runner), they fail the orchestration.
    """

    def __init__(self, inst: Instance, now: datetime, lookup: OrchestratorLookup, entities: bool = False) -> None:
        self.inst = inst
        self.now = now
        self.lookup = lookup
        self.entities = entities
        self.result = EpisodeResult()

    # -- helpers ---------------------------------------------------------------------------
    def _append(self, ev: dict[str, Any]) -> None:
        self.inst.history.append(ev)
        self.result.new_events.append(ev)

    def _next_seq(self) -> int:
        seq = self.inst.next_seq
        self.inst.next_seq += 1
        return seq

    def _schedule_activity(self, seq: int, name: str, input_: str | None) -> None:
        self._append(event(EventType.TASK_SCHEDULED, seq, self.now, Name=name, Input=input_))
        self.result.activities.append(Activity(self.inst.instance_id, self.inst.execution_id, seq, name, input_))

    def _schedule_sub(self, seq: int, name: str, input_: str | None, sub_id: str, version: str | None) -> None:
        self._append(
            event(EventType.SUB_ORCHESTRATION_INSTANCE_CREATED, seq, self.now, Name=name, Input=input_,
                  InstanceId=sub_id, Version=version or "")
        )
        token = None if input_ is None else json.dumps(input_)  # the SDK's JSON text, kept as a string token
        # no version given: the child takes the host's defaultVersion, not its parent's (orchestration versioning)
        self.result.starts.append(StartRequest(sub_id, name, token, self.inst.instance_id, seq, version or None))

    def _schedule_timer(self, seq: int, fire_at: datetime) -> None:
        self._append(event(EventType.TIMER_CREATED, seq, self.now, FireAt=iso(fire_at)))
        fired = event(EventType.TIMER_FIRED, -1, fire_at, TimerId=seq, FireAt=iso(fire_at))
        self.result.messages.append(Message(self.inst.instance_id, fired, visible_at=iso(fire_at)))

    # -- retries ---------------------------------------------------------------------------
    def _on_retry_event(self, body: dict[str, Any]) -> None:
        """Mirror what the SDK's RetryAbleTask does with a failure or a retry timer."""
        inst = self.inst
        if body["EventType"] in (EventType.TASK_FAILED, EventType.SUB_ORCHESTRATION_INSTANCE_FAILED):
            entry = inst.retries.pop(str(body["TaskScheduledId"]))
            timer_seq = self._next_seq()
            self._schedule_timer(timer_seq, self.now + _retry_delay(entry))
            inst.retries[str(timer_seq)] = entry
            return
        entry = inst.retries.pop(str(body["TimerId"]))
        if entry["attempt"] >= entry["max_attempts"]:
            return  # the SDK now fails the task with the last error; nothing more to schedule
        seq = self._next_seq()
        entry = {**entry, "attempt": entry["attempt"] + 1}
        inst.retries[str(seq)] = entry
        if entry["kind"] == "activity":
            self._schedule_activity(seq, entry["name"], entry["input"])
        else:
            sub_id = entry["sub_instance_id"] or f"{inst.instance_id}:{seq:04d}"
            self._schedule_sub(seq, entry["name"], entry["input"], sub_id, entry.get("version"))

    # -- the episode -----------------------------------------------------------------------
    def run(self, messages: list[Message]) -> EpisodeResult:
        """Append the messages' events, replay the orchestrator, and act on its new actions."""
        inst = self.inst
        # The Functions host sends past events with IsPlayed true and this episode's with false;
        # the SDK derives context.is_replaying from it (DurableTask.Core HistoryEvent.IsPlayed).
        # Played events are a prefix, so only the last episode's need marking.
        for past in reversed(inst.history):
            if past.get("IsPlayed"):
                break
            past["IsPlayed"] = True
        self._append(event(EventType.ORCHESTRATOR_STARTED, -1, self.now))
        for msg in messages:
            body = dict(msg.body)
            body["IsPlayed"] = False
            if body.get("EventType") == EventType.EXECUTION_STARTED:
                inst.status = RUNNING
            self._append(body)
            if is_retry_trigger(inst, body):
                self._on_retry_event(body)
        handle = self.lookup(inst.name)
        if handle is None:
            self._fail(f"The function '{inst.name}' doesn't exist, is disabled, or is not an orchestrator function.")
            return self.result
        state, error = self._invoke(handle)
        if state is None:
            self._fail(error or "orchestrator returned no state")
            return self.result
        if state.get("customStatus") is not None:
            inst.custom_status = json.dumps(state["customStatus"])
        actions = list(flatten(state.get("actions", [])))
        new_actions = actions[inst.actions_seen:]
        inst.actions_seen = len(actions)
        continue_input: tuple[bool, Any] = (False, None)
        for action in new_actions:
            atype = action.get("actionType")
            if atype in _UNSUPPORTED and not (self.entities and atype in _ENTITY_ACTIONS):
                self._fail(f"devhost does not support {_UNSUPPORTED[atype]} (durable entities in the in-process "
                           "runner)")
                return self.result
            if atype == CONTINUE_AS_NEW:
                self._next_seq()
                continue_input = (True, action.get("input"))
                continue
            if atype in _TAKES_NO_SEQUENCE:
                continue
            self._act(action, self._next_seq())
        if error is not None:
            self._fail(error)
        elif state.get("isDone"):
            if continue_input[0]:
                self._continue_as_new(continue_input[1])
            else:
                self._complete(state.get("output"))
        else:
            self._append(event(EventType.ORCHESTRATOR_COMPLETED, -1, self.now))
        return self.result

    def _act(self, action: dict[str, Any], seq: int) -> None:
        atype = action["actionType"]
        name = action.get("functionName", "")
        input_ = action.get("input")
        if atype == CALL_ACTIVITY:
            self._schedule_activity(seq, name, input_)
        elif atype == CALL_ACTIVITY_WITH_RETRY:
            self.inst.retries[str(seq)] = self._retry_entry("activity", action, "")
            self._schedule_activity(seq, name, input_)
        elif atype == CALL_SUB_ORCHESTRATOR:
            self._schedule_sub(seq, name, input_, _sub_instance_id(self.inst, action, seq), action.get("version"))
        elif atype == CALL_SUB_ORCHESTRATOR_WITH_RETRY:
            self.inst.retries[str(seq)] = self._retry_entry("sub", action, action.get("instanceId") or "")
            self._schedule_sub(seq, name, input_, _sub_instance_id(self.inst, action, seq), action.get("version"))
        elif atype == CREATE_TIMER:
            self._schedule_timer(seq, parse_iso(action["fireAt"]))
        elif atype == CALL_HTTP:  # the extension's built-in activity; its input is [DurableHttpRequest]
            self._schedule_activity(seq, HTTP_ACTIVITY, json.dumps([action.get("httpRequest")]))
        elif atype in _ENTITY_ACTIONS:
            self._send_to_entity(seq, action, signal=atype == SIGNAL_ENTITY)
        else:
            log.warning("unknown action type %s in %s", atype, self.inst.instance_id)

    def _send_to_entity(self, seq: int, action: dict[str, Any], signal: bool) -> None:
        """An operation request to an entity, recorded as the extension records it: an EventSent event.

        The SDK reads the request id from the EventSent input to match the response (an EventRaised
        named with that id) to its ``call_entity`` task; a signal gets no response.
        """
        target = str(action.get("instanceId", ""))
        input_ = action.get("input")
        request = new_request(str(action.get("operation", "")), "null" if input_ is None else str(input_), signal,
                              None if signal else self.inst.instance_id,
                              None if signal else self.inst.execution_id)
        self._append(event(EventType.EVENT_SENT, seq, self.now, InstanceId=target, Name=OPERATION_EVENT,
                           Input=request.to_json()))
        self.result.messages.append(Message(target, request_body(request, self.now), visible_at=iso(self.now)))

    @staticmethod
    def _retry_entry(kind: str, action: dict[str, Any], sub_id: str) -> dict[str, Any]:
        options = action.get("retryOptions") or {}
        return {
            "kind": kind,
            "name": action.get("functionName", ""),
            "input": action.get("input"),
            "sub_instance_id": sub_id,
            "version": action.get("version"),
            "interval_ms": int(options.get("firstRetryIntervalInMilliseconds", 1000)),
            "max_attempts": int(options.get("maxNumberOfAttempts", 1)),
            "attempt": 1,
        }

    def _invoke(self, handle: Callable[[str], str]) -> tuple[dict[str, Any] | None, str | None]:
        """Call the SDK's handle; return (state, error). A failure carries its state after a marker."""
        inst = self.inst
        context = json.dumps(
            {
                "history": inst.history,
                "input": context_input(inst.input),
                "instanceId": inst.instance_id,
                "isReplaying": False,
                "parentInstanceId": inst.parent_id,
                "upperSchemaVersion": REPLAY_SCHEMA_V2,
            }
        )
        try:
            return json.loads(handle(context)), None
        except Exception as exc:  # the orchestrator raised: the SDK packs its state after a marker
            text = str(exc)
            marker = "\n\n$OutOfProcData$:"
            if marker in text:
                message, _, raw = text.partition(marker)
                try:
                    return json.loads(raw), f"Orchestrator function '{inst.name}' failed: {message}"
                except json.JSONDecodeError:
                    pass
            detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
            return None, f"Orchestrator function '{inst.name}' failed: {detail}"

    # -- endings ---------------------------------------------------------------------------
    def _notify_parent(self, body: dict[str, Any]) -> None:
        if self.inst.parent_id is not None:
            self.result.messages.append(Message(self.inst.parent_id, body, visible_at=iso(self.now)))

    def _complete(self, output: Any) -> None:
        inst = self.inst
        inst.status = COMPLETED
        inst.output = json.dumps(output)
        self._append(event(EventType.ORCHESTRATOR_COMPLETED, -1, self.now))
        self._append(event(EventType.EXECUTION_COMPLETED, -1, self.now, OrchestrationStatus=COMPLETED,
                           Result=inst.output))
        self._notify_parent(event(EventType.SUB_ORCHESTRATION_INSTANCE_COMPLETED, -1, self.now,
                                  TaskScheduledId=inst.parent_task_id, Result=inst.output))

    def _fail(self, message: str) -> None:
        inst = self.inst
        inst.status = FAILED
        inst.output = json.dumps(message)
        log.warning("orchestration failed", extra={"instance_id": inst.instance_id, "error": message})
        self._append(event(EventType.ORCHESTRATOR_COMPLETED, -1, self.now))
        self._append(event(EventType.EXECUTION_FAILED, -1, self.now, OrchestrationStatus=FAILED, Reason=message))
        self._notify_parent(event(EventType.SUB_ORCHESTRATION_INSTANCE_FAILED, -1, self.now,
                                  TaskScheduledId=inst.parent_task_id, Reason=message, Details=None))

    def _continue_as_new(self, new_input: Any) -> None:
        """Start a fresh execution with the new input. Events still queued are kept for it."""
        inst = self.inst
        version = next((e.get("Version") or "" for e in inst.history
                        if e.get("EventType") == EventType.EXECUTION_STARTED), "")  # kept across executions
        inst.execution_id = uuid.uuid4().hex
        inst.history = []
        inst.next_seq = 0
        inst.actions_seen = 0
        inst.retries = {}
        inst.input = None if new_input is None else json.dumps(new_input)
        inst.status = RUNNING
        self.result.reset_history = True
        started = event(EventType.EXECUTION_STARTED, -1, self.now, Name=inst.name, Input=inst.input, Version=version)
        self.result.messages.append(Message(inst.instance_id, started, visible_at=iso(self.now)))
