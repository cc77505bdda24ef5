"""Lifecycle facts become structured records named as Application Insights custom events."""

import logging
from datetime import UTC, datetime, timedelta

import pytest

from adapters import telemetry as adapters_telemetry
from mlops import telemetry
from mlops.gates import GateVerdict
from mlops.runs import RunStatus
from mlops.telemetry import Fact, run_facts

T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def snapshot(status: RunStatus) -> RunStatus:
    return RunStatus.from_dict(status.to_dict())


def test_emit_writes_a_custom_event_record_with_model_version_and_run(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="mlops.events"):
        telemetry.emit("RolledBack", model="credit", version="1", run_id="rollback-credit-abc", reason="drift",
                       traffic={"credit-v1": 100})
    record = caplog.records[-1]
    assert getattr(record, "microsoft.custom_event.name") == "RolledBack"
    assert record.model == "credit" and record.version == "1" and record.run_id == "rollback-credit-abc"  # type: ignore[attr-defined]
    assert record.reason == "drift" and record.traffic == '{"credit-v1": 100}'  # type: ignore[attr-defined]
    assert record.getMessage() == 'RolledBack model=credit version=1 run=rollback-credit-abc reason=drift ' \
                                  'traffic={"credit-v1": 100}'


def test_configure_without_a_connection_string_does_nothing() -> None:
    assert adapters_telemetry.configure(None) is False


def test_the_lifecycle_facts_are_never_sampled_away(monkeypatch: pytest.MonkeyPatch) -> None:
    import json
    from pathlib import Path

    import azure.monitor.opentelemetry as distro

    calls: list[dict[str, object]] = []  # what would be configured (Application Insights cannot be reached here)
    monkeypatch.setattr(distro, "configure_azure_monitor", lambda **kwargs: calls.append(kwargs))
    monkeypatch.setattr(adapters_telemetry, "_configured", False)
    assert adapters_telemetry.configure("InstrumentationKey=00000000-0000-0000-0000-000000000000") is True
    (sent,) = calls
    assert sent["logger_name"] == "mlops" and sent["sampling_ratio"] == 1.0
    assert sent["enable_trace_based_sampling_for_logs"] is False
    # the host's own telemetry: adaptive sampling never drops function executions or their exceptions
    host = json.loads((Path(__file__).resolve().parents[3] / "host.json").read_text())
    excluded = host["logging"]["applicationInsights"]["samplingSettings"]["excludedTypes"].split(";")
    assert {"Request", "Exception"} <= set(excluded)


def test_stage_changes_become_started_and_ended_facts_with_durations() -> None:
    status = RunStatus.new("retrain", "credit", ["validate", "train"])
    seen = snapshot(status)
    status.begin("validate", T0)
    assert run_facts(seen, status) == [Fact("StageStarted", {"kind": "retrain", "stage": "validate"})]
    seen = snapshot(status)
    status.end("validate", T0 + timedelta(seconds=2.5))
    status.skip("train", "not needed")
    assert run_facts(seen, status) == [
        Fact("StageEnded", {"kind": "retrain", "stage": "validate", "state": "succeeded", "duration_seconds": 2.5,
                            "reason": None}),
        Fact("StageEnded", {"kind": "retrain", "stage": "train", "state": "skipped", "duration_seconds": None,
                            "reason": "not needed"})]
    assert run_facts(snapshot(status), status) == []  # nothing new: nothing to send


def test_new_gate_verdicts_and_the_final_verdict_are_facts_once() -> None:
    status = RunStatus.new("retrain", "credit", ["gates"])
    seen = snapshot(status)
    status.gates = [GateVerdict("threshold", True, "accuracy_score", 0.9, 0.6, reason="ok").to_dict(),
                    GateVerdict("no_regression", False, "accuracy_score", 0.7, 0.01, 0.9, "worse").to_dict()]
    status.end("gates", T0, ok=False)
    status.finish("failed", "gate failed: worse")
    facts = run_facts(seen, status)
    assert [(f.name, f.dims.get("gate"), f.dims.get("passed")) for f in facts] == [
        ("StageEnded", None, None), ("GateVerdict", "threshold", True), ("GateVerdict", "no_regression", False),
        ("RunFinished", None, None)]
    assert facts[2].dims == {"kind": "retrain", "gate": "no_regression", "metric": "accuracy_score", "passed": False,
                             "value": 0.7, "threshold": 0.01, "champion_value": 0.9, "reason": "worse"}
    assert facts[3].dims == {"kind": "retrain", "verdict": "failed", "summary": "gate failed: worse"}
    assert run_facts(snapshot(status), status) == []


def test_every_fact_can_be_logged(caplog: pytest.LogCaptureFixture) -> None:
    status = RunStatus.new("retrain", "credit", ["validate"])
    seen = snapshot(status)
    status.begin("validate", T0)
    status.end("validate", T0, ok=False, reason="no rows")
    status.finish("failed", "data validation failed")
    with caplog.at_level(logging.INFO, logger="mlops.events"):
        for fact in run_facts(seen, status):  # dimension names must not clash with LogRecord's own
            telemetry.emit(fact.name, model="credit", run_id="retrain-credit-1", **fact.dims)
    assert [getattr(r, "microsoft.custom_event.name") for r in caplog.records] == ["StageEnded", "RunFinished"]


def test_a_dimension_named_like_a_log_record_field_is_renamed_not_fatal(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="mlops.events"):
        telemetry.emit("RunFinished", model="credit", message="done", args="x")
    record = caplog.records[-1]
    assert record.message_ == "done" and record.args_ == "x"  # type: ignore[attr-defined]
