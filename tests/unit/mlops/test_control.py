"""Pending requests: bursts coalesced to the newest, rollback first, dedup keys kept for Event Grid's retry period."""

from datetime import UTC, datetime, timedelta

from mlops.control import DEDUP_RETENTION, StoredRequest, expired, next_request, waiting
from mlops.runs import Request

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def _stored(kind: str, name: str, minutes: float = 0, taken: bool = False) -> StoredRequest:
    return StoredRequest(name=name, kind=kind, seen_at=T0 + timedelta(minutes=minutes), taken=taken)


def _take(entries: list[StoredRequest]) -> StoredRequest | None:
    """What a store does: take the next request and remember it was taken."""
    chosen = next_request(entries)
    if chosen is not None:
        entries[entries.index(chosen)] = StoredRequest(chosen.name, chosen.kind, chosen.seen_at, taken=True)
    return chosen


def test_a_burst_of_20_requests_coalesces_to_the_newest() -> None:
    entries = [_stored("retrain", f"blob-{i}", minutes=i) for i in range(20)]
    assert _take(entries) == _stored("retrain", "blob-19", minutes=19)
    assert waiting(entries) == []
    assert _take(entries) is None


def test_rollback_is_taken_before_release_and_retrain() -> None:
    entries = [_stored("retrain", "a", 0), _stored("release", "b", 1), _stored("rollback", "c", 2)]
    assert [_take(entries).kind for _ in range(3)] == ["rollback", "release", "retrain"]  # type: ignore[union-attr]
    assert _take(entries) is None


def test_a_request_seen_after_a_take_runs_after_it() -> None:
    entries = [_stored("retrain", f"blob-{i}", minutes=i) for i in range(5)]
    _take(entries)
    entries.append(_stored("retrain", "late", minutes=10))
    assert [e.name for e in waiting(entries)] == ["late"]
    assert _take(entries).name == "late"  # type: ignore[union-attr]


def test_a_request_seen_before_the_newest_taken_one_of_its_kind_was_coalesced_into_it() -> None:
    entries = [_stored("retrain", "new", minutes=5)]
    _take(entries)
    entries += [_stored("retrain", "older", minutes=3), _stored("release", "other-kind", minutes=3)]
    assert [e.name for e in waiting(entries)] == ["other-kind"]


def test_dedup_keys_are_kept_for_the_retention_however_many_requests_came_after() -> None:
    entries = [_stored("retrain", "first", 0, taken=True)]
    entries += [_stored("retrain", f"other-{i}", minutes=i / 100, taken=True) for i in range(1, 10_001)]
    assert expired(entries, now=T0 + timedelta(hours=24), retention=DEDUP_RETENTION) == []


def test_dedup_keys_older_than_the_retention_are_forgotten_unless_still_waiting() -> None:
    entries = [_stored("rollback", "old-taken", 0, taken=True), _stored("retrain", "old-waiting", 0),
               _stored("release", "recent", 60 * 20, taken=True)]
    now = T0 + timedelta(hours=27)
    assert [e.name for e in expired(entries, now, retention=timedelta(hours=26))] == ["old-taken"]


def test_coalesced_requests_are_forgotten_before_the_run_they_were_coalesced_into() -> None:
    # if the store stops half-way through forgetting, nothing already coalesced can come back as waiting
    entries = [_stored("retrain", "ran", 2, taken=True), _stored("retrain", "coalesced-a", 1),
               _stored("retrain", "coalesced-b", 0)]
    order = [e.name for e in expired(entries, T0 + timedelta(days=2), retention=DEDUP_RETENTION)]
    assert order == ["coalesced-b", "coalesced-a", "ran"]


def test_the_default_retention_outlasts_event_grids_24_hour_retry_period() -> None:
    # https://learn.microsoft.com/azure/event-grid/delivery-and-retry#retry-schedule
    assert timedelta(hours=24) < DEDUP_RETENTION


def test_run_id_is_deterministic_per_request() -> None:
    def req(key: str) -> Request:
        return Request(kind="retrain", model="m", dedup_key=key)

    assert req("k").run_id == req("k").run_id
    assert req("k").run_id != req("k2").run_id
    assert req("k").run_id.startswith("retrain-m-")
