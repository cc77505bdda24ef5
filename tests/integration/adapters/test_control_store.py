"""The control store on Azurite: bursts for one model never fail, redeliveries are recognised for the retention."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from adapters.control_store import BlobControlStore
from mlops.runs import Request


def _retrain(model: str, key: str, n: int = 0) -> Request:
    return Request(kind="retrain", model=model, dedup_key=key, payload={"n": n})


def test_1000_concurrent_requests_for_one_model_are_all_accepted_and_coalesced(container: Any) -> None:
    store = BlobControlStore(container)
    burst = [_retrain("burst", f"blob:https://acct/landing/burst/{i}.csv:0x{i:04X}", i) for i in range(1000)]
    with ThreadPoolExecutor(max_workers=32) as pool:
        accepted = list(pool.map(store.put_request, burst))
    assert accepted == [True] * 1000
    with ThreadPoolExecutor(max_workers=32) as pool:  # Event Grid redelivers the whole batch
        again = list(pool.map(store.put_request, burst))
    assert again == [False] * 1000
    store.put_request(_retrain("burst", "blob:newest", 1000))
    assert store.models_with_pending() == ["burst"]
    taken = store.take_request("burst")
    assert taken is not None and taken.payload == {"n": 1000}  # the newest; the rest coalesced into it
    assert store.take_request("burst") is None
    assert store.models_with_pending() == []


def test_a_redelivery_after_600_other_requests_is_still_recognised(container: Any) -> None:
    store = BlobControlStore(container)
    first = _retrain("busy", "blob:first")
    assert store.put_request(first)
    assert store.take_request("busy") == first
    for i in range(600):
        assert store.put_request(_retrain("busy", f"blob:other-{i}", i))
        if i % 100 == 0:
            assert store.take_request("busy") is not None
    assert not store.put_request(first)


def test_dedup_keys_are_forgotten_only_after_the_retention(container: Any) -> None:
    now = [datetime(2026, 12, 1, 12, 0, tzinfo=UTC)]
    store = BlobControlStore(container, retention=timedelta(hours=26), clock=lambda: now[0])
    event = _retrain("late", "blob:redelivered")
    assert store.put_request(event)
    assert store.take_request("late") == event
    now[0] += timedelta(hours=25)  # Event Grid still retries: the key is known
    assert not store.put_request(event)
    assert store.take_request("late") is None  # also forgets what is past the retention: nothing yet
    assert not store.put_request(event)
    now[0] += timedelta(hours=2)
    assert store.take_request("late") is None  # forgets the key, now 27 h old
    assert store.put_request(event)  # past every retry period: a new request
    assert store.take_request("late") == event


def test_two_concurrent_takes_never_take_the_same_request(container: Any) -> None:
    store = BlobControlStore(container)
    store.put_request(_retrain("race", "blob:one"))
    start = threading.Barrier(8)

    def take() -> Request | None:
        start.wait()
        return store.take_request("race")

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = [f.result() for f in [pool.submit(take) for _ in range(8)]]
    assert [r for r in results if r is not None] == [_retrain("race", "blob:one")]


def test_an_unreadable_entry_never_hides_the_other_models(container: Any) -> None:
    store = BlobControlStore(container)
    container.upload_blob("requests/junk/left-over.json", b"{}")  # no metadata: not a request this store wrote
    for model in ("ghost", "credit"):
        store.put_request(_retrain(model, f"blob:{model}"))
    assert store.models_with_pending() == ["credit", "ghost"]
    assert store.take_request("credit") == _retrain("credit", "blob:credit")
    assert store.models_with_pending() == ["ghost"]
    assert store.take_request("junk") is None


@pytest.mark.parametrize("model", ["a/b", "../audit/2026-12-01", "Credit", ""])
def test_a_request_for_a_name_that_is_not_a_model_name_is_refused_and_writes_nothing(container: Any,
                                                                                    model: str) -> None:
    store = BlobControlStore(container)
    with pytest.raises(ValueError, match="is not a valid model name"):
        store.put_request(_retrain(model, "blob:x"))
    assert list(container.list_blobs()) == []
