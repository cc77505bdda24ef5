"""The release's A/B phase, in-process: each look's outcomes are simulated (seeded), the decision is the app's own
statistics (``mlops.abtest`` over ``mlops.experiment``), and what the release does with it is checked as an
operator would see it: the verdict, the stage's report, live traffic."""

from __future__ import annotations

from typing import Any

import pytest

from devhost.testing import ExternalEvent
from mlops.contracts import ABORT_EVENT, RELEASE, ReleaseInput

from .conftest import MODEL, Lab, World, failing

LIVE, CAND = f"{MODEL}-v1", f"{MODEL}-v2"
AB = {"enabled": True, "percent": 50, "min_effect": 0.1, "min_units": 100, "max_units": 600, "look_minutes": 30}


def stages(result: Any) -> dict[str, str]:
    return {s["name"]: s["state"] for s in result.custom_status["stages"]}


def experiment(result: Any) -> dict[str, Any]:
    return next(s for s in result.custom_status["stages"] if s["name"] == "a/b")["detail"]["experiment"]


@pytest.fixture
def ab_release(world: World) -> World:
    """v1 serves 100 %; v2 is registered; the release plan has an A/B phase after shadow."""
    world.serving("1")
    world.register("2")
    release = dict(world.policy["release"])
    world.policy["release"] = {**release, "ab": dict(AB)}
    return world


def test_a_truly_better_challenger_is_shipped_by_the_statistics_then_goes_through_the_canary(
        lab: Lab, ab_release: World) -> None:
    ab_release.ab_right = (0.6, 0.8)  # the challenger answers right 80 % of the time, the champion 60 %
    result = lab.run(RELEASE, ReleaseInput(MODEL, "2"))
    assert result.runtime_status == "Completed", result.failure
    assert result.output["verdict"] == "promoted"
    assert list(stages(result)) == ["deploy", "smoke", "shadow", "a/b", "canary 10%", "canary 50%", "canary 100%",
                                    "promote"]
    report = experiment(result)
    assert report["decision"] == "ship" and report["lower"] > 0
    assert report["arms"]["B"]["mean"] > report["arms"]["A"]["mean"]
    assert report["srm_p_value"] > 0.001 and report["units"] < report["planned_units"]  # shipped early
    assert {LIVE: 50, CAND: 50} in ab_release.traffic_history
    look = ab_release.ab_looks[0]
    assert (look["champion"], look["challenger"]) == (LIVE, CAND)
    assert look["guardrails"] and all(look["guardrails"].values())  # this window's health checks, all passing
    assert ab_release.live() == {CAND: 100}


def test_an_equal_challenger_runs_to_the_planned_size_and_the_champion_stays(lab: Lab, ab_release: World) -> None:
    ab_release.ab_right = (0.7, 0.7)
    result = lab.run(RELEASE, ReleaseInput(MODEL, "2"))
    assert result.runtime_status == "Failed" and result.custom_status["verdict"] == "rolled back"
    report = experiment(result)
    assert report["decision"] == "keep_champion" and report["units"] >= report["planned_units"] == 600
    assert report["lower"] < 0 < report["upper"]
    assert len(ab_release.ab_looks) == 3  # 200 labelled units a look, 600 planned
    assert "A/B keep champion: no difference found in the planned 600 units: inconclusive" in result.failure
    assert ab_release.live() == {LIVE: 100} and ab_release.tags("2")["release"] == "rejected"
    assert stages(result)["canary 10%"] == "pending"  # never reached


def test_a_broken_split_halts_the_experiment_on_its_sample_ratio(lab: Lab, ab_release: World) -> None:
    ab_release.ab_labelled = (0.5, 1.0)  # half the champion's labels are lost: a 1:2 split where 1:1 was planned
    result = lab.run(RELEASE, ReleaseInput(MODEL, "2"))
    report = experiment(result)
    assert report["decision"] == "halt_srm" and report["srm_p_value"] < 0.001
    assert result.custom_status["verdict"] == "rolled back" and "sample ratio mismatch" in result.failure
    assert ab_release.live() == {LIVE: 100}


def test_a_worse_challenger_is_stopped_for_harm(lab: Lab, ab_release: World) -> None:
    ab_release.ab_right = (0.8, 0.55)
    result = lab.run(RELEASE, ReleaseInput(MODEL, "2"))
    report = experiment(result)
    assert report["decision"] == "stop_for_harm" and report["upper"] < 0
    assert "the challenger is worse" in result.failure and ab_release.live() == {LIVE: 100}


def test_a_failing_guardrail_stops_the_experiment_whatever_the_outcomes(lab: Lab, ab_release: World) -> None:
    ab_release.ab_right = (0.6, 0.8)
    ab_release.policy["release"]["shadow"] = {"enabled": False}  # the shadow analysis would catch it first
    ab_release.metrics[CAND] = failing
    result = lab.run(RELEASE, ReleaseInput(MODEL, "2"))
    report = experiment(result)
    assert report["decision"] == "stop_for_harm" and report["guardrails"]["error_rate"] is False
    assert "guardrail failed: error_rate" in result.failure and ab_release.live() == {LIVE: 100}


def test_an_operator_can_stop_the_experiment_and_live_traffic_goes_back(lab: Lab, ab_release: World) -> None:
    ab_release.ab_right = (0.7, 0.7)
    stop = ExternalEvent(ABORT_EVENT, {"reason": "the marketing campaign skews it"},
                         when=lambda custom: (custom or {}).get("stage") == "a/b")
    result = lab.run(RELEASE, ReleaseInput(MODEL, "2"), events=[stop])
    assert result.custom_status["verdict"] == "rolled back"
    assert "aborted: the marketing campaign skews it" in result.failure
    assert ab_release.live() == {LIVE: 100} and ab_release.ab_looks == []


def test_a_shipped_challenger_can_go_straight_to_promote(lab: Lab, ab_release: World) -> None:
    ab_release.ab_right = (0.6, 0.8)
    ab_release.policy["release"]["ab"]["then"] = "promote"
    result = lab.run(RELEASE, ReleaseInput(MODEL, "2"))
    assert result.output["verdict"] == "promoted"
    assert {s: stages(result)[s] for s in ("a/b", "canary 10%", "canary 50%")} == {
        "a/b": "succeeded", "canary 10%": "skipped", "canary 50%": "skipped"}
    assert {LIVE: 90, CAND: 10} not in ab_release.traffic_history and ab_release.live() == {CAND: 100}


def test_a_unit_header_makes_the_ab_split_sticky_for_this_release_and_the_canary_ends_it(
        lab: Lab, ab_release: World) -> None:
    ab_release.policy["release"]["ab"]["unit_header"] = "x-user-id"
    ab_release.ab_right = (0.6, 0.8)
    result = lab.run(RELEASE, ReleaseInput(MODEL, "2"))
    assert result.runtime_status == "Completed", result.failure
    ab_split = ab_release.traffic_history.index({LIVE: 50, CAND: 50})
    assert ab_release.sticky_history[ab_split] == {"header": "x-user-id", "salt": result.instance_id}
    assert [s for i, s in enumerate(ab_release.sticky_history) if i != ab_split] == [None] * (
        len(ab_release.sticky_history) - 1)  # shadow before, the canary steps after: routed by weight alone
    assert experiment(result)["unit"] == "header x-user-id"
