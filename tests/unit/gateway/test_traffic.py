"""Azure ML's traffic-split rules, as the gateway and the Azure ML platform both apply them."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.traffic import MAX_MIRROR_PERCENT, SplitError, validate_split

DEPLOYMENTS = {"blue", "green", "shadow"}


@pytest.mark.parametrize(("traffic", "mirror"), [
    ({"blue": 100, "green": 0}, {}),
    ({"blue": 90, "green": 10}, {"shadow": MAX_MIRROR_PERCENT}),
    ({"blue": 0, "green": 0}, {}),  # nothing served is a split Azure ML takes
    ({}, {}),
    ({"blue": 100}, {"green": 0, "shadow": 20}),  # a 0 % mirror is no mirror
])
def test_a_split_azure_ml_takes_passes(traffic: dict[str, Any], mirror: dict[str, Any]) -> None:
    validate_split(DEPLOYMENTS, traffic, mirror)


@pytest.mark.parametrize(("traffic", "mirror", "field", "message"), [
    ({"blue": 50, "red": 50}, {}, "deployment 'red'", "does not exist on this endpoint"),
    ({"blue": 100}, {"red": 10}, "deployment 'red'", "does not exist on this endpoint"),
    ({"blue": 99.5, "green": 0.5}, {}, "percent for 'blue'", "must be an integer 0..100, got 99.5"),
    ({"blue": "100"}, {}, "percent for 'blue'", "must be an integer 0..100, got '100'"),
    ({"blue": 100}, {"green": True}, "percent for 'green'", "must be an integer 0..100, got True"),
    ({"blue": 110, "green": -10}, {}, "percent for 'blue'", "must be an integer 0..100, got 110"),
    ({"blue": 60, "green": 30}, {}, "traffic", "must add up to 100, got 90"),
    ({"blue": 100}, {"green": 10, "shadow": 10}, "mirror_traffic", "may name at most one deployment"),
    ({"blue": 100}, {"shadow": 60}, "mirror_traffic",
     "may not exceed 50 %, got 60 for 'shadow' (Azure ML mirrors at most 50 % of the requests)"),
    ({"blue": 50, "green": 50}, {"green": 10}, "deployment 'green'", "cannot take live and mirrored traffic at once"),
], ids=["unknown-live", "unknown-mirror", "fraction", "string", "boolean", "out-of-range", "sum-not-100",
        "two-mirrored", "mirror-over-50", "live-and-mirrored"])
def test_a_split_azure_ml_refuses_names_the_field_and_the_reason(
        traffic: dict[str, Any], mirror: dict[str, Any], field: str, message: str) -> None:
    with pytest.raises(SplitError) as refused:
        validate_split(DEPLOYMENTS, traffic, mirror)
    assert (refused.value.field, refused.value.message) == (field, message)
    assert str(refused.value) == f"{field} {message}"
