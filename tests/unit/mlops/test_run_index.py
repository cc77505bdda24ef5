"""mlops.run_index: the names that order entries newest first, the query's filters, continuation tokens."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from adapters.settings import load_settings
from mlops.errors import SettingError
from mlops.run_index import Cursor, RunEntry, RunQuery, day_bucket, decode_cursor, encode_cursor, entry_from_status

T0 = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)


def _entry(run_id: str, at: datetime, model: str = "credit", kind: str = "retrain",
           status: str = "Completed") -> RunEntry:
    return RunEntry(run_id, kind, model, at.isoformat(), status)


def test_newer_entries_and_days_sort_first_as_plain_names() -> None:
    from mlops.run_index import entry_key

    times = [T0 - timedelta(days=400), T0 - timedelta(hours=25), T0 - timedelta(milliseconds=1), T0]
    keys = [f"{day_bucket(t)}/{entry_key(_entry('retrain-credit-1', t))}" for t in times]
    assert sorted(keys) == list(reversed(keys))


def test_a_query_keeps_only_the_runs_asked_for_and_the_days_that_can_hold_them() -> None:
    query = RunQuery(model="credit", kind="release", statuses=frozenset({"Failed"}),
                     created_from=T0 - timedelta(days=1), created_to=T0, top=5)
    assert query.matches(_entry("release-credit-1", T0 - timedelta(hours=1), kind="release", status="Failed"))
    assert not query.matches(_entry("release-credit-1", T0 - timedelta(hours=1), kind="release"))
    assert not query.matches(_entry("release-gated-1", T0, model="gated", kind="release", status="Failed"))
    assert not query.matches(_entry("release-credit-1", T0 + timedelta(seconds=1), kind="release", status="Failed"))
    assert not query.matches(_entry("release-credit-1", T0 - timedelta(days=2), kind="release", status="Failed"))
    days = [day_bucket(T0 + timedelta(days=d)) for d in (-3, -1, 0, 1)]
    assert query.buckets(days) == sorted(days[1:3])


@pytest.mark.parametrize("bad", [{"kind": "party"}, {"top": 0}, {"top": 201}])
def test_a_bad_query_is_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        RunQuery(**bad)  # type: ignore[arg-type]


def test_a_continuation_token_comes_back_as_its_cursor_and_garbage_is_refused() -> None:
    cursor = Cursor(day_bucket(T0), "2!96!opaque-marker", 17)
    assert decode_cursor(encode_cursor(cursor)) == cursor
    assert decode_cursor(None) is None and decode_cursor("") is None
    for garbage in ("garbage", "eyJvZmZzZXQiOiAxMH0=", encode_cursor(Cursor("../x")), encode_cursor(Cursor("000001",
                                                                                                           None, -1))):
        with pytest.raises(ValueError, match="continuation token is not valid"):
            decode_cursor(garbage)


def test_an_entry_from_a_durable_status_keeps_the_indexed_time_and_takes_the_runbook_verdict() -> None:
    known = RunEntry("release-credit-abc", "release", "credit", T0.isoformat(), version="3")
    status = {"instanceId": "release-credit-abc", "runtimeStatus": "Failed", "createdTime": "2026-12-03T09:00:01",
              "lastUpdatedTime": "2026-12-03T10:00:00", "customStatus": {"verdict": "rolled back", "message": "5xx"}}
    entry = entry_from_status(status, known)
    assert (entry.created, entry.status, entry.verdict, entry.version, entry.message, entry.ended) == (
        T0.isoformat(), "Failed", "rolled back", "3", "5xx", "2026-12-03T10:00:00")
    fresh = entry_from_status({**status, "instanceId": "retrain-my-model-1f", "customStatus": None})
    assert (fresh.kind, fresh.model, fresh.created, fresh.verdict) == ("retrain", "my-model", "2026-12-03T09:00:01",
                                                                     "failed")


def test_the_run_retention_setting_defaults_to_90_days_and_a_bad_value_is_named() -> None:
    assert load_settings({"AzureWebJobsStorage": "UseDevelopmentStorage=true"}).run_retention_days == 90
    for bad in ("0", "ninety", "1.5", "-3", "3651"):
        with pytest.raises(SettingError, match=r"^setting MLOPS_RUN_RETENTION_DAYS: must be a whole number of days"):
            load_settings({"AzureWebJobsStorage": "UseDevelopmentStorage=true", "MLOPS_RUN_RETENTION_DAYS": bad})
