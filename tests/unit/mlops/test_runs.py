"""The run status document and event payload decoding."""

from datetime import UTC, datetime

from mlops.runs import RunStatus, event_data


def test_stage_timeline_records_start_end_and_failure() -> None:
    status = RunStatus.new("retrain", "m", ["validate", "train"])
    t0, t1 = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, 0, 5, tzinfo=UTC)
    status.begin("validate", t0)
    assert status.stage == "validate" and status.stages[0].state == "running"
    status.end("validate", t1, ok=False, rows=3)
    status.finish("failed", "bad data")
    again = RunStatus.from_dict(status.to_dict())
    assert again.stages[0].state == "failed"
    assert again.stages[0].started == t0.isoformat() and again.stages[0].ended == t1.isoformat()
    assert again.stages[0].detail == {"rows": 3}
    assert again.verdict == "failed" and again.stage is None


def test_event_data_undoes_the_sdk_double_encoding() -> None:
    assert event_data('"{\\"approved\\": true}"') == {"approved": True}
    assert event_data({"approved": False}) == {"approved": False}
    assert event_data("plain words") == {"reason": "plain words"}
