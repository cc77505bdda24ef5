"""The monitor's tick starts a model's lifecycle only on a fresh reading: a lifecycle that ended after the tick
began already did what the tick found to do, and an idle execution started on the stale reading would replace its
output (the deployments it cleaned up) with an empty one. Statuses are the SDK's own, parsed from the status
API's JSON."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from azure.durable_functions.models.DurableOrchestrationStatus import DurableOrchestrationStatus

from triggers.submit import _ended_since

TICK = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def _status(runtime_status: str, updated: datetime) -> DurableOrchestrationStatus:
    return DurableOrchestrationStatus.from_json({
        "name": "model_lifecycle", "instanceId": "lifecycle-janitor", "runtimeStatus": runtime_status,
        "createdTime": (updated - timedelta(minutes=1)).isoformat().replace("+00:00", "Z"),
        "lastUpdatedTime": updated.isoformat().replace("+00:00", "Z"), "output": {"cleaned": []}})


@pytest.mark.parametrize("seconds, fresh", [(-30, False), (0, True), (5, True)])
def test_a_lifecycle_that_ended_at_or_after_the_tick_makes_its_reading_stale(seconds: int, fresh: bool) -> None:
    assert _ended_since(_status("Completed", TICK + timedelta(seconds=seconds)), TICK) is fresh


def test_no_instance_yet_never_counts_as_ended_since() -> None:
    assert not _ended_since(DurableOrchestrationStatus.from_json({}), TICK)
    assert not _ended_since(None, TICK)
