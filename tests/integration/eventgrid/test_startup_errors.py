"""A bad subscriptions file or timer schedule stops devhost at start-up with a message naming the fault."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from eglab import TIMER_APP, EventsHost, blob_sub, topic_sub

CASES: list[tuple[str, Any, str]] = [
    ("not-an-array", {"name": "x"}, "must hold a JSON array"),
    ("unknown-function", [topic_sub("orders", "no_such_fn", "orders")], "no function named 'no_such_fn'"),
    ("not-event-grid", [topic_sub("orders", "ping", "orders")], "not an eventGridTrigger"),
    ("bad-source-type", [{"name": "queue-one", "source": {"type": "queue"}, "destination": {"function": "sink_a"}}],
     "source.type: must be 'blob' or 'topic'"),
    ("too-many-attempts", [topic_sub("orders", "sink_a", "orders", retry={"maxDeliveryAttempts": 31})],
     "maxDeliveryAttempts: must be an integer from 1 to 30"),
    ("advanced-filters", [topic_sub("orders", "sink_a", "orders", filter={"advancedFilters": []})],
     "advanced filters are not supported"),
    ("missing-connection-setting", [{**blob_sub("landing", "sink_a", ["landing"]),
                                     "source": {"type": "blob", "connection": "NoSuchSetting",
                                                "containers": ["landing"]}}],
     "app setting 'NoSuchSetting'"),
    ("bad-container-name", [blob_sub("landing", "sink_a", ["Landing_Zone"])], "not a valid container name"),
    ("duplicate-names", [topic_sub("orders", "sink_a", "orders"), topic_sub("orders", "sink_b", "orders")],
     "used twice"),
    ("cloudevents-topic-to-eg-schema", [topic_sub("orders", "sink_a", "orders",
                                                  source_extra={"inputSchema": "CloudEventSchemaV1_0"})],
     "can only deliver CloudEventSchemaV1_0"),
    ("typo-in-field", [{**topic_sub("orders", "sink_a", "orders"), "destinaton": {}}], "unknown field(s)"),
]


@pytest.mark.parametrize("subscriptions,message", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_invalid_subscriptions_file_fails_start_with_the_reason(events_host: Callable[..., EventsHost],
                                                                subscriptions: Any, message: str) -> None:
    lab = events_host(start=False)
    Path(lab.host.env["DEVHOST_SUBSCRIPTIONS"]).write_text(json.dumps(subscriptions))
    with pytest.raises(RuntimeError) as caught:
        lab.host.start()
    assert "exited with 2" in str(caught.value)
    assert message in str(caught.value)


def test_invalid_timer_schedule_fails_start(events_host: Callable[..., EventsHost]) -> None:
    lab = events_host(app=TIMER_APP, env={"HOURLY_SCHEDULE": "every hour"}, start=False)
    with pytest.raises(RuntimeError) as caught:
        lab.host.start()
    assert "function hourly: schedule 'every hour' is neither a 6-field NCRONTAB expression" in str(caught.value)
