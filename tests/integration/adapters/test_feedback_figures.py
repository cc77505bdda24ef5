"""The monitor's figure series on Azurite: one append per tick, days read newest first, old days forgotten."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from adapters.feedback_store import BlobFeedbackStore
from mlops.feedback import FIGURE_DAYS

START = datetime(2026, 11, 1, 0, 0, tzinfo=UTC)


def _tick(i: int, minutes: int = 5) -> dict[str, Any]:
    return {"at": (START + timedelta(minutes=minutes * i)).isoformat(), "version": "3", "value": i}


def test_each_tick_appends_one_line_and_the_series_reads_back_oldest_first_across_days(container: Any) -> None:
    store = BlobFeedbackStore(container)
    for i in range(300):  # 288 ticks fill 1 November; 12 more begin the 2nd
        store.record_figure("m", _tick(i), series="drift")
    day1 = container.get_blob_client("drift/m/2026-11-01.jsonl").get_blob_properties()
    assert day1.blob_type == "AppendBlob" and day1.append_blob_committed_block_count == 288
    assert day1.size == sum(len(json.dumps(_tick(i), separators=(",", ":"))) + 1 for i in range(288))
    assert [f["value"] for f in store.figures("m", limit=20, series="drift")] == list(range(280, 300))
    assert [f["value"] for f in store.figures("m", limit=1000, series="drift")] == list(range(300))
    assert store.figures("m", series="performance") == [] and store.figures("other", series="drift") == []


def test_concurrent_writers_lose_nothing_and_readers_order_by_time(container: Any) -> None:
    store = BlobFeedbackStore(container)
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda i: store.record_figure("m", _tick(i)), reversed(range(64))))
    assert [f["value"] for f in store.figures("m", limit=100)] == list(range(64))


def test_a_new_day_forgets_days_older_than_the_retention(container: Any) -> None:
    store = BlobFeedbackStore(container)
    for day in range(FIGURE_DAYS + 3):
        store.record_figure("m", _tick(day, minutes=24 * 60))
        store.record_figure("m2", _tick(day, minutes=24 * 60))  # a model whose name starts with "m": untouched
    names = sorted(b.name for b in container.list_blobs(name_starts_with="performance/m/"))
    first = (START + timedelta(days=3 - 1)).date().isoformat()  # the last day is START + 32 days; 30 days back
    assert len(names) == FIGURE_DAYS + 1 and names[0] == f"performance/m/{first}.jsonl", names
    assert len(list(container.list_blobs(name_starts_with="performance/m2/"))) == FIGURE_DAYS + 1


def test_a_series_an_earlier_version_kept_is_read_as_its_oldest_part(container: Any) -> None:
    store = BlobFeedbackStore(container)
    container.get_blob_client("performance/m.json").upload_blob(json.dumps({"figures": [_tick(-2), _tick(-1)]}))
    store.record_figure("m", _tick(0))
    assert [f["value"] for f in store.figures("m")] == [-2, -1, 0]
    assert [f["value"] for f in store.figures("m", limit=1)] == [0]


def test_an_unknown_series_is_refused_with_the_ones_there_are(container: Any) -> None:
    store = BlobFeedbackStore(container)
    with pytest.raises(ValueError, match="one of performance, drift"):
        store.record_figure("m", _tick(0), series="latency")  # type: ignore[arg-type]
    assert list(container.list_blobs()) == []
