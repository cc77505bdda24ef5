"""Deployments are deleted when they are no longer needed, and a rollback brings one back.

Policy ``janitor`` has no rollback window: the deployment a promotion replaces is deleted as
soon as the model's lifecycle is idle, a rollback redeploys it, and the rolled-back version's
deployment is deleted in turn.
"""

from __future__ import annotations

from stacklab import Lab, drift_event

MODEL = ENDPOINT = "janitor"


def _deployments_become(lab: Lab, expected: set[str]) -> None:
    lab.wait(lambda: set(lab.gateway.list_deployments(ENDPOINT)) == expected,
             what=f"the deployments of {ENDPOINT} to be {sorted(expected)}")


def test_replaced_and_rolled_back_deployments_are_deleted_and_a_rollback_redeploys(lab: Lab) -> None:
    lab.land_and_promote(MODEL, "one.csv", 31)
    lab.land_and_promote(MODEL, "two.csv", 32)
    _deployments_become(lab, {f"{MODEL}-v2"})  # v1's window (0 hours) ended at the promotion
    lab.idle(MODEL)
    assert lab.gateway.get_traffic(ENDPOINT).traffic == {f"{MODEL}-v2": 100}

    assert lab.publish([drift_event(MODEL, "2")]).status_code == 200
    rollback = lab.finished(f"rollback-{MODEL}-")[0]
    assert rollback["output"]["verdict"] == "rolled back", rollback["output"]
    _deployments_become(lab, {f"{MODEL}-v1"})  # redeployed for the rollback; v2 was rolled back: deleted
    assert lab.gateway.get_traffic(ENDPOINT).traffic == {f"{MODEL}-v1": 100}
    lab.idle(MODEL)
    lifecycle = lab.status(f"lifecycle-{MODEL}")
    cleaned = lifecycle["output"]["cleaned"]
    assert {"deployment": f"{MODEL}-v2", "version": "2", "reason": "v2 was rolled back"} in cleaned, lifecycle
