"""Pending requests: duplicates dropped, bursts coalesced, rollback first."""

from mlops.control import PendingState, merge, take
from mlops.runs import Request


def _req(kind: str, key: str, **payload: object) -> Request:
    return Request(kind=kind, model="m", dedup_key=key, payload=dict(payload))


def test_duplicate_delivery_is_dropped() -> None:
    state = PendingState()
    assert merge(state, _req("retrain", "blob-1"))
    assert not merge(state, _req("retrain", "blob-1"))
    assert not merge(state, _req("retrain", "blob-1"))
    assert take(state) == _req("retrain", "blob-1")
    assert take(state) is None


def test_burst_of_20_files_coalesces_to_the_newest() -> None:
    state = PendingState()
    for i in range(20):
        assert merge(state, _req("retrain", f"blob-{i}", n=i))
    taken = take(state)
    assert taken is not None and taken.payload == {"n": 19}
    assert take(state) is None


def test_rollback_is_taken_before_release_and_retrain() -> None:
    state = PendingState()
    merge(state, _req("retrain", "a"))
    merge(state, _req("release", "b"))
    merge(state, _req("rollback", "c"))
    assert [take(state).kind for _ in range(3)] == ["rollback", "release", "retrain"]  # type: ignore[union-attr]


def test_state_round_trips_through_json_and_remembers_seen_keys() -> None:
    state = PendingState()
    merge(state, _req("retrain", "x"))
    again = PendingState.from_json(state.to_json())
    assert not merge(again, _req("retrain", "x"))
    assert take(again) == _req("retrain", "x")


def test_run_id_is_deterministic_per_request() -> None:
    assert _req("retrain", "k").run_id == _req("retrain", "k").run_id
    assert _req("retrain", "k").run_id != _req("retrain", "k2").run_id
    assert _req("retrain", "k").run_id.startswith("retrain-m-")
