"""devhost reads timer schedules as NCrontab does (https://github.com/atifaziz/NCrontab), not as classic cron."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from devhost.timers import Schedule, ScheduleError


def occurrences(text: str, start: datetime, n: int) -> list[str]:
    schedule, at, out = Schedule(text, "fn"), start, []
    for _ in range(n):
        at = schedule.next_after(at)
        out.append(at.isoformat())
    return out


def test_the_day_and_the_day_of_week_must_both_match() -> None:
    # classic cron (and croniter's default) fires on 1-7 of each month AND on every Monday; NCrontab only on
    # days that are both: the first Monday of each month
    assert occurrences("0 0 9 1-7 * MON", datetime(2027, 1, 1, tzinfo=UTC), 4) == [
        "2027-01-04T09:00:00+00:00", "2027-02-01T09:00:00+00:00", "2027-03-01T09:00:00+00:00",
        "2027-04-05T09:00:00+00:00"]


@pytest.mark.parametrize(("text", "first"), [
    ("0 0 12 * * Monday", "2027-01-04T12:00:00+00:00"),  # a whole name, or any prefix of one
    ("0 0 12 * Mar *", "2027-03-01T12:00:00+00:00"),
    ("0 0 0 * * M-F", "2027-01-04T00:00:00+00:00"),  # from Friday 1 January 2027: Saturday and Sunday skipped
    ("0 5/15 * * * *", "2027-01-01T00:05:00+00:00"),  # N/S: from N to the field's end
    ("*/20 * * * * *", "2027-01-01T00:00:20+00:00"),
])
def test_ncrontab_syntax_croniter_would_read_otherwise_is_accepted(text: str, first: str) -> None:
    assert occurrences(text, datetime(2027, 1, 1, tzinfo=UTC), 1) == [first]


def test_a_step_from_a_start_value_runs_to_the_end_of_the_field() -> None:
    assert occurrences("0 50/5 0 * * *", datetime(2027, 1, 1, tzinfo=UTC), 3) == [
        "2027-01-01T00:50:00+00:00", "2027-01-01T00:55:00+00:00", "2027-01-02T00:50:00+00:00"]


@pytest.mark.parametrize(("text", "reason"), [
    ("0 0 0 L * *", "'L' is not a day number"),
    ("0 0 0 ? * MON", "'?' is not N, N-M"),
    ("0 0 0 * * MON#1", "'MON#1' is not N, N-M"),
    ("0 0 0 1W * *", "'1W' is not N, N-M"),
    ("H 0 0 * * *", "'H' is not a second number"),
    ("0 0 0 * * 7", "day-of-week 7 is outside 0-6"),
    ("0 0 0 5-1 * *", "range 5-1 runs backwards"),
    ("0 */0 * * * *", "a step must be positive"),
    ("0 0 0 * Smarch *", "'Smarch' is not a month name"),
    ("0 */5 * * *", "5 fields, NCrontab needs 6"),
    ("0 0 0 30 2 *", "never fires"),
])
def test_what_ncrontab_refuses_stops_the_host_with_the_reason(text: str, reason: str) -> None:
    with pytest.raises(ScheduleError, match="function fn: schedule") as caught:
        Schedule(text, "fn")
    assert reason in str(caught.value)
