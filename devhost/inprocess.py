"""Run an app's orchestrations inside the test process: the SDK's own replay, stub activities, a virtual clock.

The runner drives ``Episode`` as the engine does, with the same instances, messages and
history events, but keeps everything in memory on the test's thread. Activities are the
test's callables, called inline as soon as an episode schedules them. Timers and events
scheduled for a virtual time wait in one queue, and when nothing else can run the clock
jumps to the first of them::

    runner = OrchestrationRunner("function_app.py", {"prepare": prepare_stub, "publish": publish_stub})
    result = runner.run("approval", {"hours": 6}, events=[ExternalEvent("Approval", at=timedelta(hours=1))])
    assert result.runtime_status == "Completed" and result.elapsed == timedelta(hours=1)

Errors: ``InProcessError`` is the base; ``ActivityNotReplacedError`` (an activity the test
gave no callable for), ``UnknownFunctionError`` (no such orchestrator or activity in the
app) and ``RunawayOrchestrationError`` (a run past its episode or continue_as_new bound).
"""

from __future__ import annotations

import asyncio
import hashlib
import heapq
import inspect
import itertools
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from .activities import decode_input, encode_output, task_completed, task_raised
from .app_loader import ACTIVITY_TRIGGER, ORCHESTRATION_TRIGGER, FunctionIndex, FunctionInfo, index_app
from .history import EVENT_NAMES, EventType, event, iso, parse_iso
from .orchestration import (
    COMPLETED,
    FAILED,
    Activity,
    Episode,
    Instance,
    Message,
    StartRequest,
    activity_message,
    new_instance,
    next_batch,
    split_stale,
)

# A fixed start keeps runs deterministic: the same test sees the same timestamps every time.
DEFAULT_START = datetime(2024, 1, 1, tzinfo=UTC)
DEFAULT_INSTANCE_ID = "test-instance"
# Every episode replays the whole history and the SDK parses each event again, so a runaway
# orchestration costs the square of its episodes: 200 episodes end one in seconds, and a test
# that really needs more says so.
DEFAULT_MAX_EPISODES = 200
DEFAULT_MAX_EXECUTIONS = 100

ActivityStub = Callable[[Any], Any]
StatusPredicate = Callable[[Any], bool]


class InProcessError(Exception):
    """An in-process run cannot go on; the message says what to change in the test."""


class ActivityNotReplacedError(InProcessError):
    """An orchestration called an activity the test gave no callable for."""

    def __init__(self, name: str, instance_id: str, known: bool) -> None:
        hint = f"give it one with runner.activity({name!r}, fn)" if known else "the app has no such activity either"
        super().__init__(f"activity {name!r} (called by {instance_id}) is not replaced in this test; {hint}")
        self.name = name
        self.instance_id = instance_id


class UnknownFunctionError(InProcessError):
    """The test named an orchestrator or activity the app does not define."""

    def __init__(self, kind: str, name: str, known: list[str]) -> None:
        super().__init__(f"the app has no {kind} {name!r}; it has: {', '.join(sorted(known)) or 'none'}")
        self.kind = kind
        self.name = name


class RunawayOrchestrationError(InProcessError):
    """A run went past one of its bounds (``max_episodes``, ``max_executions``) without finishing."""

    def __init__(self, instance_id: str, setting: str, limit: int) -> None:
        what = "episodes in this run" if setting == "max_episodes" else "executions (continue_as_new)"
        super().__init__(f"{instance_id} is still running after {limit} {what}; it may never finish "
                         f"(raise {setting}={limit} if it is meant to go on)")
        self.instance_id = instance_id
        self.setting = setting
        self.limit = limit


@dataclass(frozen=True)
class ExternalEvent:
    """An event the test raises during a run: ``at`` a virtual time after the start, or once ``when`` holds.

    ``when`` gets the target instance's decoded custom status and is asked only while the run
    is otherwise idle (nothing left to run before the next timer) and once a status is set.
    Without ``at`` or ``when`` the event is raised at the start. ``instance_id`` picks a
    sub-orchestration; by default the event goes to the orchestration the run started.
    """

    name: str
    data: Any = None
    at: timedelta | None = None
    when: StatusPredicate | None = None
    instance_id: str | None = None

    def __post_init__(self) -> None:
        if self.at is not None and self.when is not None:
            raise ValueError(f"event {self.name!r}: give at= or when=, not both")
        if self.at is not None and self.at < timedelta(0):
            raise ValueError(f"event {self.name!r}: at={self.at} is before the start")


@dataclass(frozen=True)
class ActivityCall:
    """One activity call: its name, decoded input, the calling instance and the virtual time since the start."""

    name: str
    input: Any
    instance_id: str
    at: timedelta


@dataclass
class InstanceResult:
    """Where one orchestration instance ended up (``output`` only when Completed, ``failure`` when Failed)."""

    instance_id: str
    name: str
    runtime_status: str
    output: Any
    failure: str | None
    custom_status: Any
    executions: int  # 1, plus one per continue_as_new
    history: list[dict[str, Any]] = field(repr=False)  # the current execution's history events

    @property
    def event_names(self) -> list[str]:
        """The history's event types by name ("TaskScheduled", "TimerFired", ...), in order."""
        return [EVENT_NAMES.get(e["EventType"], str(e["EventType"])) for e in self.history]


@dataclass
class RunResult(InstanceResult):
    """The run's orchestration, plus what happened around it."""

    activity_calls: list[ActivityCall] = field(repr=False)  # in the order they were made, all instances
    elapsed: timedelta  # virtual time from the start to the last thing that happened
    sub_orchestrations: dict[str, InstanceResult]  # by instance id
    undelivered_events: list[ExternalEvent]  # their target was gone or never matched, or the run ended first
    episodes: int

    @property
    def activity_names(self) -> list[str]:
        """The names of the activities called, in order."""
        return [call.name for call in self.activity_calls]

    def inputs_to(self, name: str) -> list[Any]:
        """The decoded inputs of every call to activity ``name``, in order."""
        return [call.input for call in self.activity_calls if call.name == name]


def load_app(app_path: str | Path) -> FunctionIndex:
    """Index an app under a module name of its own, so two apps called function_app.py don't replace each other."""
    resolved = Path(app_path).resolve()
    digest = hashlib.sha1(str(resolved).encode(), usedforsecurity=False).hexdigest()[:12]
    return index_app(resolved, module_name=f"{resolved.stem}_devhost_{digest}")


class OrchestrationRunner:
    """Runs an app's orchestrators in this process, with the test's activity callables and a virtual clock."""

    def __init__(self, app: str | Path | FunctionIndex, activities: Mapping[str, ActivityStub] | None = None, *,
                 start_time: datetime = DEFAULT_START, max_episodes: int = DEFAULT_MAX_EPISODES,
                 max_executions: int = DEFAULT_MAX_EXECUTIONS) -> None:
        if start_time.tzinfo is None:
            raise ValueError(f"start_time must be timezone-aware (UTC), got {start_time!r}")
        self.index = app if isinstance(app, FunctionIndex) else load_app(app)
        self.start_time = start_time.astimezone(UTC)
        self.max_episodes = max_episodes
        self.max_executions = max_executions
        self.stubs: dict[str, ActivityStub] = {}
        for name, fn in (activities or {}).items():
            self.activity(name, fn)

    def activity(self, name: str, fn: ActivityStub) -> None:
        """Replace activity ``name`` with ``fn``: it gets the decoded input and returns a JSON-able value."""
        self._function(ACTIVITY_TRIGGER, name)
        self.stubs[name] = fn

    def real_activity(self, name: str) -> None:
        """Run the app's own function for activity ``name`` (an async one with ``asyncio.run``)."""
        info = self._function(ACTIVITY_TRIGGER, name)

        def call(value: Any) -> Any:
            out = info.func(**{info.trigger_param: value})
            return asyncio.run(out) if inspect.iscoroutine(out) else out

        self.stubs[name] = call

    def run(self, name: str, input: Any = None, *, events: Sequence[ExternalEvent] = (),
            instance_id: str = DEFAULT_INSTANCE_ID) -> RunResult:
        """Run orchestration ``name`` on ``input`` until it finishes or nothing more can happen."""
        self._function(ORCHESTRATION_TRIGGER, name)
        return _Run(self, events, instance_id).execute(name, input)

    def _function(self, trigger_type: str, name: str) -> FunctionInfo:
        info = self.index.durable(name, trigger_type)
        if info is None:
            kind = "activity" if trigger_type == ACTIVITY_TRIGGER else "orchestrator"
            raise UnknownFunctionError(kind, name, [f.durable_name for f in self.index.of_type(trigger_type)])
        return info

    def orchestrator(self, name: str) -> Callable[[str], str] | None:
        """The SDK's handle for orchestrator ``name`` (what ``Episode`` replays), or None."""
        info = self.index.durable(name, ORCHESTRATION_TRIGGER)
        return None if info is None else info.func


_Queued = tuple[datetime, int, Message | ExternalEvent]


class _Run:
    """One run's state: instances, their deliverable messages, and what waits for a virtual time."""

    def __init__(self, runner: OrchestrationRunner, events: Sequence[ExternalEvent], root_id: str) -> None:
        self.runner = runner
        self.root_id = root_id
        self.now = runner.start_time
        self.instances: dict[str, Instance] = {}
        self.executions: dict[str, int] = {}
        self.pending: dict[str, list[Message]] = {}
        self.ready: dict[str, None] = {}  # insertion-ordered set: instances to run, first come first served
        self.queue: list[_Queued] = []
        self.tiebreak = itertools.count()
        self.watched = [e for e in events if e.when is not None]
        self.undelivered: list[ExternalEvent] = []
        self.calls: list[ActivityCall] = []
        self.episodes = 0
        for ev in events:
            if ev.when is None:
                self._push(self.now + (ev.at or timedelta(0)), ev)

    def execute(self, name: str, input_: Any) -> RunResult:
        """Start the root instance and run until it is finished or stuck."""
        # Stored as the SDK's client posts it: a JSON string holding the input's JSON (see context_input).
        token = None if input_ is None else json.dumps(json.dumps(input_))
        self._start(StartRequest(self.root_id, name, token))
        root = self.instances[self.root_id]
        while not root.terminal:
            self._release_due()
            if self.ready:
                self._process(next(iter(self.ready)))
            elif not self._raise_watched() and not self._advance_clock():
                break  # waiting for something no one will send
        return self._result(root)

    # -- time and delivery -----------------------------------------------------------------
    def _push(self, at: datetime, item: Message | ExternalEvent) -> None:
        heapq.heappush(self.queue, (at, next(self.tiebreak), item))

    def _enqueue(self, msg: Message) -> None:
        if msg.visible_at and parse_iso(msg.visible_at) > self.now:
            self._push(parse_iso(msg.visible_at), msg)
        else:
            self.pending.setdefault(msg.instance_id, []).append(msg)
            self.ready[msg.instance_id] = None

    def _release_due(self) -> None:
        while self.queue and self.queue[0][0] <= self.now:
            _, _, item = heapq.heappop(self.queue)
            if isinstance(item, ExternalEvent):
                self._raise(item)
            else:
                self._enqueue(item)

    def _advance_clock(self) -> bool:
        """Jump to the next timer or scheduled event; False if there is none."""
        if not self.queue:
            return False
        self.now = max(self.now, self.queue[0][0])
        return True

    def _raise(self, ev: ExternalEvent) -> None:
        # As the HTTP raiseEvent API does: the data is the event's JSON, decoded once by the SDK.
        iid = ev.instance_id or self.root_id
        inst = self.instances.get(iid)
        if inst is None or inst.terminal:
            self.undelivered.append(ev)
            return
        data = None if ev.data is None else json.dumps(ev.data)
        body = event(EventType.EVENT_RAISED, -1, self.now, Name=ev.name, Input=data)
        self._enqueue(Message(iid, body, visible_at=iso(self.now)))

    def _raise_watched(self) -> bool:
        """Raise the watched events whose condition holds now; True if any was raised."""
        raised = False
        for ev in list(self.watched):
            inst = self.instances.get(ev.instance_id or self.root_id)
            if inst is None or inst.terminal or inst.custom_status is None or ev.when is None:
                continue
            if ev.when(json.loads(inst.custom_status)):
                self.watched.remove(ev)
                self._raise(ev)
                raised = True
        return raised

    # -- episodes --------------------------------------------------------------------------
    def _process(self, instance_id: str) -> None:
        """Run one episode for the instance on its deliverable messages, as the engine does."""
        del self.ready[instance_id]
        msgs = self.pending.pop(instance_id, [])
        inst = self.instances.get(instance_id)
        if inst is None or inst.terminal:
            return  # late messages for a finished instance are dropped, as in the engine
        current, _stale = split_stale(inst, msgs)
        chosen, rest = next_batch(inst, current)
        if rest:
            self.pending[instance_id] = rest
            if chosen:
                self.ready[instance_id] = None
        if not chosen:
            return
        self.episodes += 1
        if self.episodes > self.runner.max_episodes:
            raise RunawayOrchestrationError(instance_id, "max_episodes", self.runner.max_episodes)
        result = Episode(inst, self.now, self.runner.orchestrator).run(chosen)
        if result.reset_history:
            self.executions[instance_id] += 1
            if self.executions[instance_id] > self.runner.max_executions:
                raise RunawayOrchestrationError(instance_id, "max_executions", self.runner.max_executions)
        inst.updated_at = iso(self.now)
        for activity in result.activities:
            self._enqueue(activity_message(activity, self._call(activity), self.now))
        for msg in result.messages:
            if msg.body.get("EventType") == EventType.TIMER_FIRED:
                msg.body["ExecutionId"] = inst.execution_id  # a timer of an earlier execution is stale
            self._enqueue(msg)
        for req in result.starts:
            self._start(req)

    def _call(self, activity: Activity) -> dict[str, Any]:
        """Call the test's callable for the activity; its TaskCompleted or TaskFailed event."""
        stub = self.runner.stubs.get(activity.name)
        if stub is None:
            known = self.runner.index.durable(activity.name, ACTIVITY_TRIGGER) is not None
            raise ActivityNotReplacedError(activity.name, activity.instance_id, known)
        try:
            # Decoded twice so that a callable that mutates its input cannot change the record.
            self.calls.append(ActivityCall(activity.name, decode_input(activity), activity.instance_id,
                                           self.now - self.runner.start_time))
            return task_completed(activity, encode_output(stub(decode_input(activity))), self.now)
        except Exception as exc:  # the callable raised: TaskFailed, as the host reports a failed activity
            return task_raised(activity, exc, self.now)

    def _start(self, req: StartRequest) -> None:
        existing = self.instances.get(req.instance_id)
        if existing is not None and not existing.terminal:
            # The same refusal the engine gives (409), which fails the parent's task.
            reason = (f"An orchestration instance with the ID '{req.instance_id}' is already {existing.status}; "
                      "start it again once it has finished.")
            failed = event(EventType.SUB_ORCHESTRATION_INSTANCE_FAILED, -1, self.now,
                           TaskScheduledId=req.parent_task_id, Reason=reason, Details=None)
            self._enqueue(Message(str(req.parent_id), failed, visible_at=iso(self.now)))
            return
        inst, started = new_instance(req, self.now)
        self.instances[inst.instance_id] = inst
        self.executions[inst.instance_id] = 1
        self.pending.pop(inst.instance_id, None)
        self._enqueue(started)

    # -- the result ------------------------------------------------------------------------
    def _summary(self, inst: Instance) -> dict[str, Any]:
        output = json.loads(inst.output) if inst.output is not None else None
        return {
            "instance_id": inst.instance_id,
            "name": inst.name,
            "runtime_status": inst.status,
            "output": output if inst.status == COMPLETED else None,
            "failure": str(output) if inst.status == FAILED else None,
            "custom_status": None if inst.custom_status is None else json.loads(inst.custom_status),
            "executions": self.executions[inst.instance_id],
            "history": list(inst.history),
        }

    def _result(self, root: Instance) -> RunResult:
        waiting = [item for _, _, item in sorted(self.queue) if isinstance(item, ExternalEvent)]
        return RunResult(
            **self._summary(root),
            activity_calls=list(self.calls),
            elapsed=self.now - self.runner.start_time,
            sub_orchestrations={iid: InstanceResult(**self._summary(inst))
                                for iid, inst in self.instances.items() if iid != self.root_id},
            undelivered_events=self.undelivered + waiting + self.watched,
            episodes=self.episodes,
        )
