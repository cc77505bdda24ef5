"""The rollback runbook and the lifecycle that queues runs, in-process."""

from __future__ import annotations

import pytest

from mlops.contracts import (
    LIFECYCLE,
    RECORD_INCIDENT,
    ROLLBACK,
    LifecycleInput,
    ReleaseInput,
    RetrainInput,
    RollbackInput,
)
from mlops.ports import DataRef
from mlops.runs import Request

from .conftest import DATA_URL, MODEL, Lab, World

GOOD, BAD = f"{MODEL}-v1", f"{MODEL}-v2"


def test_a_rollback_restores_the_previous_champion_and_records_the_incident(lab: Lab, world: World) -> None:
    world.serving("2", previous="1")
    result = lab.run(ROLLBACK, RollbackInput(MODEL, "drift on f0", "2", "monitor", {"psi": 0.4}))
    assert result.runtime_status == "Completed", result.failure
    assert (result.output["verdict"], result.output["from_version"], result.output["to_version"]) == \
        ("rolled back", "2", "1")
    assert world.live() == {GOOD: 100} and world.aliases["champion"] == "1"
    assert world.tags("2")["release"] == "rolled back" and world.tags("2")["rollback.reason"] == "drift on f0"
    (incident,) = world.incidents
    assert (incident["from_version"], incident["to_version"], incident["evidence"]) == ("2", "1", {"psi": 0.4})
    (notice,) = world.notices
    assert (notice["kind"], notice["detail"]["from_version"], notice["detail"]["to_version"]) == \
        ("rolled_back", "2", "1")
    assert notice["reason"] == "v2 was rolled back to v1 (monitor): drift on f0"


def test_a_rollback_redeploys_a_previous_version_whose_deployment_was_cleaned_up(lab: Lab, world: World) -> None:
    world.serving("2", previous="1")
    del world.traffic[GOOD]
    world.deployments.discard(GOOD)
    result = lab.run(ROLLBACK, RollbackInput(MODEL, "health alert", "2", "azure-monitor"))
    assert result.output["verdict"] == "rolled back" and "begin_deployment" in result.activity_names
    assert world.live() == {GOOD: 100}


def test_a_rollback_whose_redeploy_fails_changes_no_traffic(lab: Lab, world: World) -> None:
    world.serving("2", previous="1")
    del world.traffic[GOOD]
    world.deploy_states = ["failed"]
    result = lab.run(ROLLBACK, RollbackInput(MODEL, "health alert", "2", "azure-monitor"))
    assert result.runtime_status == "Failed" and "could not redeploy v1" in result.failure
    assert world.live() == {BAD: 100} and world.aliases["champion"] == "2"


def test_without_a_previous_champion_a_rollback_does_nothing(lab: Lab, world: World) -> None:
    world.serving("1")
    result = lab.run(ROLLBACK, RollbackInput(MODEL, "drift", "1", "monitor"))
    assert result.output["verdict"] == "nothing to do"
    assert result.output["reason"] == "there is no earlier version of credit to roll back to"
    assert world.traffic_history == [] and RECORD_INCIDENT not in result.activity_names


def test_a_rollback_about_a_champion_that_already_changed_does_nothing(lab: Lab, world: World) -> None:
    world.serving("3", previous="1")
    result = lab.run(ROLLBACK, RollbackInput(MODEL, "drift", "2", "monitor"))
    assert result.output["verdict"] == "nothing to do" and "already rolled back" in result.output["reason"]
    assert world.traffic_history == []


@pytest.mark.parametrize("source,retrain", [("monitor", True), ("azureml", True), ("azure-monitor", False),
                                            ("operator", False)])
def test_only_a_drift_rollback_asks_for_a_retrain_when_the_policy_says_rollback_and_retrain(
        lab: Lab, world: World, source: str, retrain: bool) -> None:
    # docs/policy.md: monitoring.on_drift governs drift; a health alert always just rolls back
    world.serving("2", previous="1")
    world.with_policy(monitoring={"on_drift": "rollback_and_retrain"})
    result = lab.run(ROLLBACK, RollbackInput(MODEL, "alert", "2", source))
    assert result.output["verdict"] == "rolled back" and result.output["retrain"] is retrain


# -- the lifecycle -----------------------------------------------------------------------------
def request(run: RetrainInput | ReleaseInput | RollbackInput, key: str) -> Request:
    return Request.of(run, dedup_key=key)


def test_the_lifecycle_runs_pending_requests_one_at_a_time_in_priority_order_then_cleans_up(
        lab: Lab, world: World) -> None:
    world.serving("2", previous="1")
    world.register("3")
    # the retrain runs after the release, so it meets v3 as the champion
    world.scores = {"runs:/job-1/model": {"accuracy_score": 0.95}, "models:/credit/3": {"accuracy_score": 0.9}}
    world.pending = [request(ReleaseInput(MODEL, "3"), "registered:3"),
                     request(RetrainInput(MODEL, DataRef(DATA_URL)), "blob:d2")]
    result = lab.run(LIFECYCLE, LifecycleInput(MODEL))
    assert result.runtime_status == "Completed", result.failure
    runs = result.output["runs"]
    assert [(r["kind"], r["verdict"]) for r in runs] == [("release", "promoted"), ("retrain", "registered")]
    assert [r["run_id"] for r in runs] == [req.run_id for req in (
        request(ReleaseInput(MODEL, "3"), "registered:3"), request(RetrainInput(MODEL, DataRef(DATA_URL)), "blob:d2"))]
    assert set(result.sub_orchestrations) == {r["run_id"] for r in runs}
    # the idle lifecycle deletes what carries no traffic: the old previous (v1) and the retired v2
    assert sorted(world.deleted) == [GOOD, BAD] and world.live() == {f"{MODEL}-v3": 100}


def test_a_failed_run_is_recorded_and_the_lifecycle_goes_on(lab: Lab, world: World) -> None:
    world.serving("1")
    world.data_problems = ["empty file: no header row"]
    world.pending = [request(RetrainInput(MODEL, DataRef(DATA_URL)), "blob:bad")]
    result = lab.run(LIFECYCLE, LifecycleInput(MODEL))
    assert result.runtime_status == "Completed"
    (run,) = result.output["runs"]
    assert run["verdict"].startswith("failed: ") and "data validation failed" in run["verdict"]


def test_a_drift_rollback_queues_a_retrain_on_the_newest_data(lab: Lab, world: World) -> None:
    world.serving("2", previous="1")
    world.with_policy(monitoring={"on_drift": "rollback_and_retrain"})
    world.landed = DataRef(DATA_URL, etag="0x9")
    rollback = request(RollbackInput(MODEL, "drift", "2", "monitor"), "drift:1")
    world.pending = [rollback]
    result = lab.run(LIFECYCLE, LifecycleInput(MODEL))
    assert result.runtime_status == "Completed"
    (queued,) = world.queued
    assert (queued.kind, queued.dedup_key, queued.requested_by) == ("retrain", f"after:{rollback.run_id}", "rollback")
    assert queued.run_input() == RetrainInput(MODEL, DataRef(DATA_URL, etag="0x9"),
                                              reason=f"after rollback {rollback.run_id}")


def test_a_health_rollback_queues_no_retrain(lab: Lab, world: World) -> None:
    world.serving("2", previous="1")
    world.with_policy(monitoring={"on_drift": "rollback_and_retrain"})
    world.landed = DataRef(DATA_URL)
    world.pending = [request(RollbackInput(MODEL, "5xx", "2", "azure-monitor"), "alert:1")]
    result = lab.run(LIFECYCLE, LifecycleInput(MODEL))
    assert result.output["runs"][0]["verdict"] == "rolled back" and world.queued == []


def test_after_ten_runs_the_lifecycle_continues_as_new_keeping_its_recent_history(lab: Lab, world: World) -> None:
    world.serving("1")
    world.pending = [request(RollbackInput(MODEL, "x", "1", "operator"), f"op:{i}") for i in range(12)]
    result = lab.run(LIFECYCLE, LifecycleInput(MODEL))
    assert result.runtime_status == "Completed" and result.executions == 2
    assert len(result.output["runs"]) == 12
    assert all(r["verdict"] == "nothing to do" for r in result.output["runs"])


def test_a_rollback_that_cannot_reach_the_platform_ends_with_a_verdict(lab: Lab, world: World) -> None:
    world.serving("2", previous="1")
    world.outages = {"set_traffic": 1000}
    result = lab.run(ROLLBACK, RollbackInput(MODEL, "drift", "2", "monitor"))
    assert result.runtime_status == "Failed" and result.custom_status["verdict"] == "failed"
    assert {s["name"]: s["state"] for s in result.custom_status["stages"]}["restore"] == "failed"
    assert "unexpected failure" in result.custom_status["message"] and world.aliases["champion"] == "2"


def test_the_lifecycle_indexes_each_run_when_it_starts_and_when_it_ends(lab: Lab, world: World) -> None:
    world.serving("1")
    world.data_problems = ["empty file: no header row"]
    failed = request(RetrainInput(MODEL, DataRef(DATA_URL)), "blob:bad")
    release = request(ReleaseInput(MODEL, "1"), "registered:1")
    world.pending = [failed, release]
    result = lab.run(LIFECYCLE, LifecycleInput(MODEL))
    assert result.runtime_status == "Completed", result.failure
    seen = [(e["id"], e["status"], e["verdict"], e["version"]) for e in world.indexed]
    assert seen[0] == (failed.run_id, "Running", None, None)  # the world hands out requests in order
    assert seen[1][:3] == (failed.run_id, "Failed", "failed")
    assert "data validation failed" in world.indexed[1]["message"]
    assert seen[2] == (release.run_id, "Running", None, "1")
    assert seen[3][:2] == (release.run_id, "Completed") and world.indexed[3]["ended"]
    # the end write keeps the start's time: it is the entry's name in the index
    assert [e["created"] for e in world.indexed[1::2]] == [e["created"] for e in world.indexed[::2]]
