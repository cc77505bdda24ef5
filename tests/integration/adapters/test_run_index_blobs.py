"""The run index on Azurite: newest first across days, filters, continuation pages, entries by id."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from azure.storage.blob import BlobServiceClient

from adapters import run_index
from adapters.control_store import BlobControlStore
from devhost.azurite import Azurite
from mlops.run_index import RunEntry, RunQuery

START = datetime(2026, 11, 1, 6, 0, tzinfo=UTC)
RUNS = 120


def _entry(i: int) -> RunEntry:
    """Run i: created 2 i hours after START (10 days of buckets for 120 runs); three models, three kinds."""
    kind = ("retrain", "release", "rollback")[i % 3]
    status = "Running" if i % 7 == 0 else ("Failed" if i % 5 == 0 else "Completed")
    return RunEntry(f"{kind}-m{i % 3}-{i:012x}", kind, f"m{i % 3}", (START + timedelta(hours=2 * i)).isoformat(),
                    status, None if status == "Running" else "failed" if status == "Failed" else "registered",
                    message=f"run {i} — ünïcode")


@pytest.fixture(scope="module")
def store(azurite: Azurite) -> BlobControlStore:
    """One index of 120 runs for the module (written 16 at a time)."""
    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    store = BlobControlStore(service.get_container_client(f"runs-{uuid.uuid4().hex[:12]}"))
    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(lambda i: store.record_run(_entry(i)), range(RUNS)))
    return store


def _all(store: BlobControlStore, query: RunQuery) -> list[RunEntry]:
    seen: list[RunEntry] = []
    page = store.query_runs(query)
    for _ in range(500):  # bounded
        seen += page.entries
        assert len(page.entries) <= query.top
        if page.next is None:
            return seen
        page = store.query_runs(query, page.next)
    raise AssertionError("paging did not end")


@pytest.mark.parametrize("listing_page", [16, 1000])  # resumed at the service's markers, or inside one listing
def test_pages_of_every_size_list_each_run_once_newest_first(store: BlobControlStore, listing_page: int,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(run_index, "LIST_PAGE", listing_page)
    expected = [_entry(i).id for i in reversed(range(RUNS))]
    for top in (3, 16, 50, 200):  # pages end inside listing pages, at their ends, and past the last entry
        assert [e.id for e in _all(store, RunQuery(top=top))] == expected
    window = RunQuery(created_to=START + timedelta(hours=2 * 100), top=7)  # day buckets, listed one by one
    assert [e.id for e in _all(store, window)] == expected[RUNS - 101:]


def test_filters_select_by_model_kind_status_and_time_window(store: BlobControlStore) -> None:
    wanted = [_entry(i) for i in reversed(range(RUNS))]
    window = (START + timedelta(hours=30), START + timedelta(hours=100))
    query = RunQuery(model="m1", kind="release", statuses=frozenset({"Completed", "Failed"}),
                     created_from=window[0], created_to=window[1], top=3)
    got = [e.id for e in _all(store, query)]
    assert got == [e.id for e in wanted if e.model == "m1" and e.kind == "release" and e.status != "Running"
                   and window[0] <= START + timedelta(hours=2 * int(e.id[-12:], 16)) <= window[1]]
    assert got and len(got) > 3  # more than one page


def test_a_small_answer_has_its_total_and_a_larger_one_a_continuation(store: BlobControlStore) -> None:
    small = store.query_runs(RunQuery(model="m2", created_from=START + timedelta(hours=200), top=200))
    assert small.next is None and small.total == len(small.entries) == 7
    large = store.query_runs(RunQuery(top=10))
    assert large.next is not None and large.total is None


def test_an_ended_run_overwrites_its_entry_and_is_found_by_id(store: BlobControlStore) -> None:
    running = _entry(7)
    store.record_run(running.ended_as("Completed", "promoted", (START + timedelta(days=30)).isoformat(), "4"))
    found = store.run_entry(running.id)
    assert found is not None and (found.status, found.verdict, found.version) == ("Completed", "promoted", "4")
    assert found.message == "run 7 — ünïcode"
    listed = [e for e in _all(store, RunQuery(model="m1", top=200)) if e.id == running.id]
    assert [(e.status, e.verdict) for e in listed] == [("Completed", "promoted")]  # once, where it was
    assert store.run_entry("retrain-m0-nosuch") is None
    assert store.run_entry("retrain-../audit") is None and store.run_entry(running.id.upper()) is None


def test_a_run_id_started_again_is_listed_once_at_its_new_time(store: BlobControlStore) -> None:
    again = RunEntry(_entry(9).id, "retrain", "m0", (START + timedelta(days=40)).isoformat())
    store.record_run(again)
    listed = [e for e in _all(store, RunQuery(top=200)) if e.id == again.id]
    assert [(e.created, e.status) for e in listed] == [(again.created, "Running")]
    assert [e.id for e in _all(store, RunQuery(model="m0", top=1))][0] == again.id
