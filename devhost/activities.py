"""Runs activity functions: async ones on the event loop, sync ones in a thread pool.

At most ``maxConcurrentActivityFunctions`` run at once. A CPU-bound sync activity
runs in its own thread, so the HTTP surface and other activities keep going.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import traceback
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

from azure.functions import meta
from azure.functions.durable_functions import ActivityTriggerConverter

from .app_loader import ACTIVITY_TRIGGER, FunctionIndex
from .clock import Clock
from .engine import Engine
from .history import EventType, event
from .http_activity import HTTP_ACTIVITY, HttpActivity, HttpCallError
from .orchestration import Activity

log = logging.getLogger("devhost.activities")


def decode_input(activity: Activity) -> Any:
    """The activity's input as its function receives it, decoded as the Python worker does."""
    if activity.input is None:
        return None
    return ActivityTriggerConverter.decode(meta.Datum(activity.input, "json"), trigger_metadata=None)


def encode_output(value: Any) -> str:
    """An activity's return value as the JSON text of its TaskCompleted result."""
    return str(ActivityTriggerConverter.encode(value, expected_type=None).value)


def task_completed(activity: Activity, result: str, at: datetime) -> dict[str, Any]:
    """The TaskCompleted event for the activity's task."""
    return event(EventType.TASK_COMPLETED, -1, at, TaskScheduledId=activity.task_id, Result=result)


def task_failed(activity: Activity, reason: str, details: str, at: datetime) -> dict[str, Any]:
    """The TaskFailed event for the activity's task."""
    return event(EventType.TASK_FAILED, -1, at, TaskScheduledId=activity.task_id, Reason=reason, Details=details)


def task_raised(activity: Activity, exc: Exception, at: datetime) -> dict[str, Any]:
    """The TaskFailed event for an activity function that raised ``exc``, as Azure reports it."""
    return task_failed(activity, f"Activity function '{activity.name}' failed: {type(exc).__name__}: {exc}",
                       "".join(traceback.format_exception(exc)), at)


class ActivityRunner:
    """Receives committed work items from the engine and reports their results back to it."""

    def __init__(self, index: FunctionIndex, engine: Engine, clock: Clock, loop: asyncio.AbstractEventLoop,
                 max_concurrent: int, http: HttpActivity | None = None) -> None:
        self.index = index
        self.http = http  # runs context.call_http (the built-in BuiltIn::HttpActivity); None: not offered
        self.engine = engine
        self.clock = clock
        self.loop = loop
        self._sem = asyncio.Semaphore(max_concurrent)
        self._pool = ThreadPoolExecutor(max_workers=max_concurrent, thread_name_prefix="activity")
        self._tasks: set[asyncio.Task[None]] = set()
        self.completed = 0

    def submit(self, work_id: int, activity: Activity) -> None:
        """Thread-safe: schedule the activity on the loop."""
        self.loop.call_soon_threadsafe(self._spawn, work_id, activity)

    def _spawn(self, work_id: int, activity: Activity) -> None:
        task = self.loop.create_task(self._run(work_id, activity))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, work_id: int, activity: Activity) -> None:
        async with self._sem:
            body = await self._invoke(activity)
        self.completed += 1
        self.engine.complete_activity(work_id, self.engine.activity_message(activity, body, self.clock.now()))

    async def _invoke(self, activity: Activity) -> dict[str, Any]:
        if activity.name == HTTP_ACTIVITY and self.http is not None:
            try:
                result = await self.http.call(activity.input)
            except HttpCallError as exc:  # no answer, or a call devhost cannot make: TaskFailed, as in Azure
                log.info("durable HTTP call failed for %s: %s", activity.instance_id, exc)
                return task_raised(activity, exc, self.clock.now())
            return task_completed(activity, result, self.clock.now())
        fn = self.index.durable(activity.name, ACTIVITY_TRIGGER)
        if fn is None:
            return self._failed(activity, f"The function '{activity.name}' doesn't exist, is disabled, or is not "
                                          "an activity function.", "")
        try:
            kwargs = {fn.trigger_param: decode_input(activity)}
            if fn.is_async:
                value = await fn.func(**kwargs)
            else:
                value = await self.loop.run_in_executor(self._pool, functools.partial(fn.func, **kwargs))
            result = encode_output(value)
        except Exception as exc:  # the user's activity raised: it becomes TaskFailed, as in Azure
            log.info("activity %s failed for %s: %s", activity.name, activity.instance_id, exc)
            return task_raised(activity, exc, self.clock.now())
        return task_completed(activity, result, self.clock.now())

    def _failed(self, activity: Activity, reason: str, details: str) -> dict[str, Any]:
        return task_failed(activity, reason, details, self.clock.now())

    async def close(self) -> None:
        """Stop taking work; running activities are abandoned (they run again after a restart)."""
        for task in list(self._tasks):
            task.cancel()
        self._pool.shutdown(wait=False, cancel_futures=True)
