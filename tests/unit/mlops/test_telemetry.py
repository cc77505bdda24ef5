"""Lifecycle facts become structured records named as Application Insights custom events."""

import logging

import pytest

from mlops import telemetry


def test_emit_writes_a_custom_event_record_with_model_version_and_run(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="mlops.events"):
        telemetry.emit("RolledBack", model="credit", version="1", run_id="rollback-credit-abc", reason="drift",
                       traffic={"credit-v1": 100})
    record = caplog.records[-1]
    assert getattr(record, "microsoft.custom_event.name") == "RolledBack"
    assert record.model == "credit" and record.version == "1" and record.run_id == "rollback-credit-abc"  # type: ignore[attr-defined]
    assert record.reason == "drift" and record.traffic == "{'credit-v1': 100}"  # type: ignore[attr-defined]


def test_configure_without_a_connection_string_does_nothing() -> None:
    assert telemetry.configure(None) is False
