"""Every branch of the retrain runbook, in-process."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from devhost.testing import ExternalEvent
from mlops.contracts import APPROVAL_EVENT, NOTIFY, REGISTER_MODEL, RETRAIN, RetrainInput
from mlops.ports import DataRef

from .conftest import DATA_URL, MODEL, Lab, World

CANDIDATE = "runs:/job-1/model"
RETRAIN_INPUT = RetrainInput(MODEL, DataRef(DATA_URL, etag="0x1", content_length=100))


def stages(result: Any) -> dict[str, str]:
    return {s["name"]: s["state"] for s in result.custom_status["stages"]}


@pytest.fixture
def trained(world: World) -> World:
    """v1 is the champion; the candidate the job trains scores better."""
    world.serving("1")
    world.scores = {CANDIDATE: {"accuracy_score": 0.9}, "models:/credit/1": {"accuracy_score": 0.85}}
    return world


def test_a_better_candidate_is_registered_with_its_lineage(lab: Lab, trained: World) -> None:
    result = lab.run(RETRAIN, RETRAIN_INPUT)
    assert result.runtime_status == "Completed", result.failure
    assert result.output["verdict"] == "registered" and result.output["version"] == "2"
    assert result.output["champion_metrics"] == {"accuracy_score": 0.85}
    tags = trained.tags("2")
    assert (tags["data_url"], tags["data_etag"], tags["data_sha256"]) == (DATA_URL, "0x1", "ab" * 32)
    assert tags["run_id"] == "retrain-credit-test" and tags["metric.accuracy_score"] == "0.900000"
    assert stages(result) == {"validate": "succeeded", "train": "succeeded", "evaluate": "succeeded",
                              "gates": "succeeded", "approval": "skipped", "register": "succeeded"}
    # both jobs were polled with durable timers at the policy's interval: training twice, evaluation once
    assert result.custom_status["stages"][1]["detail"]["polls"] == 2 and result.elapsed == timedelta(seconds=30)


def test_candidate_and_champion_are_scored_in_one_evaluation_job_on_the_training_jobs_held_out_part(
        lab: Lab, trained: World) -> None:
    result = lab.run(RETRAIN, RETRAIN_INPUT)
    (evaluation,) = result.inputs_to("submit_evaluation")
    assert (evaluation["training_job"], evaluation["candidate_uri"], evaluation["champion_uri"]) == (
        "job-1", CANDIDATE, "models:/credit/1")
    assert (evaluation["label"], evaluation["model_type"]) == ("label", "classifier")
    (training,) = result.inputs_to("submit_training")
    assert (training["test_fraction"], training["seed"], training["job"]) == (0.25, 7, "")


def test_a_training_job_past_the_timeout_is_canceled_with_the_reason(lab: Lab, trained: World) -> None:
    trained.job_states = ["running"]
    trained.with_policy(training={"timeout_minutes": 1, "poll_seconds": 30})
    result = lab.run(RETRAIN, RETRAIN_INPUT)
    assert result.runtime_status == "Failed" and "training timed out after 1.0 minutes" in result.failure
    assert [c["job_id"] for c in trained.canceled] == ["job-1"]
    assert trained.canceled[0]["reason"] == "training timed out after 1.0 minutes"


def test_invalid_data_fails_at_validation_and_trains_nothing(lab: Lab, trained: World) -> None:
    trained.data_problems = ["missing columns: f5"]
    result = lab.run(RETRAIN, RETRAIN_INPUT)
    assert result.runtime_status == "Failed" and "data validation failed: missing columns: f5" in result.failure
    assert "submit_training" not in result.activity_names and stages(result)["validate"] == "failed"


@pytest.mark.parametrize("state", ["failed", "canceled"])
def test_a_job_that_does_not_succeed_fails_the_run(lab: Lab, trained: World, state: str) -> None:
    trained.job_states = ["running", state]
    result = lab.run(RETRAIN, RETRAIN_INPUT)
    assert result.runtime_status == "Failed" and f"training {state}" in result.failure
    assert REGISTER_MODEL not in result.activity_names


def test_a_job_that_outlives_the_policy_timeout_fails_the_run(lab: Lab, trained: World) -> None:
    trained.job_states = ["running"]
    trained.with_policy(training={"timeout_minutes": 5, "poll_seconds": 60})
    result = lab.run(RETRAIN, RETRAIN_INPUT)
    assert result.runtime_status == "Failed" and "training timed out after 5.0 minutes" in result.failure
    assert result.elapsed == timedelta(minutes=5)


@pytest.mark.parametrize("scores,reason", [
    ({CANDIDATE: {"accuracy_score": 0.6}, "models:/credit/1": {"accuracy_score": 0.65}},
     "accuracy_score 0.6 is below the threshold 0.7"),
    ({CANDIDATE: {"accuracy_score": 0.8}, "models:/credit/1": {"accuracy_score": 0.9}}, "regressed"),
])
def test_a_failed_gate_ends_the_run_with_the_gate_verdict(lab: Lab, trained: World, scores: dict[str, Any],
                                                          reason: str) -> None:
    trained.scores = scores
    result = lab.run(RETRAIN, RETRAIN_INPUT)
    assert result.runtime_status == "Failed" and result.failure and "gate failed" in result.failure
    assert any(reason in g["reason"] for g in result.custom_status["gates"] if not g["passed"]), \
        result.custom_status["gates"]
    assert REGISTER_MODEL not in result.activity_names and list(trained.versions) == ["1"]


def test_a_gate_on_a_metric_the_evaluation_skipped_is_shown_skipped_and_the_candidate_is_registered(
        lab: Lab, trained: World) -> None:
    reason = "no judge model is configured (MLOPS_JUDGE_ENDPOINT / MLOPS_JUDGE_DEPLOYMENT)"
    trained.with_policy(gates={"metrics": [{"name": "accuracy_score", "threshold": 0.7},
                                           {"name": "judged_score", "greater_is_better": True, "threshold": 3.5}]})
    trained.skipped = {"judged_score": reason}

    result = lab.run(RETRAIN, RETRAIN_INPUT)

    assert result.output["verdict"] == "registered", result.failure
    gates = result.custom_status["gates"]
    assert [(g["metric"], g["passed"], g.get("skipped")) for g in gates] == [("accuracy_score", True, False),
                                                                           ("judged_score", False, True)]
    assert gates[1]["reason"] == f"judged_score skipped: {reason}"
    detail = {s["name"]: s["detail"] for s in result.custom_status["stages"]}
    assert detail["evaluate"]["skipped"] == {"judged_score": reason}
    assert detail["gates"]["skipped"] == [f"judged_score skipped: {reason}"]
    # a metric that is neither reported nor skipped still fails its gate, as before
    trained.skipped = {}
    result = lab.run(RETRAIN, RETRAIN_INPUT)
    assert result.runtime_status == "Failed" and "judged_score was not measured" in (result.failure or "")


def test_a_first_model_is_judged_on_the_thresholds_alone(lab: Lab, world: World) -> None:
    world.scores = {CANDIDATE: {"accuracy_score": 0.8}}
    result = lab.run(RETRAIN, RETRAIN_INPUT)
    assert result.output["verdict"] == "registered" and result.output["champion_metrics"] is None
    (evaluation,) = result.inputs_to("submit_evaluation")
    assert evaluation["champion_uri"] == ""


def approval_needed(world: World) -> World:
    return world.with_policy(gates={**world.policy["gates"], "approval": {"required": True, "timeout_hours": 24}})


def waiting(status: Any) -> bool:
    return isinstance(status, dict) and status.get("stage") == "approval"


def test_an_approved_candidate_is_registered(lab: Lab, trained: World) -> None:
    approval_needed(trained)
    ok = ExternalEvent(APPROVAL_EVENT, {"approved": True, "by": "ana", "reason": "looks good"}, when=waiting)
    result = lab.run(RETRAIN, RETRAIN_INPUT, events=[ok])
    assert result.output["verdict"] == "registered"
    assert result.custom_status["stages"][4]["detail"]["decision"]["by"] == "ana"
    (notice,) = trained.notices  # someone was told when the wait began, once, whatever the replays
    assert (notice["kind"], notice["run_id"]) == ("approval_required", f"{RETRAIN}-{MODEL}-test")
    assert "waits for an operator's approval" in notice["reason"] and notice["detail"]["timeout_hours"] == 24
    assert result.custom_status["stages"][4]["detail"]["notice"] == {"kind": "approval_required", "event": "sent",
                                                                     "webhook": "off"}


def test_a_notice_that_cannot_be_sent_does_not_change_the_approval(lab: Lab, trained: World) -> None:
    approval_needed(trained)
    trained.faults[NOTIFY] = 1  # the activity itself fails (it never raises for a receiver that is down)
    ok = ExternalEvent(APPROVAL_EVENT, {"approved": True, "by": "ana"}, when=waiting)
    result = lab.run(RETRAIN, RETRAIN_INPUT, events=[ok])
    assert result.output["verdict"] == "registered" and trained.notices == []
    assert "test fault in notify" in result.custom_status["stages"][4]["detail"]["notice"]["error"]


def test_a_rejected_candidate_is_not_registered(lab: Lab, trained: World) -> None:
    approval_needed(trained)
    no = ExternalEvent(APPROVAL_EVENT, {"approved": False, "by": "ana", "reason": "not now"}, when=waiting)
    result = lab.run(RETRAIN, RETRAIN_INPUT, events=[no])
    assert result.runtime_status == "Failed" and "rejected by ana: not now" in result.failure
    assert REGISTER_MODEL not in result.activity_names


def test_an_unanswered_approval_times_out_as_a_rejection(lab: Lab, trained: World) -> None:
    approval_needed(trained)
    result = lab.run(RETRAIN, RETRAIN_INPUT)
    assert result.runtime_status == "Failed" and "approval timed out after 24.0 h: rejected" in result.failure
    assert result.elapsed >= timedelta(hours=24) and REGISTER_MODEL not in result.activity_names


def test_an_evaluation_that_keeps_failing_ends_the_run_with_a_verdict_and_registers_nothing(
        lab: Lab, trained: World) -> None:
    trained.faults = {"submit_evaluation": 1}
    result = lab.run(RETRAIN, RETRAIN_INPUT)
    assert result.runtime_status == "Failed" and result.custom_status["verdict"] == "failed"
    assert stages(result)["evaluate"] == "failed"
    assert "test fault in submit_evaluation" in result.custom_status["message"]
    assert REGISTER_MODEL not in result.activity_names


def test_a_transient_registry_outage_is_retried_and_the_candidate_registered(lab: Lab, trained: World) -> None:
    trained.outages = {"register_model": 2, "get_model_alias": 1}
    result = lab.run(RETRAIN, RETRAIN_INPUT)
    assert result.output["verdict"] == "registered" and list(trained.versions) == ["1", "2"]
