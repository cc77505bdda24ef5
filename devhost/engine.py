"""The durable engine: one thread that owns all orchestration state and the store's writer.

Everything that changes orchestration state is a command posted to this thread: an
HTTP call (start, raise event, terminate...), an activity's result, the clock moving.
The thread collects what is ready, runs the episodes (the SDK replays each
orchestrator), commits the whole batch in one transaction, then answers the callers
and hands new activities to the activity runner. Work leaves the engine only after
it is committed, so a crash at any point replays from the last commit.
"""

from __future__ import annotations

import contextlib
import dataclasses
import heapq
import itertools
import json
import logging
import queue
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .clock import Clock
from .entities import (
    ENTITY_PREFIX,
    EntityLookup,
    EntityRequestError,
    OperationRequest,
    entity_id,
    is_entity_id,
    new_request,
    request_body,
    run_batch,
    split_entity_id,
)
from .history import EventType, event, iso, parse_iso
from .orchestration import (
    PENDING,
    RUNNING,
    SUSPENDED,
    TERMINATED,
    Activity,
    Episode,
    Instance,
    Message,
    OrchestratorLookup,
    StartRequest,
    activity_message,
    new_instance,
    next_batch,
    split_stale,
)
from .store import Batch, Store

log = logging.getLogger("devhost.engine")


class EngineError(Exception):
    """A management call cannot be carried out; ``status`` is the HTTP status Azure uses for it."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class _Command:
    fn: Callable[[Batch], Any]
    future: Future[Any]


ActivitySink = Callable[[int, Activity], None]
_ENTITY_CACHE_LIMIT = 10_000  # entity states kept in memory between batches


class Engine:
    """Owns active instances, pending messages and timers; runs episodes in batches."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        lookup: OrchestratorLookup,
        max_batch: int = 50,
        entity_lookup: EntityLookup | None = None,
        entity_batch_size: int = 5000,
        default_version: str = "",
    ) -> None:
        self.store = store
        self.clock = clock
        self.lookup = lookup
        self.max_batch = max_batch
        self.entity_lookup: EntityLookup = entity_lookup or (lambda name: None)
        self.entity_batch_size = entity_batch_size  # host.json maxEntityOperationBatchSize
        self.default_version = default_version  # host.json defaultVersion: a new orchestration's version
        self._entity_states: dict[str, str | None] = {}  # committed (or about to be) state by entity id
        self.entity_operations = 0
        self.instances: dict[str, Instance] = {}
        self._pending: dict[str, list[Message]] = {}
        self._timers: list[tuple[str, int, Message]] = []
        self._tiebreak = itertools.count()
        self._ready: dict[str, None] = {}  # insertion-ordered set
        self._inbox: queue.Queue[_Command | tuple[int, Message] | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._sink: ActivitySink | None = None
        self._orchestrator_names: set[str] = set()
        self.episodes = 0
        clock.on_advance(lambda: self._inbox.put(_Command(lambda b: None, Future())))

    # -- lifecycle -------------------------------------------------------------------------
    def start(self, sink: ActivitySink) -> None:
        """Load state from the store, re-dispatch unfinished work, and start the engine thread."""
        self._sink = sink
        instances, messages, work = self.store.load_active()
        self.instances = instances
        for msg in messages:
            self._enqueue(msg)
        self._thread = threading.Thread(target=self._run, name="devhost-engine", daemon=True)
        self._thread.start()
        for work_id, activity in work:
            sink(work_id, activity)
        log.info("engine started: %d active instances, %d messages, %d activities re-dispatched",
                 len(instances), len(messages), len(work))

    def stop(self) -> None:
        """Finish the current batch and stop the thread."""
        self._stopping = True
        self._inbox.put(None)
        if self._thread is not None:
            self._thread.join(timeout=10)

    # -- called from other threads ---------------------------------------------------------
    def call(self, fn: Callable[[Batch], Any]) -> Future[Any]:
        """Run ``fn`` on the engine thread; the future resolves once its changes are committed."""
        fut: Future[Any] = Future()
        self._inbox.put(_Command(fn, fut))
        return fut

    def complete_activity(self, work_id: int, message: Message) -> None:
        """An activity finished: its TaskCompleted/TaskFailed event goes to the instance."""
        self._inbox.put((work_id, message))

    # -- the thread ------------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stopping:
            timeout = self._wait_seconds()
            items: list[Any] = []
            with contextlib.suppress(queue.Empty):
                items.append(self._inbox.get(timeout=timeout))
            while True:
                try:
                    items.append(self._inbox.get_nowait())
                except queue.Empty:
                    break
            try:
                self._step(items)
            except Exception:  # keep serving; the batch was rolled back and will be retried from the store
                log.exception("engine step failed")

    def _wait_seconds(self) -> float | None:
        if self._ready:
            return 0.0
        if not self._timers:
            return 1.0
        due = parse_iso(self._timers[0][0])
        return max(0.0, min(1.0, (due - self.clock.now()).total_seconds()))

    def _step(self, items: list[Any]) -> None:
        batch = Batch()
        commands: list[tuple[_Command, Any, BaseException | None]] = []
        for item in items:
            if item is None:
                continue
            if isinstance(item, _Command):
                try:
                    commands.append((item, item.fn(batch), None))
                except Exception as failure:  # reported to the caller, never kills the engine
                    commands.append((item, None, failure))
            else:
                work_id, msg = item
                msg.work_id = work_id
                self._pending.setdefault(msg.instance_id, []).append(msg)
                self._ready[msg.instance_id] = None
        self._release_due_timers()
        dispatched: list[tuple[Activity, list[int]]] = []
        processed = 0
        while self._ready and processed < self.max_batch:
            instance_id = next(iter(self._ready))
            del self._ready[instance_id]
            processed += self._process(instance_id, batch)
        dispatched = list(batch.work)
        if not batch.empty:
            try:
                self.store.commit(batch)
            except BaseException:
                self._entity_states.clear()  # rolled back: read entity states from the store again
                raise
        if len(self._entity_states) > _ENTITY_CACHE_LIMIT:
            self._entity_states.clear()  # everything in it is committed: the store has it
        for msg in batch.messages:
            self._enqueue(msg)
        for cmd, result, exc in commands:
            if exc is not None:
                cmd.future.set_exception(exc)
            else:
                cmd.future.set_result(result)
        if self._sink is not None:
            for activity, ids in dispatched:
                self._sink(ids[0], activity)

    def _enqueue(self, msg: Message) -> None:
        if msg.visible_at and parse_iso(msg.visible_at) > self.clock.now():
            heapq.heappush(self._timers, (msg.visible_at, next(self._tiebreak), msg))
        else:
            self._pending.setdefault(msg.instance_id, []).append(msg)
            self._ready[msg.instance_id] = None

    def _release_due_timers(self) -> None:
        now = iso(self.clock.now())
        while self._timers and self._timers[0][0] <= now:
            _, _, msg = heapq.heappop(self._timers)
            self._pending.setdefault(msg.instance_id, []).append(msg)
            self._ready[msg.instance_id] = None

    def _consume(self, batch: Batch, msgs: list[Message]) -> None:
        for msg in msgs:
            if msg.msg_id is not None:
                batch.consumed.append(msg.msg_id)
            if msg.work_id is not None:
                batch.retired_work.append(msg.work_id)

    def _process(self, instance_id: str, batch: Batch) -> int:
        """Run one episode for the instance if it has deliverable messages. Returns 1 if it ran."""
        if is_entity_id(instance_id):
            return self._process_entity(instance_id, batch)
        msgs = self._pending.pop(instance_id, [])
        inst = self.instances.get(instance_id)
        if inst is None or inst.terminal:
            self._consume(batch, msgs)  # the instance is gone or finished: late messages are dropped
            return 0
        current, stale = split_stale(inst, msgs)
        self._consume(batch, stale)
        if inst.suspended:
            if current:
                self._pending[instance_id] = current
            return 0
        chosen, rest = next_batch(inst, current)
        if rest:
            self._pending[instance_id] = rest
            if chosen:
                self._ready[instance_id] = None
        if not chosen:
            return 0
        self._consume(batch, chosen)
        start = len(inst.history)
        result = Episode(inst, self.clock.now(), self.lookup, entities=True).run(chosen)
        self.episodes += 1
        if result.reset_history:
            batch.reset_history(instance_id)
        else:
            batch.add_history(inst, start, result.new_events)
        inst.updated_at = iso(self.clock.now())
        batch.instances[instance_id] = inst
        for activity in result.activities:
            batch.work.append((activity, []))
        for msg in result.messages:
            if msg.body.get("EventType") in (EventType.TIMER_FIRED,):
                msg.body["ExecutionId"] = inst.execution_id
            batch.messages.append(msg)
        for req in result.starts:
            self._start_sub(req, batch)
        if inst.terminal:
            self.instances.pop(instance_id, None)
            self._pending.pop(instance_id, None)
        return 1

    # -- entities --------------------------------------------------------------------------
    def entity_state(self, scheduler_id: str) -> str | None:
        """An entity's state as the engine thread knows it (its cache, else the store)."""
        if scheduler_id not in self._entity_states:
            self._entity_states[scheduler_id] = self.store.get_entity(scheduler_id)
        return self._entity_states[scheduler_id]

    def _process_entity(self, scheduler_id: str, batch: Batch) -> int:
        """Run one operation batch for the entity: its pending requests, oldest first, up to the batch size.

        The new state, the consumed requests and the responses to callers are committed together,
        so a crash replays the whole batch from the last commit (as the extension does).
        """
        msgs = self._pending.pop(scheduler_id, [])
        chosen, rest = msgs[:self.entity_batch_size], msgs[self.entity_batch_size:]
        if rest:
            self._pending[scheduler_id] = rest
            self._ready[scheduler_id] = None
        self._consume(batch, chosen)
        requests: list[OperationRequest] = []
        for msg in chosen:
            try:
                requests.append(OperationRequest.from_body(msg.body))
            except EntityRequestError as exc:
                log.warning("dropped a message for entity %s: %s", scheduler_id, exc)
        if not requests:
            return 0
        try:
            name, _ = split_entity_id(scheduler_id)
        except EntityRequestError as exc:
            log.warning("dropped %d requests: %s", len(requests), exc)
            return 0
        before = self.entity_state(scheduler_id)
        outcome = run_batch(self.entity_lookup(name), scheduler_id, before, requests, self.clock.now())
        self.entity_operations += len(requests)
        if outcome.state != before:
            self._entity_states[scheduler_id] = outcome.state
            batch.entity_states[scheduler_id] = (outcome.state, iso(self.clock.now()))
        for target, body in outcome.responses:
            batch.messages.append(Message(target, body, visible_at=iso(self.clock.now())))
        return 1

    def cmd_signal_entity(self, name: str, key: str, operation: str, input_: str) -> Future[None]:
        """A one-way operation request from a client (the HTTP API or the SDK's ``signal_entity``)."""
        def fn(batch: Batch) -> None:
            if self.entity_lookup(name) is None:
                raise EngineError(404, f"No entity function named '{name}' was found.")
            try:
                target = entity_id(name, key)
            except EntityRequestError as exc:
                raise EngineError(400, str(exc)) from exc
            request = new_request(operation, input_, signal=True)
            batch.messages.append(Message(target, request_body(request, self.clock.now()),
                                          visible_at=iso(self.clock.now())))
        return self.call(fn)

    # -- starting instances ----------------------------------------------------------------
    def _new_instance(self, req: StartRequest, batch: Batch) -> Instance:
        if is_entity_id(req.instance_id):
            raise EngineError(400, f"Orchestration instance ids must not start with '{ENTITY_PREFIX}' "
                                   f"(reserved for entities): {req.instance_id!r}")
        existing = self.instances.get(req.instance_id)
        if existing is not None and not existing.terminal:
            raise EngineError(409, f"An orchestration instance with the ID '{req.instance_id}' is already "
                                   f"{existing.status}; start it again once it has finished.")
        stored = self.store.get_instance(req.instance_id) if existing is None else existing
        if stored is not None and not stored.terminal and req.instance_id not in batch.deleted_instances:
            raise EngineError(409, f"An orchestration instance with the ID '{req.instance_id}' already exists "
                                   f"with status {stored.status}.")
        if stored is not None:
            batch.deleted_instances.append(req.instance_id)
            batch.history_appends.pop(req.instance_id, None)
        if req.version is None:  # the client or the parent gave none: the host's defaultVersion
            req = dataclasses.replace(req, version=self.default_version)
        inst, started = new_instance(req, self.clock.now())
        self.instances[inst.instance_id] = inst
        self._pending.pop(inst.instance_id, None)
        batch.instances[inst.instance_id] = inst
        batch.messages.append(started)
        return inst

    def _start_sub(self, req: StartRequest, batch: Batch) -> None:
        try:
            self._new_instance(req, batch)
        except EngineError as exc:
            failed = event(EventType.SUB_ORCHESTRATION_INSTANCE_FAILED, -1, self.clock.now(),
                           TaskScheduledId=req.parent_task_id, Reason=str(exc), Details=None)
            batch.messages.append(Message(str(req.parent_id), failed, visible_at=iso(self.clock.now())))

    # -- commands (run on the engine thread through ``call``) ------------------------------
    def cmd_start(self, name: str, instance_id: str | None, input_: str | None,
                  version: str | None = None) -> Future[Instance]:
        """Start an orchestration (``version``: the client's, else the host's defaultVersion); resolves to it."""
        if name not in self._orchestrator_names and self.lookup(name) is None:
            fut: Future[Instance] = Future()
            fut.set_exception(EngineError(400, f"The function '{name}' doesn't exist, is disabled, or is not an "
                                               "orchestrator function. Additional info: devhost"))
            return fut
        self._orchestrator_names.add(name)
        iid = instance_id or uuid.uuid4().hex
        return self.call(lambda b: self._new_instance(StartRequest(iid, name, input_, version=version), b))

    def _active(self, instance_id: str) -> Instance:
        inst = self.instances.get(instance_id)
        if inst is not None:
            return inst
        stored = self.store.get_instance(instance_id)
        if stored is None:
            raise EngineError(404, f"No instance with ID '{instance_id}' found.")
        raise EngineError(410, f"Instance '{instance_id}' is {stored.status}: either completed or failed.")

    def cmd_raise_event(self, instance_id: str, name: str, data: str | None) -> Future[None]:
        """Deliver an external event (EventRaised) to a running instance."""
        def fn(batch: Batch) -> None:
            self._active(instance_id)
            body = event(EventType.EVENT_RAISED, -1, self.clock.now(), Name=name, Input=data)
            batch.messages.append(Message(instance_id, body, visible_at=iso(self.clock.now())))
        return self.call(fn)

    def cmd_terminate(self, instance_id: str, reason: str) -> Future[None]:
        """Terminate a running, pending or suspended instance."""
        def fn(batch: Batch) -> None:
            inst = self._active(instance_id)
            inst.status = TERMINATED
            inst.output = json.dumps(reason)
            inst.updated_at = iso(self.clock.now())
            ev = event(EventType.EXECUTION_TERMINATED, -1, self.clock.now(), Input=json.dumps(reason))
            batch.add_history(inst, len(inst.history), [ev])
            inst.history.append(ev)
            batch.instances[instance_id] = inst
            self._consume(batch, self._pending.pop(instance_id, []))
            self.instances.pop(instance_id, None)
        return self.call(fn)

    def cmd_suspend(self, instance_id: str, reason: str, suspend: bool) -> Future[None]:
        """Suspend (or resume) an instance: while suspended, its events wait in the queue."""
        def fn(batch: Batch) -> None:
            inst = self._active(instance_id)
            if inst.suspended == suspend:
                return
            inst.suspended = suspend
            inst.status = SUSPENDED if suspend else (RUNNING if inst.history else PENDING)
            inst.updated_at = iso(self.clock.now())
            etype = EventType.EXECUTION_SUSPENDED if suspend else EventType.EXECUTION_RESUMED
            ev = event(etype, -1, self.clock.now(), Reason=reason)
            if inst.history:
                batch.add_history(inst, len(inst.history), [ev])
                inst.history.append(ev)
            batch.instances[instance_id] = inst
            if not suspend and instance_id in self._pending:
                self._ready[instance_id] = None
        return self.call(fn)

    def cmd_rewind(self, instance_id: str, reason: str) -> Future[None]:
        """Rewind a Failed instance: drop its failed task results and run those tasks again."""
        def fn(batch: Batch) -> None:
            if instance_id in self.instances:
                raise EngineError(410, "The rewind operation is only supported on failed orchestration instances.")
            inst = self.store.get_instance(instance_id)
            if inst is None:
                raise EngineError(404, f"No instance with ID '{instance_id}' found.")
            if inst.status != "Failed":
                raise EngineError(410, "The rewind operation is only supported on failed orchestration instances.")
            history = self.store.get_history(instance_id)
            failed_ids = {e.get("TaskScheduledId") for e in history if e["EventType"] == EventType.TASK_FAILED}
            scheduled = {e["EventId"]: e for e in history if e["EventType"] == EventType.TASK_SCHEDULED}
            # keep everything up to the last episode that did not fail, minus the failed task results
            kept = [e for e in history if e["EventType"] not in (EventType.TASK_FAILED, EventType.EXECUTION_FAILED)]
            while kept and kept[-1]["EventType"] == EventType.ORCHESTRATOR_COMPLETED:
                kept.pop()
            kept.append(event(EventType.ORCHESTRATOR_COMPLETED, -1, self.clock.now()))
            inst.history = kept
            inst.status = RUNNING
            inst.output = None
            inst.retries = {}
            inst.updated_at = iso(self.clock.now())
            batch.reset_history(instance_id)
            batch.add_history(inst, 0, kept)
            batch.instances[instance_id] = inst
            self.instances[instance_id] = inst
            for task_id in sorted(i for i in failed_ids if i is not None):
                sched = scheduled.get(task_id)
                if sched is not None:
                    batch.work.append(
                        (Activity(instance_id, inst.execution_id, task_id, sched["Name"], sched.get("Input")), []))
            log.info("rewound %s (%s): %d failed tasks re-run", instance_id, reason, len(failed_ids))
        return self.call(fn)

    def cmd_purge(self, instance_ids: list[str]) -> Future[int]:
        """Delete finished instances and their history; running ones are left alone."""
        def fn(batch: Batch) -> int:
            deleted = 0
            for iid in instance_ids:
                if iid in self.instances:
                    continue
                if self.store.get_instance(iid) is not None:
                    batch.deleted_instances.append(iid)
                    deleted += 1
            return deleted
        return self.call(fn)

    def cmd_set_meta(self, key: str, value: str) -> Future[None]:
        """Persist a devhost setting (e.g. the virtual clock offset)."""
        def fn(batch: Batch) -> None:
            batch.meta[key] = value
        return self.call(fn)

    def activity_message(self, activity: Activity, body: dict[str, Any], at: datetime) -> Message:
        """Wrap an activity's result event as a message for its instance."""
        return activity_message(activity, body, at)
