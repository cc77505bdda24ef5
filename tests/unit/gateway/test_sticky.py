"""Sticky assignment: the same unit and salt always give the same deployment, units divide by the weights, and
a new salt shuffles them."""

from __future__ import annotations

from collections import Counter

import pytest

from gateway.sticky import StickyError, assign, bucket, validate_sticky

UNITS = [f"user-{i}" for i in range(20_000)]


def test_a_unit_gets_the_same_deployment_every_time_whatever_the_order_of_the_split() -> None:
    assert assign({"a": 30, "b": 70}, "exp-1", "user-7") == assign({"b": 70, "a": 30}, "exp-1", "user-7")
    assert {assign({"a": 30, "b": 70}, "exp-1", "user-7") for _ in range(50)} == {assign({"a": 30, "b": 70},
                                                                                         "exp-1", "user-7")}
    assert 0 <= bucket("exp-1", "user-7") < 1


@pytest.mark.parametrize("percent", [10, 50, 90])
def test_units_divide_as_the_weights_say(percent: int) -> None:
    got = Counter(assign({"champion": 100 - percent, "challenger": percent}, "exp-1", u) for u in UNITS)
    # binomial: 20,000 units, the share within 4 standard deviations (at most 0.014 at 50 %)
    sd = (percent / 100 * (1 - percent / 100) / len(UNITS)) ** 0.5
    assert abs(got["challenger"] / len(UNITS) - percent / 100) < 4 * sd, got


def test_the_next_experiment_shuffles_the_units_again() -> None:
    split = {"a": 50, "b": 50}
    moved = sum(assign(split, "exp-1", u) != assign(split, "exp-2", u) for u in UNITS)
    assert 0.47 < moved / len(UNITS) < 0.53  # independent assignments: about half the units change arm


def test_only_live_deployments_are_assigned_and_none_when_nothing_is_live() -> None:
    assert {assign({"a": 0, "b": 100, "c": 0}, "exp", u) for u in UNITS[:200]} == {"b"}
    assert assign({"a": 0}, "exp", "u") is None and assign({}, "exp", "u") is None


def test_a_sticky_setting_is_checked_and_its_header_name_lower_cased() -> None:
    assert validate_sticky(None) is None
    assert validate_sticky({"header": "X-User-Id", "salt": "exp"}) == {"header": "x-user-id", "salt": "exp"}
    for bad in ({"header": "x user", "salt": "s"}, {"header": "-x", "salt": "s"}, {"header": "x" * 65, "salt": "s"},
                {"header": "x", "salt": ""}, {"header": "x", "salt": "s" * 129}, {"header": "x"},
                {"header": "x", "salt": "s", "more": 1}, ["x", "s"], {"header": 1, "salt": "s"}):
        with pytest.raises(StickyError):
            validate_sticky(bad)
