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


# Cases from NCrontab's own test suite (src/NCrontab.Tests/CrontabScheduleTests.cs, Evaluations): five-field
# expressions there, given here a leading seconds field of 0 (the Functions form); (after, schedule, next).
NCRONTAB_CASES = [
    ("2003-01-01 00:00:00", "0 45-47,48,49 * * * *", "2003-01-01 00:45:00"),
    ("2003-01-01 00:49:00", "0 45-47,48,49 * * * *", "2003-01-01 01:45:00"),
    ("2003-01-01 00:57:00", "0 2/5 * * * *", "2003-01-01 01:02:00"),
    ("2003-01-01 00:00:49", "45-47,48,49 * * * * *", "2003-01-01 00:01:45"),
    ("2003-01-01 00:00:57", "2/5 * * * * *", "2003-01-01 00:01:02"),
    ("2003-12-20 10:00:00", "0 * 3/4 * * *", "2003-12-20 11:00:00"),
    ("2003-01-07 00:00:00", "0 30 * 1 * *", "2003-02-01 00:30:00"),
    ("2003-07-10 00:00:00", "0 * * 30,31 * *", "2003-07-30 00:00:00"),
    ("2000-01-31 00:00:00", "0 0 0 15,30,31 * *", "2000-02-15 00:00:00"),
    ("2000-04-30 00:00:00", "0 0 0 15,30,31 * *", "2000-05-15 00:00:00"),
    ("2003-12-01 05:00:00", "0 10 * * 6 *", "2004-06-01 00:10:00"),
    ("2002-07-01 05:00:00", "0 10 * * February,April-Jun *", "2003-02-01 00:10:00"),
    ("1988-03-11 14:23:00", "0 20 * * january,FeB,Mar,april,May,JuNE,July,Augu,SEPT-October,Nov,DECEM *",
     "1988-03-11 15:20:00"),
    ("2003-06-26 10:00:00", "0 30 6 * * sunday", "2003-06-29 06:30:00"),
    ("2003-06-24 12:01:00", "0 1 12 * * 2", "2003-07-01 12:01:00"),
    ("2003-06-30 18:15:00", "0 15 18 * * Mon", "2003-07-07 18:15:00"),
    ("2003-01-01 12:00:00", "0 45 16 1 * Mon", "2003-09-01 16:45:00"),  # the 1st AND a Monday
    ("2003-09-01 23:45:00", "0 45 16 1 * Mon", "2003-12-01 16:45:00"),
    ("2000-02-29 12:01:00", "0 1 12 29 2 *", "2004-02-29 12:01:00"),
    ("2004-02-29 12:01:00", "0 1 12 28 2 *", "2005-02-28 12:01:00"),
]


@pytest.mark.parametrize(("after", "schedule", "expected"), NCRONTAB_CASES)
def test_occurrences_match_ncrontabs_own_test_suite(after: str, schedule: str, expected: str) -> None:
    start = datetime.fromisoformat(after).replace(tzinfo=UTC)
    assert Schedule(schedule, "fn").next_after(start) == datetime.fromisoformat(expected).replace(tzinfo=UTC)


@pytest.mark.parametrize("schedule", sorted({case[1] for case in NCRONTAB_CASES}))
def test_the_apps_settings_check_accepts_what_devhost_accepts(schedule: str) -> None:
    # the Function App cannot import devhost (it is not deployed), so the two checks are held to the same cases
    from adapters.settings import load_settings

    local = {"MLOPS_PLATFORM": "local", "AzureWebJobsStorage": "UseDevelopmentStorage=true",
             "MLOPS_MONITOR_SCHEDULE": schedule}
    assert load_settings(local).monitor_schedule == schedule


@pytest.mark.parametrize("schedule", ["0 0 0 L * *", "0 0 0 * * MON#1", "0 0 0 * * 7", "0 0 0 5-1 * *",
                                      "0 */0 * * * *", "0 0 0 * Smarch *", "0 0 0 ? * MON"])
def test_the_apps_settings_check_refuses_what_devhost_refuses(schedule: str) -> None:
    from adapters.settings import SettingError, load_settings

    with pytest.raises(ScheduleError):
        Schedule(schedule, "fn")
    with pytest.raises(SettingError, match="MLOPS_MONITOR_SCHEDULE"):
        load_settings({"MLOPS_PLATFORM": "local", "AzureWebJobsStorage": "UseDevelopmentStorage=true",
                       "MLOPS_MONITOR_SCHEDULE": schedule})
