"""Every branch of the release runbook, in-process: no Azurite, no gateway, no devhost process."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from devhost.testing import ExternalEvent
from mlops.contracts import ABORT_EVENT, PAUSE_EVENT, RELEASE, RESUME_EVENT, ReleaseInput

from .conftest import MODEL, Lab, World, failing

LIVE, CAND = f"{MODEL}-v1", f"{MODEL}-v2"


def stages(result: Any) -> dict[str, str]:
    return {s["name"]: s["state"] for s in result.custom_status["stages"]}


@pytest.fixture
def second_release(world: World) -> World:
    """v1 serves 100 %; v2 is registered and about to be released."""
    world.serving("1")
    world.register("2")
    return world


def test_a_healthy_release_goes_through_shadow_and_every_canary_step_and_is_promoted(lab: Lab,
                                                                                      second_release: World) -> None:
    result = lab.run(RELEASE, ReleaseInput(MODEL, "2"))
    assert result.runtime_status == "Completed", result.failure
    assert result.output["verdict"] == "promoted" and result.output["previous"] == "1"
    assert set(stages(result).values()) == {"succeeded"}
    world = second_release
    assert world.live() == {CAND: 100} and world.mirror == {}
    assert world.aliases == {"champion": "2", "previous": "1"}
    assert world.tags("2")["release"] == "promoted" and world.tags("1")["release"] == "retired"
    assert {f"mirror:{CAND}": 20, LIVE: 100, CAND: 0} in world.traffic_history
    assert {LIVE: 90, CAND: 10} in world.traffic_history and {LIVE: 50, CAND: 50} in world.traffic_history
    # deploy polls, shadow bake, two canary bakes and the last step's bake, on the virtual clock
    assert result.elapsed >= timedelta(minutes=5 * 3 + 1)


def test_a_first_release_goes_straight_to_100_percent(lab: Lab, world: World) -> None:
    world.register("1")
    result = lab.run(RELEASE, ReleaseInput(MODEL, "1"))
    assert result.output["verdict"] == "promoted" and result.output["previous"] is None
    assert world.live() == {f"{MODEL}-v1": 100} and world.aliases == {"champion": "1"}
    assert stages(result)["shadow"] == "skipped" and stages(result)["canary 10%"] == "skipped"


def test_an_unregistered_version_fails_and_changes_nothing(lab: Lab, world: World) -> None:
    world.serving("1")
    result = lab.run(RELEASE, ReleaseInput(MODEL, "9"))
    assert result.runtime_status == "Failed" and "credit v9 is not registered" in (result.failure or "")
    assert world.traffic_history == [] and world.aliases == {"champion": "1"}


def test_a_deployment_that_fails_rolls_back_and_tags_the_candidate_rejected(lab: Lab, second_release: World) -> None:
    second_release.deploy_states = ["running", "failed"]
    result = lab.run(RELEASE, ReleaseInput(MODEL, "2"))
    assert result.runtime_status == "Failed" and "image pull failed" in (result.failure or "")
    assert result.custom_status["verdict"] == "rolled back" and stages(result)["deploy"] == "failed"
    assert second_release.live() == {LIVE: 100} and second_release.tags("2")["release"] == "rejected"
    assert second_release.aliases["champion"] == "1"


def test_a_deployment_that_never_gets_ready_times_out_after_30_minutes(lab: Lab, second_release: World) -> None:
    second_release.deploy_states = ["running"]
    result = lab.run(RELEASE, ReleaseInput(MODEL, "2"))
    assert result.runtime_status == "Failed" and "not ready after 30 minutes" in (result.failure or "")
    assert timedelta(minutes=30) <= result.elapsed < timedelta(minutes=31)
    assert second_release.live() == {LIVE: 100} and second_release.tags("2")["release"] == "rejected"


def test_a_failed_smoke_test_restores_live_traffic(lab: Lab, second_release: World) -> None:
    second_release.smoke_passes = False
    result = lab.run(RELEASE, ReleaseInput(MODEL, "2"))
    assert result.runtime_status == "Failed" and "smoke test failed: HTTPError: 500" in (result.failure or "")
    assert stages(result)["smoke"] == "failed" and stages(result)["shadow"] == "pending"
    assert second_release.live() == {LIVE: 100}
    assert second_release.tags("2")["release.reason"].startswith("smoke test failed")


def test_an_unhealthy_shadow_fails_before_any_live_traffic_moves(lab: Lab, second_release: World) -> None:
    second_release.metrics[CAND] = failing
    result = lab.run(RELEASE, ReleaseInput(MODEL, "2"))
    assert result.runtime_status == "Failed" and "shadow analysis failed: error_rate" in (result.failure or "")
    assert all(split.get(CAND, 0) == 0 for split in second_release.traffic_history)
    assert second_release.live() == {LIVE: 100} and second_release.mirror == {}


@pytest.mark.parametrize("percent", [10, 50])
def test_a_canary_step_that_fails_its_analysis_rolls_back(lab: Lab, second_release: World, percent: int) -> None:
    second_release.with_policy(release={**second_release.policy["release"], "shadow": {"enabled": False}})
    calls = {"n": 0}

    def fails_at_step(deployment: str) -> Any:
        calls["n"] += 1
        from .conftest import healthy
        return failing(deployment) if calls["n"] > (0 if percent == 10 else 1) else healthy(deployment)

    second_release.metrics[CAND] = fails_at_step
    result = lab.run(RELEASE, ReleaseInput(MODEL, "2"))
    assert result.runtime_status == "Failed" and f"canary at {percent}% failed" in (result.failure or "")
    assert stages(result)[f"canary {percent}%"] == "failed"
    assert second_release.live() == {LIVE: 100} and second_release.tags("2")["release"] == "rejected"
    assert result.custom_status["analysis"]["percent"] == percent
    (notice,) = second_release.notices
    assert notice["kind"] == "rolled_back" and notice["detail"] == {"to_version": "1", "from_version": "2"}
    assert notice["reason"].startswith(f"the release of v2 was rolled back at canary {percent}%: canary at")


@pytest.mark.parametrize("stage,at", [("shadow", 2), ("canary 10%", 7), ("canary 50%", 12)])
def test_an_abort_during_a_bake_restores_live_traffic(lab: Lab, second_release: World, stage: str, at: int) -> None:
    abort = ExternalEvent(ABORT_EVENT, {"reason": "looks wrong"}, at=timedelta(minutes=at))
    result = lab.run(RELEASE, ReleaseInput(MODEL, "2"), events=[abort])
    assert result.runtime_status == "Failed" and "aborted: looks wrong" in (result.failure or "")
    assert stages(result)[stage] == "failed"
    assert second_release.live() == {LIVE: 100} and second_release.mirror == {}
    assert second_release.aliases["champion"] == "1"


def test_a_paused_release_waits_for_resume_and_then_finishes_its_bake(lab: Lab, second_release: World) -> None:
    events = [ExternalEvent(PAUSE_EVENT, {"reason": "lunch"}, at=timedelta(minutes=7)),
              ExternalEvent(RESUME_EVENT, {"reason": "back"}, at=timedelta(hours=2))]
    result = lab.run(RELEASE, ReleaseInput(MODEL, "2"), events=events)
    assert result.runtime_status == "Completed" and result.output["verdict"] == "promoted"
    assert result.elapsed > timedelta(hours=2)  # nothing moved on while paused
    assert second_release.live() == {CAND: 100}


def test_an_abort_while_paused_ends_the_release(lab: Lab, second_release: World) -> None:
    events = [ExternalEvent(PAUSE_EVENT, {}, at=timedelta(minutes=7)),
              ExternalEvent(ABORT_EVENT, {"reason": "not today"}, at=timedelta(minutes=30))]
    result = lab.run(RELEASE, ReleaseInput(MODEL, "2"), events=events)
    assert result.runtime_status == "Failed" and "aborted: not today" in (result.failure or "")
    assert second_release.live() == {LIVE: 100}


# -- platform failures (issue 12, D1) -----------------------------------------------------------
FOREVER = 1000


def test_a_short_platform_outage_mid_release_is_ridden_out_and_the_release_is_promoted(
        lab: Lab, second_release: World) -> None:
    second_release.outages = {"set_traffic": 3, "deployment_metrics": 2}
    result = lab.run(RELEASE, ReleaseInput(MODEL, "2"))
    assert result.runtime_status == "Completed", result.failure
    assert result.output["verdict"] == "promoted" and second_release.live() == {CAND: 100}


def test_a_traffic_change_still_being_applied_is_polled_and_each_bake_window_starts_once_it_is_applied(
        lab: Lab, second_release: World) -> None:
    second_release.update_polls = 2  # Azure ML: the endpoint reads "Updating" twice after each change
    result = lab.run(RELEASE, ReleaseInput(MODEL, "2"))
    assert result.runtime_status == "Completed", result.failure
    assert result.output["verdict"] == "promoted" and second_release.live() == {CAND: 100}
    windows = second_release.metrics_since
    assert windows and set(windows) <= set(second_release.applied_at)  # never the time the change was asked


def test_a_traffic_change_never_applied_fails_the_release_with_the_reason(lab: Lab, second_release: World) -> None:
    second_release.update_polls = FOREVER
    result = lab.run(RELEASE, ReleaseInput(MODEL, "2"))
    assert result.runtime_status == "Failed"
    assert "the traffic update was not applied after 15 minutes" in (result.failure or ""), result.failure


def test_one_transient_error_from_the_deployment_status_poll_does_not_fail_the_release(
        lab: Lab, second_release: World) -> None:
    # what Azure ML's 500 becomes (tests/unit/azure/test_azureml_platform.py): a TransientError of the activity
    second_release.outages = {"get_operation": 1}
    result = lab.run(RELEASE, ReleaseInput(MODEL, "2"))
    assert result.runtime_status == "Completed", result.failure
    assert result.output["verdict"] == "promoted" and second_release.outages == {"get_operation": 0}


def test_a_permanent_error_from_the_deployment_status_poll_fails_the_release_at_once_with_its_reason(
        lab: Lab, second_release: World) -> None:
    second_release.faults = {"get_operation": 1}
    result = lab.run(RELEASE, ReleaseInput(MODEL, "2"))
    assert result.runtime_status == "Failed" and "test fault in get_operation" in (result.failure or "")
    assert second_release.live() == {LIVE: 100}


def test_an_outage_that_outlasts_the_retries_restores_live_traffic_and_removes_the_mirror(
        lab: Lab, second_release: World) -> None:
    second_release.outages = {"deployment_metrics": FOREVER}  # the shadow step cannot be judged
    result = lab.run(RELEASE, ReleaseInput(MODEL, "2"))
    assert result.runtime_status == "Failed" and "unexpected failure" in (result.failure or "")
    assert result.custom_status["verdict"] == "rolled back" and stages(result)["shadow"] == "failed"
    assert second_release.live() == {LIVE: 100} and second_release.mirror == {}
    assert second_release.tags("2")["release"] == "rejected" and second_release.aliases["champion"] == "1"


def test_an_unexpected_error_is_not_retried_and_still_restores_live_traffic(lab: Lab, second_release: World) -> None:
    second_release.faults = {"tag_model_version": 1}  # the first tag is the old champion's, at promotion
    result = lab.run(RELEASE, ReleaseInput(MODEL, "2"))
    assert result.runtime_status == "Failed" and "test fault in tag_model_version" in (result.failure or "")
    assert stages(result)["promote"] == "failed" and result.custom_status["verdict"] == "rolled back"
    # promotion had moved traffic and the champion alias: both are back on v1
    assert second_release.live() == {LIVE: 100} and second_release.aliases["champion"] == "1"


def test_when_even_the_restore_fails_the_verdict_says_so(lab: Lab, second_release: World) -> None:
    second_release.outages = {"set_traffic": FOREVER}  # the platform stays down from the shadow step on
    result = lab.run(RELEASE, ReleaseInput(MODEL, "2"))
    assert result.runtime_status == "Failed" and result.custom_status["verdict"] == "failed"
    assert "restoring live traffic failed too" in result.custom_status["message"]
    assert second_release.live() == {LIVE: 100}  # nothing moved: the first change never went through
