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


def test_with_a_unit_header_each_unit_counts_once_with_its_first_scored_label() -> None:
    ab = AbTest(enabled=True, min_units=2, unit_header="x-user-id")
    champion = {"a1": "1", "a2": "0", "a3": "1"}
    challenger = {"b1": "1", "b2#0": "1", "b2#1": "0", "b3": "1", "stray": "1"}
    units = {"a1": "ann", "a2": "ann", "a3": "bob", "b1": "cy", "b2": "cy", "b3": "ann"}
    labels = {"a1": "0", "a2": "0", "b1": "1", "b2#1": "0", "a3": "1", "b3": "1", "stray": "0"}
    report = judge(ab, champion, challenger, labels, units=units)
    # ann: a1 counts (wrong), a2 repeats her, b3 repeats her on the other arm (stickiness broken); cy: b1 counts
    # (right), b2#1 repeats; bob: a3 counts (right); "stray" has no unit: it is a unit of its own (wrong)
    assert report["unit"] == "header x-user-id" and report["units"] == 4
    assert report["arms"] == {"A": {"n": 2, "mean": 0.5}, "B": {"n": 2, "mean": 0.5}}
    assert (report["repeat_labels"], report["crossed_units"], report["unscored_labels"]) == (3, 1, 0)


def test_a_units_unscored_first_label_leaves_it_to_its_next() -> None:
    ab = AbTest(enabled=True, metric="absolute_error", min_units=2, unit_header="x-user-id")
    report = judge(ab, {"a1": "n/a", "a2": 2.0}, {}, {"a1": 1.0, "a2": 1.5}, units={"a1": "ann", "a2": "ann"})
    assert (report["units"], report["unscored_labels"], report["repeat_labels"]) == (1, 1, 0)
    assert report["arms"]["A"] == {"n": 1, "mean": 0.5}


def test_without_a_unit_header_the_units_given_are_ignored_and_each_request_is_a_unit() -> None:
    report = judge(AbTest(enabled=True, min_units=2), {"a1": "1", "a2": "1"}, {}, {"a1": "1", "a2": "1"},
                   units={"a1": "ann", "a2": "ann"})
    assert report["unit"] == "request" and report["units"] == 2 and report["repeat_labels"] == 0
