"""HTTP triggers: routes, methods, auth levels, request and response conversion."""

import requests

from devhost.testing import DevHostProcess


def test_anonymous_route_with_constraint_and_query(patterns_host: DevHostProcess) -> None:
    resp = requests.get(f"{patterns_host.base_url}/api/hello/World", params={"q": "x"}, timeout=10)
    assert resp.status_code == 200
    assert resp.json() == {"hello": "World", "q": "x", "method": "GET"}
    assert resp.headers["x-fixture"] == "yes"
    assert resp.headers["Content-Type"].startswith("application/json")


def test_route_constraint_mismatch_is_404_and_wrong_method_is_405(patterns_host: DevHostProcess) -> None:
    assert requests.get(f"{patterns_host.base_url}/api/hello/123", timeout=10).status_code == 404
    assert requests.post(f"{patterns_host.base_url}/api/hello/abc", timeout=10).status_code == 405


def test_function_level_needs_a_valid_key_from_header_or_code(patterns_host: DevHostProcess) -> None:
    url = f"{patterns_host.base_url}/api/items/5"
    assert requests.get(url, timeout=10).status_code == 401
    assert requests.get(url, headers={"x-functions-key": "wrong"}, timeout=10).status_code == 401
    assert requests.get(url, params={"code": patterns_host.function_key}, timeout=10).json()["id"] == 5
    put = requests.put(url, data=b"payload", headers={"x-functions-key": patterns_host.function_key}, timeout=10)
    assert put.status_code == 201 and put.json() == {"id": 5, "body": "payload"}
    assert requests.get(url, headers={"x-functions-key": patterns_host.master_key}, timeout=10).status_code == 200


def test_admin_level_accepts_only_the_master_key(patterns_host: DevHostProcess) -> None:
    url = f"{patterns_host.base_url}/api/admin-only"
    assert requests.get(url, headers={"x-functions-key": patterns_host.function_key}, timeout=10).status_code == 401
    resp = requests.get(url, headers={"x-functions-key": patterns_host.master_key}, timeout=10)
    assert resp.status_code == 200 and resp.text == "admin ok"


def test_clock_admin_endpoint_needs_the_master_key(patterns_host: DevHostProcess) -> None:
    url = f"{patterns_host.base_url}/admin/devhost/clock"
    assert requests.post(url, json={"seconds": 1}, timeout=10).status_code == 401
    bad = requests.post(url, json={"seconds": "soon"}, headers={"x-functions-key": patterns_host.master_key},
                        timeout=10)
    assert bad.status_code == 400
