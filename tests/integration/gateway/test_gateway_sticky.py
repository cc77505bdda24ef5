"""Sticky assignment on the real gateway: while an A/B split names a unit header, a unit always gets the deployment
its hash picks, the units divide as the weights say, and the request log keeps each request's unit."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

from adapters.gateway_client import DEPLOYMENT_HEADER
from cli.sampledata import scoring_rows
from gateway.sticky import assign
from mlops.ports import TrafficSplit

if TYPE_CHECKING:
    from conftest import GatewayProcess

ROWS = scoring_rows(1, seed=5)
STICKY = {"header": "X-User-Id", "salt": "release-abc-1"}


def _as(gw: GatewayProcess, endpoint: str, unit: str | None) -> str:
    headers = {"x-user-id": unit} if unit is not None else {}
    resp = gw.call("POST", f"/endpoints/{endpoint}/score", json={"input_data": ROWS}, headers=headers)
    assert resp.status_code == 200, resp.text
    return str(resp.headers[DEPLOYMENT_HEADER])


def _sticky_split(gw: GatewayProcess, endpoint: str, sticky: Any) -> Any:
    return gw.call("PUT", f"/endpoints/{endpoint}/traffic",
                   json={"traffic": {"A": 50, "B": 50}, "mirror_traffic": {}, "sticky": sticky})


def test_each_unit_always_gets_the_deployment_its_hash_picks_and_the_units_divide_by_the_weights(
        gateway: GatewayProcess, endpoint: str) -> None:
    resp = _sticky_split(gateway, endpoint, STICKY)
    assert resp.status_code == 200, resp.text
    assert resp.json()["sticky"] == {"header": "x-user-id", "salt": "release-abc-1"}  # header names are lower case
    served = {f"user-{i}": {_as(gateway, endpoint, f"user-{i}") for _ in range(3)} for i in range(60)}
    assert all(len(deps) == 1 for deps in served.values()), served  # three requests each, one deployment each
    traffic = {"A": 50, "B": 50, "C": 0}
    assert {u: deps.pop() for u, deps in served.items()} == {u: assign(traffic, STICKY["salt"], u) for u in served}
    shares = Counter(assign(traffic, STICKY["salt"], f"user-{i}") for i in range(60))
    assert set(shares) == {"A", "B"}  # both arms get units; the share itself is tested on 20,000 (unit tests)
    logged = gateway.call("GET", f"/endpoints/{endpoint}/requests", params={"start": "2000-01-01T00:00:00Z"}).json()
    assert Counter(r["__unit__"] for r in logged if "__unit__" in r) == {f"user-{i}": 3 for i in range(60)}


def test_requests_without_the_header_are_assigned_at_random_and_a_split_without_sticky_ends_it(
        gateway: GatewayProcess, endpoint: str) -> None:
    assert _sticky_split(gateway, endpoint, STICKY).status_code == 200
    assert {_as(gateway, endpoint, None) for _ in range(40)} == {"A", "B"}
    assert gateway.set_traffic(endpoint, {"A": 50, "B": 50}).status_code == 200  # the canary's next split
    assert "sticky" not in gateway.traffic(endpoint)  # Azure ML's shape again
    assert {_as(gateway, endpoint, "user-1") for _ in range(40)} == {"A", "B"}  # no longer sticky
    logged = gateway.call("GET", f"/endpoints/{endpoint}/requests", params={"start": "2000-01-01T00:00:00Z"}).json()
    assert not any("__unit__" in r for r in logged[:40])  # a unit is logged only while the endpoint is sticky


def test_a_sticky_setting_the_gateway_would_not_take_is_400_with_the_reason_and_changes_nothing(
        gateway: GatewayProcess, endpoint: str) -> None:
    before = gateway.traffic(endpoint)
    for sticky, reason in (({"header": "x user", "salt": "s"}, "sticky.header"), ({"header": "x-u", "salt": ""},
                           "sticky.salt"), ({"header": "x-u"}, "sticky must be"), ("x-u", "sticky must be")):
        resp = _sticky_split(gateway, endpoint, sticky)
        assert resp.status_code == 400 and reason in resp.json()["error"], (sticky, resp.text)
    assert gateway.traffic(endpoint) == before


def test_the_platform_client_sets_a_sticky_split_and_reads_it_back(gateway: GatewayProcess, endpoint: str) -> None:
    applied = gateway.client().set_traffic(endpoint, TrafficSplit({"A": 50, "B": 50}, sticky=STICKY))
    assert applied.sticky == {"header": "x-user-id", "salt": "release-abc-1"}
    assert gateway.client().get_traffic(endpoint).sticky == applied.sticky
