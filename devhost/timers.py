"""Timer triggers: NCRONTAB (6 fields, seconds first) or TimeSpan schedules, on devhost's clock.

Follows https://learn.microsoft.com/azure/azure-functions/functions-bindings-timer :
``run_on_startup`` fires once when the host starts; with ``use_monitor`` the last and next
occurrences are kept (SQLite) and an occurrence missed while the host was down fires once
at start with ``past_due=True``. Like Azure's singleton timer, several occurrences that fall
due at once (the virtual clock moved a day) coalesce into one invocation, ``past_due=True``.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import sqlite3
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from azure.functions import timer as func_timer
from croniter import croniter

from .app_loader import TIMER_TRIGGER, FunctionIndex, FunctionInfo
from .clock import Clock
from .history import iso, parse_iso

log = logging.getLogger("devhost.timers")
_TIMESPAN = re.compile(r"^(?:(\d+)\.)?(\d{1,2}):(\d{2}):(\d{2})$")
_SETTING = re.compile(r"^%([^%]+)%$")


class ScheduleError(Exception):
    """A timer schedule is invalid; the message names the function."""


class Schedule:
    """Next occurrence after a moment, for NCRONTAB or TimeSpan."""

    def __init__(self, text: str, function: str) -> None:
        self.text = text
        m = _TIMESPAN.match(text)
        self.interval: timedelta | None = None
        if m:
            days, hours, minutes, seconds = (int(x or 0) for x in m.groups())
            self.interval = timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
            if self.interval.total_seconds() <= 0:
                raise ScheduleError(f"{function}: a TimeSpan schedule must be positive, got {text!r}")
        elif len(text.split()) != 6 or not croniter.is_valid(text, second_at_beginning=True):
            raise ScheduleError(f"{function}: {text!r} is not a 6-field NCRONTAB expression or a TimeSpan")

    def next_after(self, moment: datetime) -> datetime:
        """The first occurrence strictly after ``moment``."""
        if self.interval is not None:
            return moment + self.interval
        return croniter(self.text, moment, second_at_beginning=True).get_next(datetime)  # type: ignore[no-any-return]


class Timers:
    """Fires every timer-triggered function of the app on schedule."""

    def __init__(self, index: FunctionIndex, clock: Clock, settings: dict[str, str], state_dir: Path,
                 client_binding: Any) -> None:
        self.clock = clock
        self.client_binding = client_binding
        self.functions: list[tuple[FunctionInfo, Schedule]] = []
        for fn in index.of_type(TIMER_TRIGGER):
            text = str(fn.trigger.get("schedule", ""))
            m = _SETTING.match(text)
            if m:
                if m.group(1) not in settings:
                    raise ScheduleError(f"{fn.name}: schedule setting {m.group(1)!r} is not set")
                text = settings[m.group(1)]
            self.functions.append((fn, Schedule(text, fn.name)))
        self.db = sqlite3.connect(str(state_dir / "timers.sqlite"), check_same_thread=False, isolation_level=None)
        self.db.execute("CREATE TABLE IF NOT EXISTS timers (name TEXT PRIMARY KEY, last TEXT, next TEXT)")
        self._task: asyncio.Task[None] | None = None
        self.fired: dict[str, int] = {}

    async def start(self) -> None:
        """Fire start-up occurrences, then run the schedule loop."""
        now = self.clock.now()
        for fn, schedule in self.functions:
            row = self.db.execute("SELECT last, next FROM timers WHERE name=?", (fn.name,)).fetchone()
            use_monitor = fn.trigger.get("useMonitor", True)
            if row and use_monitor and row[1] and parse_iso(row[1]) <= now:
                await self._fire(fn, schedule, past_due=True)
            elif fn.trigger.get("runOnStartup"):
                await self._fire(fn, schedule, past_due=False)
            elif not row or not use_monitor:
                self._save(fn.name, None, schedule.next_after(now))
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        """Stop the loop."""
        if self._task is not None:
            self._task.cancel()
        self.db.close()

    def _save(self, name: str, last: datetime | None, nxt: datetime) -> None:
        self.db.execute("INSERT OR REPLACE INTO timers VALUES (?,?,?)", (name, iso(last) if last else None, iso(nxt)))

    async def _fire(self, fn: FunctionInfo, schedule: Schedule, past_due: bool) -> None:
        now = self.clock.now()
        row = self.db.execute("SELECT last FROM timers WHERE name=?", (fn.name,)).fetchone()
        nxt = schedule.next_after(now)
        request = func_timer.TimerRequest(past_due=past_due, schedule_status={
            "Last": row[0] if row and row[0] else None, "Next": iso(nxt), "LastUpdated": iso(now)},
            schedule={"AdjustForDST": True})
        self._save(fn.name, now, nxt)  # saved first: a crash mid-run does not fire it twice
        kwargs: dict[str, Any] = {fn.trigger_param: request}
        for binding in fn.bindings:
            if binding.get("type") == "durableClient":
                kwargs[binding["name"]] = self.client_binding()
        try:
            if fn.is_async:
                await fn.func(**kwargs)
            else:
                await asyncio.get_running_loop().run_in_executor(None, functools.partial(fn.func, **kwargs))
        except Exception:  # a failing timer function is logged; the next occurrence still fires
            log.exception("timer function %s failed", fn.name)
        self.fired[fn.name] = self.fired.get(fn.name, 0) + 1

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(0.1)
            now = self.clock.now()
            for fn, schedule in self.functions:
                row = self.db.execute("SELECT next FROM timers WHERE name=?", (fn.name,)).fetchone()
                if row is None or row[0] is None:
                    self._save(fn.name, None, schedule.next_after(now))
                    continue
                due = parse_iso(row[0])
                if due <= now:
                    # late by more than a scheduling slip: occurrences were missed (clock moved, host busy)
                    await self._fire(fn, schedule, past_due=(now - due) > timedelta(seconds=1))
