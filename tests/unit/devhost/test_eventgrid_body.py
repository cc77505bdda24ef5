"""devhost.eventgrid.parse_body: bodies Event Grid would refuse are refused with the reason, never a crash."""

from __future__ import annotations

import json

import pytest

from devhost.eventgrid import EventError, parse_body

EVENT = {"id": "1", "subject": "orders/1", "eventType": "Shop.OrderPlaced", "eventTime": "2024-05-01T12:00:00Z",
         "data": {}, "dataVersion": "1.0"}


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize("raw", [
    _nested(100_000).encode(),  # 200 KB of brackets
    json.dumps([{**EVENT, "data": "@"}]).replace('"@"', _nested(100_000)).encode(),  # deep inside one event's data
], ids=["whole-body", "inside-data"])
def test_a_deeply_nested_body_is_400_with_the_reason(raw: bytes) -> None:
    assert len(raw) >= 200_000
    with pytest.raises(EventError) as err:
        parse_body(raw, "application/json")
    assert err.value.status == 400
    assert "nested too deeply" in str(err.value)


def test_a_body_nested_deeper_than_the_limit_is_refused_before_any_event_is_read() -> None:
    # deep enough to pass the JSON parser, too deep to hand to a function that may recurse over it
    raw = json.dumps([{**EVENT, "data": "@"}]).replace('"@"', _nested(500)).encode()
    with pytest.raises(EventError) as err:
        parse_body(raw, "application/json")
    assert err.value.status == 400 and "nested too deeply" in str(err.value)


def test_ordinary_nesting_in_data_is_accepted() -> None:
    data: object = {"leaf": 1}
    for _ in range(30):
        data = {"child": data}
    batch = parse_body(json.dumps([{**EVENT, "data": data}]).encode(), "application/json")
    assert batch.events[0]["data"] == data
