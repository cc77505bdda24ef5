"""The A/B join: which arm answered a labelled request, its outcome, and what did not join."""

from __future__ import annotations

from mlops.abtest import judge, outcome
from mlops.policy import AbTest


def test_outcomes_are_the_metric_on_each_answer() -> None:
    assert [outcome("accuracy", a, b) for a, b in ((1, "1"), ("0", 1.0), (True, 1), ("yes", "no"))] == [1, 0, 1, 0]
    assert outcome("absolute_error", "2.5", 1) == 1.5 and outcome("absolute_error", "n/a", 1) is None
    assert outcome("absolute_error", float("inf"), 1) is None


def test_labels_join_each_arm_by_request_id_in_arrival_order_and_the_rest_is_counted() -> None:
    ab = AbTest(enabled=True, metric="absolute_error", min_units=2)
    champion = {"a1": 1.0, "a2": 2.0}
    challenger = {"b1": 1.5, "b2#0": 3.0, "b2#1": "broken"}
    labels = {"b1": 1.0, "a1": 1.0, "zz": 4.0, "b2#1": 2.0, "a2": 1.0, "b2#0": 3.0}
    report = judge(ab, champion, challenger, labels)
    assert report["units"] == 4 and report["unmatched_labels"] == 1 and report["unscored_labels"] == 1
    assert report["arms"] == {"A": {"n": 2, "mean": 0.5}, "B": {"n": 2, "mean": 0.25}}
    assert report["answered"] == {"A": 2, "B": 3}
    assert report["metric"] == "absolute_error" and report["higher_is_better"] is False
    assert report["decision"] == "continue"  # four units of a plan that needs hundreds


def test_no_labels_yet_is_a_look_that_continues() -> None:
    report = judge(AbTest(enabled=True), {"a": "1"}, {"b": "0"}, {})
    assert report["units"] == 0 and report["decision"] == "continue"
