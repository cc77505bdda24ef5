"""Timer triggers on the virtual clock: run on start-up, catch-up coalescing, and past-due occurrences."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from eglab import TIMER_APP, EventsHost

HOURLY = {"HOURLY_SCHEDULE": "0 0 * * * *"}


def by_time(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(records, key=lambda r: r["recorded_at"])


def test_run_on_startup_fires_once_at_start_without_monitor_status(events_host: Callable[..., EventsHost]) -> None:
    lab = events_host(app=TIMER_APP, env=HOURLY)
    [first] = lab.wait_records("every_hour_from_startup")
    assert first["kind"] == "TimerRequest"
    assert first["past_due"] is False
    assert first["schedule_status"] == {}  # use_monitor=False: no status, as the host sends null
    assert first["schedule"] == {"AdjustForDST": True}
    assert lab.records("hourly") == []  # not due yet, and not run on start-up


def test_advancing_past_one_occurrence_fires_it_on_time(events_host: Callable[..., EventsHost]) -> None:
    lab = events_host(app=TIMER_APP, env=HOURLY)
    lab.host.advance_clock(3600)
    [fired] = lab.wait_records("hourly")
    assert fired["past_due"] is False
    status = fired["schedule_status"]
    assert status["Last"].startswith("0001-01-01")  # never ran before
    assert datetime.fromisoformat(status["Next"]).minute == 0


def test_advancing_a_day_coalesces_into_one_past_due_invocation(events_host: Callable[..., EventsHost]) -> None:
    lab = events_host(app=TIMER_APP, env=HOURLY)
    lab.wait_records("every_hour_from_startup")
    lab.host.advance_clock(24 * 3600)
    [hourly] = lab.wait_records("hourly")
    catch_up = lab.wait_records("every_hour_from_startup", count=2)
    assert hourly["past_due"] is True
    assert by_time(catch_up)[-1]["past_due"] is True
    # One invocation per function for the whole day; the next occurrence is an hour of virtual time away.
    lab.wait_status(lambda s: s["timerInvocations"] == {"hourly": 1, "every_hour_from_startup": 2})
    lab.host.advance_clock(3600)
    lab.wait_records("hourly", count=2)
    lab.wait_status(lambda s: s["timerInvocations"]["hourly"] == 2)
    assert len(lab.records("hourly")) == 2
    assert by_time(lab.records("hourly"))[-1]["past_due"] is False


def test_occurrence_missed_while_down_fires_past_due_at_start(events_host: Callable[..., EventsHost]) -> None:
    lab = events_host(app=TIMER_APP, env={"HOURLY_SCHEDULE": "*/2 * * * * *"})  # every 2 s, monitored
    lab.wait_records("hourly")
    lab.host.stop()
    stopped_at = time.time()
    seen = len(lab.records("hourly"))
    time.sleep(2.5)  # devhost is down while an occurrence passes (real time: the virtual clock runs too)
    lab.host.start()
    records = by_time(lab.wait_records("hourly", count=seen + 1))
    first_after = next(r for r in records if r["recorded_at"] > stopped_at)
    assert first_after["past_due"] is True
    assert datetime.fromisoformat(first_after["schedule_status"]["Next"]).timestamp() < first_after["recorded_at"]
