"""Timer triggers on devhost's clock: NCRONTAB (6 fields, seconds first) or TimeSpan schedules.

Follows https://learn.microsoft.com/azure/azure-functions/functions-bindings-timer and the
timer extension's listener:

- ``schedule`` is ``{second} {minute} {hour} {day} {month} {day-of-week}`` in UTC, read as NCrontab
  (https://github.com/atifaziz/NCrontab, the library the Functions timer uses) reads it: a time must match the
  day AND the day of week (not classic cron's OR), values are numbers or any prefix of an English month or
  day name, ``N/S`` steps from N to the field's end, and cron extensions NCrontab refuses (``L``, ``W``,
  ``?``, ``#``, ``H``, day-of-week 7) are refused; or a TimeSpan
  (``hh:mm:ss``; ``d.hh:mm:ss``; ``dd:hh:mm`` when the first number is 24 or more), or
  ``%Setting%``;
- ``useMonitor`` (default: true when occurrences are at least a minute apart) keeps
  Last/Next/LastUpdated in ``<state>/timers.sqlite``; at start, if the stored Next has passed,
  the function runs once at once with ``past_due=True``; else ``runOnStartup`` runs it once;
- each function is a singleton: one invocation at a time; a failure is logged and the schedule
  goes on (timers do not retry);
- the function gets ``func.TimerRequest`` decoded by ``azure.functions``' own converter, with
  ``schedule_status`` as it stood before the run (empty without the monitor).

Virtual clock: when time jumps past several occurrences at once, they coalesce into one
invocation with ``past_due=True`` (as the single timer would fire once, late); a jump past
exactly one occurrence fires it normally.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import re
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from azure.functions import meta
from azure.functions.timer import TimerRequestConverter
from croniter import CroniterBadDateError, croniter

from .app_loader import DURABLE_CLIENT, TIMER_TRIGGER, FunctionIndex, FunctionInfo
from .clock import Clock
from .config import private_file

log = logging.getLogger("devhost.timers")
_SETTING = re.compile(r"^%([^%]+)%$")
_NEVER = datetime(1, 1, 1, tzinfo=UTC)  # .NET's default(DateTime): "no last run"

# NCrontab's fields (CrontabFieldImpl): name, range, and the names whose prefixes it accepts as values
_FIELDS = (("second", 0, 59, ()), ("minute", 0, 59, ()), ("hour", 0, 23, ()), ("day", 1, 31, ()),
           ("month", 1, 12, ("JANUARY", "FEBRUARY", "MARCH", "APRIL", "MAY", "JUNE", "JULY", "AUGUST", "SEPTEMBER",
                             "OCTOBER", "NOVEMBER", "DECEMBER")),
           ("day-of-week", 0, 6, ("SUNDAY", "MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY")))
_ITEM = re.compile(r"^(?:(?P<star>\*)|(?P<lo>[0-9]+|[A-Za-z]+)(?:-(?P<hi>[0-9]+|[A-Za-z]+))?)(?:/(?P<step>[0-9]+))?$")


class ScheduleError(Exception):
    """A timer schedule is invalid; the message names the function and the schedule."""


def _timespan(text: str) -> timedelta | None:
    """A .NET TimeSpan string as Functions reads it, or None if it is not one."""
    days = 0
    body = text
    m = re.match(r"^(\d+)\.(\d+:\d+(?::\d+)?)$", text)
    if m:
        days, body = int(m.group(1)), m.group(2)
    parts = body.split(":")
    if not all(p.isdigit() for p in parts) or len(parts) not in (2, 3, 4):
        return None
    nums = [int(p) for p in parts]
    if len(parts) == 4:  # d:hh:mm:ss
        return timedelta(days=days + nums[0], hours=nums[1], minutes=nums[2], seconds=nums[3])
    if len(parts) == 3 and not m and nums[0] >= 24:  # "24:00:00" is 24 days: dd:hh:mm
        return timedelta(days=nums[0], hours=nums[1], minutes=nums[2])
    seconds = nums[2] if len(parts) == 3 else 0
    return timedelta(days=days, hours=nums[0], minutes=nums[1], seconds=seconds)


def _value(token: str, name: str, lo: int, hi: int, names: tuple[str, ...]) -> int:
    if token.isdigit():
        value = int(token)
    else:  # NCrontab takes the first name the token is a prefix of, in the field's order
        value = next((i + lo for i, full in enumerate(names) if full.startswith(token.upper())), -1)
        if value < 0:
            raise ValueError(f"{token!r} is not a {name} " + (f"name ({', '.join(names)})" if names else "number"))
    if not lo <= value <= hi:
        raise ValueError(f"{name} {value} is outside {lo}-{hi}")
    return value


def ncrontab(text: str) -> str:
    """The 6-field NCrontab expression ``text`` in the numeric form croniter reads the same way, or ValueError
    saying which field NCrontab would refuse and why."""
    fields = text.split()
    if len(fields) != 6:
        raise ValueError(f"{len(fields)} fields, NCrontab needs 6")
    out = []
    for field, (name, lo, hi, names) in zip(fields, _FIELDS, strict=True):
        items = []
        for item in field.split(","):
            m = _ITEM.match(item)
            if m is None:
                raise ValueError(f"{name} field {field!r}: {item!r} is not N, N-M, * or one of them /step")
            step = int(m["step"]) if m["step"] is not None else None
            if step == 0:
                raise ValueError(f"{name} field {field!r}: a step must be positive")
            if m["star"]:
                first, last = lo, hi
            else:
                first = _value(m["lo"], name, lo, hi, names)
                last = _value(m["hi"], name, lo, hi, names) if m["hi"] else (hi if step else first)
                if first > last:
                    raise ValueError(f"{name} field {field!r}: range {first}-{last} runs backwards")
            items.append(f"{first}-{last}/{step}" if step else (f"{first}-{last}" if first != last else str(first)))
        out.append(",".join(items))
    return " ".join(out)


class Schedule:
    """Occurrences of an NCRONTAB expression or a TimeSpan interval."""

    def __init__(self, text: str, function: str) -> None:
        self.text = text.strip()
        self.cron = ""  # the NCrontab expression in croniter's numeric form
        self.interval = _timespan(self.text)
        if self.interval is not None:
            if self.interval.total_seconds() <= 0:
                raise ScheduleError(f"function {function}: a TimeSpan schedule must be positive, got {text!r}")
        else:
            try:
                self.cron = ncrontab(self.text)
            except ValueError as exc:
                raise ScheduleError(f"function {function}: schedule {text!r} is neither a 6-field NCRONTAB "
                                    "expression ({second} {minute} {hour} {day} {month} {day-of-week}) nor a "
                                    f"TimeSpan (hh:mm:ss): {exc}") from exc
            try:
                self.next_after(datetime(2000, 1, 1, tzinfo=UTC))
            except CroniterBadDateError as exc:
                raise ScheduleError(f"function {function}: schedule {text!r} never fires (no date matches its "
                                    "day, month and day of week)") from exc

    def next_after(self, moment: datetime) -> datetime:
        """The first occurrence strictly after ``moment`` (for a TimeSpan: ``moment`` + interval)."""
        if self.interval is not None:
            return moment + self.interval
        # day_or=False: NCrontab requires the day and the day of week to match (CrontabSchedule.GetNextOccurrence)
        nxt: datetime = croniter(self.cron, moment, second_at_beginning=True, day_or=False).get_next(datetime)
        return nxt

    def monitored_by_default(self, now: datetime) -> bool:
        """useMonitor's default: true unless occurrences come more often than once a minute."""
        first = self.next_after(now)
        return self.next_after(first) - first >= timedelta(minutes=1)


@dataclass
class _Status:
    last: datetime
    next: datetime
    last_updated: datetime


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


class _Timer:
    def __init__(self, fn: FunctionInfo, schedule: Schedule, use_monitor: bool, run_on_startup: bool) -> None:
        self.fn = fn
        self.schedule = schedule
        self.use_monitor = use_monitor
        self.run_on_startup = run_on_startup
        self.status: _Status | None = None
        self.wake = asyncio.Event()


class Timers:
    """Fires the app's timer-triggered functions on schedule."""

    def __init__(self, index: FunctionIndex, clock: Clock, settings: dict[str, str], state_dir: Path,
                 client_binding: Any) -> None:
        self.clock = clock
        self.client_binding = client_binding
        self.state_dir = state_dir
        self.timers: list[_Timer] = []
        now = clock.now()
        for fn in index.of_type(TIMER_TRIGGER):
            text = str(fn.trigger.get("schedule") or "")
            m = _SETTING.match(text)
            if m:
                if not settings.get(m.group(1)):
                    raise ScheduleError(f"function {fn.name}: schedule setting {m.group(1)!r} is not set")
                text = settings[m.group(1)]
            schedule = Schedule(text, fn.name)
            monitor = fn.trigger.get("useMonitor")
            self.timers.append(_Timer(fn, schedule, schedule.monitored_by_default(now) if monitor is None
                                      else bool(monitor), bool(fn.trigger.get("runOnStartup", False))))
        self.db: sqlite3.Connection | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self.fired: dict[str, int] = {}
        clock.on_advance(self._poke)

    def _poke(self) -> None:
        if self._loop is not None:
            for timer in self.timers:
                self._loop.call_soon_threadsafe(timer.wake.set)

    # -- schedule monitor (SQLite) ---------------------------------------------------------
    def _load(self, timer: _Timer) -> _Status | None:
        assert self.db is not None
        row = self.db.execute("SELECT schedule, last, next, last_updated FROM timers WHERE name=?",
                              (timer.fn.name,)).fetchone()
        if row is None or row[0] != timer.schedule.text:  # a changed schedule starts afresh
            return None
        return _Status(*(datetime.fromisoformat(v) for v in row[1:]))

    def _save(self, timer: _Timer) -> None:
        assert self.db is not None and timer.status is not None
        s = timer.status
        self.db.execute("INSERT OR REPLACE INTO timers VALUES (?,?,?,?,?)",
                        (timer.fn.name, timer.schedule.text, _iso(s.last), _iso(s.next), _iso(s.last_updated)))

    # -- lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        """Decide each timer's start-up invocation, then run one loop per timer."""
        self._loop = asyncio.get_running_loop()
        self.db = sqlite3.connect(str(private_file(self.state_dir / "timers.sqlite")), isolation_level=None,
                                  check_same_thread=False)
        self.db.execute("CREATE TABLE IF NOT EXISTS timers (name TEXT PRIMARY KEY, schedule TEXT NOT NULL, "
                        "last TEXT NOT NULL, next TEXT NOT NULL, last_updated TEXT NOT NULL)")
        now = self.clock.now()
        for timer in self.timers:
            startup = None
            if timer.use_monitor:
                timer.status = self._load(timer)
                if timer.status is not None and now > timer.status.next:
                    startup = "past_due"
            if startup is None and timer.run_on_startup:
                startup = "run_on_startup"
            if timer.status is None:
                timer.status = _Status(_NEVER, timer.schedule.next_after(now), _NEVER)
            log.info("timer %s: schedule %r, next %s%s", timer.fn.name, timer.schedule.text, _iso(timer.status.next),
                     f", {startup} now" if startup else "")
            self._tasks.append(asyncio.create_task(self._run(timer, startup), name=f"timer-{timer.fn.name}"))

    async def stop(self) -> None:
        """Stop the loops."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.db is not None:
            self.db.close()

    async def _run(self, timer: _Timer, startup: str | None) -> None:
        if startup is not None:
            await self._fire(timer, past_due=startup == "past_due")
        while True:
            assert timer.status is not None
            now = self.clock.now()
            due = timer.status.next
            if now >= due:
                # Several occurrences passed at once (the clock jumped): one late, past-due invocation.
                await self._fire(timer, past_due=timer.schedule.next_after(due) <= now)
                continue
            timer.wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(timer.wake.wait(), timeout=min((due - now).total_seconds(), 1.0))

    async def _fire(self, timer: _Timer, past_due: bool) -> None:
        fn = timer.fn
        assert timer.status is not None
        status = {"Last": _iso(timer.status.last), "Next": _iso(timer.status.next),
                  "LastUpdated": _iso(timer.status.last_updated)} if timer.use_monitor else None
        info = {"Schedule": {"AdjustForDST": True}, "ScheduleStatus": status, "IsPastDue": past_due}
        request = TimerRequestConverter.decode(meta.Datum(json.dumps(info), "json"), trigger_metadata={})
        kwargs: dict[str, Any] = {fn.trigger_param: request}
        for binding in fn.input_bindings(DURABLE_CLIENT):
            kwargs[binding["name"]] = self.client_binding()
        started = self.clock.now()
        try:
            if fn.is_async:
                await fn.func(**kwargs)
            else:
                await asyncio.get_running_loop().run_in_executor(None, functools.partial(fn.func, **kwargs))
        except Exception:  # timers do not retry: log it, and the next occurrence still fires
            log.exception("timer function %s failed", fn.name)
        self.fired[fn.name] = self.fired.get(fn.name, 0) + 1
        timer.status = _Status(started, timer.schedule.next_after(started), started)
        if timer.use_monitor:
            self._save(timer)
