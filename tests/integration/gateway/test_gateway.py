"""The local scoring gateway as a real process, driven over HTTP the way the platform and operators use it:
key auth, deployments as operations, scoring through the split, Azure ML's traffic rules, shadow traffic,
atomic traffic changes under load, metrics, deletes guarded by traffic, and a restart."""

from __future__ import annotations

import http.client
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from adapters.gateway_client import DEPLOYMENT_HEADER
from cli.sampledata import scoring_rows
from mlops.errors import PlatformError
from mlops.ports import ModelVersion, TrafficSplit

if TYPE_CHECKING:  # fixtures come from this directory's conftest.py
    from conftest import GatewayProcess, Models

KEY_HEADER = "x-gateway-key"
ROWS = scoring_rows(3, seed=5)
ZEROS, ONES = [0] * len(ROWS), [1] * len(ROWS)


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _new_endpoint() -> str:
    return f"ep-{uuid.uuid4().hex[:8]}"


# -- requests in flight ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Answer:
    """What one client got back, and when (time.monotonic()) it arrived."""

    status: int
    deployment: str | None
    text: str
    at: float

    @property
    def predictions(self) -> Any:
        return json.loads(self.text).get("predictions")


def _post_score(gateway: GatewayProcess, endpoint: str, sent: threading.Semaphore) -> Answer:
    # http.client, not requests: it lets us signal "sent" before blocking on the answer
    conn = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=60)
    try:
        conn.request("POST", f"/endpoints/{endpoint}/score", body=json.dumps({"input_data": ROWS}),
                     headers={KEY_HEADER: gateway.key, "Content-Type": "application/json"})
        sent.release()
        resp = conn.getresponse()
        return Answer(resp.status, resp.getheader(DEPLOYMENT_HEADER), resp.read().decode(), time.monotonic())
    finally:
        conn.close()


@contextmanager
def _in_flight(gateway: GatewayProcess, endpoint: str, n: int) -> Iterator[list[Future[Answer]]]:
    """n score requests through the split, one per thread; yields once all of them have been sent."""
    sent = threading.Semaphore(0)
    with ThreadPoolExecutor(max_workers=n) as pool:
        futures = [pool.submit(_post_score, gateway, endpoint, sent) for _ in range(n)]
        for _ in range(n):
            assert sent.acquire(timeout=30), "a score request could not be sent"
        time.sleep(0.1)  # the requests are on the wire; give the gateway a moment to read and route them
        yield futures


# -- auth ------------------------------------------------------------------------------------------
# Every route of docs/gateway.md but /health, with a body that would change something if accepted.
ROUTES: list[tuple[str, str, Any]] = [
    ("PUT", "/endpoints/{e}/deployments/D", {"model_uri": "{model}", "model_name": "m", "model_version": "1"}),
    ("GET", "/operations/{op}", None),
    ("GET", "/endpoints/{e}/deployments", None),
    ("DELETE", "/endpoints/{e}/deployments/B", None),
    ("GET", "/endpoints/{e}/traffic", None),
    ("PUT", "/endpoints/{e}/traffic", {"traffic": {"B": 100}, "mirror_traffic": {}}),
    ("POST", "/endpoints/{e}/score", {"input_data": ROWS}),
    ("GET", "/endpoints/{e}/metrics?deployment=A&start=2000-01-01T00:00:00Z", None),
    ("GET", "/endpoints/{e}/requests?start=2000-01-01T00:00:00Z", None),
    ("PUT", "/endpoints/{e}/deployments/A/faults", {"error_rate": 1.0, "latency_ms": 0}),
]


def _observable(gateway: GatewayProcess, endpoint: str) -> dict[str, Any]:
    """Everything a user can read about an endpoint."""
    return {"deployments": gateway.deployments(endpoint), "split": gateway.traffic(endpoint),
            "requests": {d: gateway.metrics(endpoint, d)["request_count"] for d in ("A", "B", "C", "D")}}


@pytest.mark.parametrize("key", [None, "not-the-key"], ids=["no-key", "wrong-key"])
@pytest.mark.parametrize(("method", "path", "body"), ROUTES, ids=[f"{m} {p.split('?')[0]}" for m, p, _ in ROUTES])
def test_every_route_but_health_needs_the_key(gateway: GatewayProcess, endpoint: str, models: Models,
                                              method: str, path: str, body: Any, key: str | None) -> None:
    op_id = gateway.call("PUT", f"/endpoints/{endpoint}/deployments/A", json={"model_uri": models.zero}).json()
    url = path.format(e=endpoint, op=op_id["operation_id"])
    if isinstance(body, dict) and "model_uri" in body:
        body = {**body, "model_uri": models.one}
    before = _observable(gateway, endpoint)

    resp = gateway.call(method, url, key=key, json=body)

    assert resp.status_code == 401
    assert resp.json() == {"error": "a valid x-gateway-key header is required"}
    assert _observable(gateway, endpoint) == before
    # nothing refused took effect: no fault injected, the split still answers from A
    answer = gateway.score(endpoint, ROWS)
    assert (answer.status_code, answer.headers[DEPLOYMENT_HEADER], answer.json()) == (200, "A", {"predictions": ZEROS})


def test_health_answers_without_a_key(gateway: GatewayProcess) -> None:
    resp = gateway.call("GET", "/health", key=None)
    assert (resp.status_code, resp.json()) == (200, {"status": "ok"})


@pytest.mark.parametrize("key", ["clé-🔑".encode(), b"k\xff\xfe"], ids=["utf-8", "not-utf-8"])
def test_a_key_that_is_not_ascii_is_refused_with_401_not_a_server_error(gateway: GatewayProcess, endpoint: str,
                                                                         key: bytes) -> None:
    resp = gateway.call("GET", f"/endpoints/{endpoint}/traffic", key=key)
    assert resp.status_code == 401
    assert resp.json() == {"error": "a valid x-gateway-key header is required"}


def test_a_near_miss_key_is_refused(gateway: GatewayProcess, endpoint: str) -> None:
    for near in (gateway.key[:-1], gateway.key + "x", gateway.key.upper(), ""):
        assert gateway.call("GET", f"/endpoints/{endpoint}/traffic", key=near).status_code == 401


# -- deploy ----------------------------------------------------------------------------------------
def test_a_deployment_is_accepted_with_202_and_its_operation_succeeds(gateway: GatewayProcess,
                                                                      models: Models) -> None:
    name = _new_endpoint()
    resp = gateway.call("PUT", f"/endpoints/{name}/deployments/blue",
                        json={"model_uri": models.zero, "model_name": "credit", "model_version": "3"})
    assert resp.status_code == 202
    op_id = resp.json()["operation_id"]

    assert gateway.wait_operation(op_id)["state"] == "succeeded"
    assert gateway.deployments(name) == {"blue": models.zero}
    assert gateway.traffic(name) == {"traffic": {"blue": 0}, "mirror_traffic": {}}  # new deployments start at 0 %


def test_the_client_deploys_and_polls_to_succeeded(gateway: GatewayProcess, models: Models) -> None:
    client, name = gateway.client(), _new_endpoint()
    op = client.begin_deployment(name, "green", ModelVersion(name="credit", version="1", model_uri=models.one))
    assert op.state == "running"
    deadline = time.monotonic() + 30
    while client.get_operation(op.operation_id).state == "running" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert client.get_operation(op.operation_id).state == "succeeded"
    assert client.list_deployments(name) == {"green": models.one}
    assert client.score(name, "green", ROWS) == ONES


def test_a_bad_model_uri_fails_its_operation_with_a_message(gateway: GatewayProcess, tmp_path: Path) -> None:
    name, missing = _new_endpoint(), str(tmp_path / "no-such-model")
    resp = gateway.call("PUT", f"/endpoints/{name}/deployments/blue", json={"model_uri": missing})
    assert resp.status_code == 202

    op = gateway.wait_operation(resp.json()["operation_id"])
    assert op["state"] == "failed"
    assert "no-such-model" in op["message"]
    assert gateway.deployments(name) == {}


def test_a_failed_redeploy_leaves_the_deployment_serving_its_model(gateway: GatewayProcess, endpoint: str,
                                                                    tmp_path: Path) -> None:
    op = gateway.deploy(endpoint, "A", str(tmp_path / "no-such-model"))
    assert op["state"] == "failed"
    resp = gateway.score(endpoint, ROWS)
    assert (resp.status_code, resp.headers[DEPLOYMENT_HEADER], resp.json()["predictions"]) == (200, "A", ZEROS)


def test_a_deployment_without_model_uri_is_400(gateway: GatewayProcess) -> None:
    resp = gateway.call("PUT", f"/endpoints/{_new_endpoint()}/deployments/blue", json={"model_name": "credit"})
    assert resp.status_code == 400
    assert "model_uri" in resp.json()["error"]


def test_an_unknown_operation_is_404(gateway: GatewayProcess) -> None:
    resp = gateway.call("GET", "/operations/does-not-exist")
    assert resp.status_code == 404
    assert "does-not-exist" in resp.json()["error"]


# -- scoring ---------------------------------------------------------------------------------------
def test_with_all_traffic_on_a_every_answer_comes_from_a(gateway: GatewayProcess, endpoint: str) -> None:
    assert gateway.traffic(endpoint)["traffic"] == {"A": 100, "B": 0, "C": 0}
    answers = [gateway.score(endpoint, ROWS) for _ in range(20)]
    assert {(r.status_code, r.headers[DEPLOYMENT_HEADER]) for r in answers} == {(200, "A")}
    assert all(r.json() == {"predictions": ZEROS} for r in answers)
    assert gateway.client().score_via_endpoint(endpoint, ROWS) == (ZEROS, "A")


def test_the_deployment_request_header_routes_straight_to_that_deployment(gateway: GatewayProcess,
                                                                          endpoint: str) -> None:
    for deployment in ("B", "C"):  # both at 0 % live traffic
        resp = gateway.score(endpoint, ROWS, deployment=deployment)
        assert (resp.status_code, resp.headers[DEPLOYMENT_HEADER], resp.json()) == (200, deployment,
                                                                                     {"predictions": ONES})
    assert gateway.client().score(endpoint, "A", ROWS) == ZEROS


def test_a_split_sends_answers_from_each_live_deployment(gateway: GatewayProcess, endpoint: str) -> None:
    assert gateway.set_traffic(endpoint, {"A": 50, "B": 50}).status_code == 200
    answered = [gateway.score(endpoint, ROWS) for _ in range(40)]
    by = {r.headers[DEPLOYMENT_HEADER]: r.json()["predictions"] for r in answered}
    assert by == {"A": ZEROS, "B": ONES}  # both answered (each with its own model), C (0 %) never


def test_the_header_naming_an_unknown_deployment_is_404(gateway: GatewayProcess, endpoint: str) -> None:
    resp = gateway.score(endpoint, ROWS, deployment="nope")
    assert resp.status_code == 404
    assert "nope" in resp.json()["error"]


@pytest.mark.parametrize("body", [
    {}, {"rows": ROWS}, {"input_data": ROWS[0]}, {"input_data": [1, 2]}, {"input_data": "f0,f1"}, ROWS,
], ids=["empty", "other-key", "one-object", "scalars", "csv-text", "bare-list"])
def test_a_body_that_is_not_input_data_rows_is_400_with_the_reason(gateway: GatewayProcess, endpoint: str,
                                                                   body: Any) -> None:
    resp = gateway.call("POST", f"/endpoints/{endpoint}/score", json=body)
    assert resp.status_code == 400
    assert "input_data" in resp.json()["error"]


def test_a_body_that_is_not_json_is_400(gateway: GatewayProcess, endpoint: str) -> None:
    resp = gateway.call("POST", f"/endpoints/{endpoint}/score", data=b"f0,f1\n1,2\n",
                        headers={"Content-Type": "text/csv"})
    assert resp.status_code == 400
    assert resp.json()["error"].startswith("bad request")


def test_an_unknown_endpoint_is_404(gateway: GatewayProcess) -> None:
    resp = gateway.score("no-such-endpoint", ROWS)
    assert resp.status_code == 404
    assert "no-such-endpoint" in resp.json()["error"]


def test_an_endpoint_with_no_live_traffic_is_503(gateway: GatewayProcess, endpoint: str) -> None:
    assert gateway.set_traffic(endpoint, {"A": 0}).status_code == 200
    resp = gateway.score(endpoint, ROWS)
    assert resp.status_code == 503
    assert "traffic is 0" in resp.json()["error"]


# -- traffic validation ----------------------------------------------------------------------------
@pytest.mark.parametrize(("traffic", "mirror", "reason"), [
    ({"A": 60, "B": 30}, {}, "traffic must add up to 100, got 90"),
    ({"A": 50, "Z": 50}, {}, "deployment 'Z' does not exist"),
    ({"A": 100}, {"Z": 10}, "deployment 'Z' does not exist"),
    ({"A": 100}, {"B": 60}, "mirror_traffic may not exceed 50 %, got 60 for 'B'"),
    ({"A": 100}, {"B": 10, "C": 10}, "mirror_traffic may name at most one deployment"),
    ({"A": 50, "B": 50}, {"B": 10}, "deployment 'B' cannot take live and mirrored traffic at once"),
    ({"A": 110, "B": -10}, {}, "must be an integer 0..100"),
    ({"A": "all"}, {}, "must be an integer 0..100, got 'all'"),
    ({"A": 99.9, "B": 0.1}, {}, "must be an integer 0..100, got 99.9"),  # refused, not rounded
    ({"A": "100"}, {}, "must be an integer 0..100, got '100'"),
    ({"A": 100}, {"B": True}, "must be an integer 0..100, got True"),
    ([{"A": 100}], {}, "bad request"),
], ids=["sum-not-100", "unknown-live", "unknown-mirror", "mirror-over-50", "two-mirrored", "live-and-mirrored",
        "out-of-range", "not-a-number", "fractions", "a-string-number", "a-boolean", "not-an-object"])
def test_a_split_azure_ml_would_refuse_is_400_with_the_reason_and_changes_nothing(
        gateway: GatewayProcess, endpoint: str, traffic: Any, mirror: dict[str, int], reason: str) -> None:
    assert gateway.set_traffic(endpoint, {"A": 100}, {"C": 10}).status_code == 200
    before = gateway.traffic(endpoint)

    resp = gateway.set_traffic(endpoint, traffic, mirror)

    assert resp.status_code == 400
    assert reason in resp.json()["error"]
    assert gateway.traffic(endpoint) == before == {"traffic": {"A": 100, "B": 0, "C": 0}, "mirror_traffic": {"C": 10}}
    assert gateway.score(endpoint, ROWS).headers[DEPLOYMENT_HEADER] == "A"


def test_the_client_reports_a_refused_split_with_its_reason(gateway: GatewayProcess, endpoint: str) -> None:
    client = gateway.client()
    with pytest.raises(PlatformError, match="HTTP 400: traffic must add up to 100"):
        client.set_traffic(endpoint, TrafficSplit(traffic={"A": 50}))
    assert client.get_traffic(endpoint) == TrafficSplit(traffic={"A": 100, "B": 0, "C": 0})


# -- shadow ----------------------------------------------------------------------------------------
def test_a_shadow_gets_mirrored_requests_but_clients_only_ever_get_the_live_answer(gateway: GatewayProcess,
                                                                                   endpoint: str) -> None:
    assert gateway.set_traffic(endpoint, {"A": 100}, {"B": 50}).status_code == 200
    answers = [gateway.score(endpoint, ROWS) for _ in range(40)]
    assert {(r.status_code, r.headers[DEPLOYMENT_HEADER]) for r in answers} == {(200, "A")}
    assert all(r.json() == {"predictions": ZEROS} for r in answers)

    # mirrored requests run (and are logged) in the background: wait for them, bounded
    deadline = time.monotonic() + 30
    while gateway.metrics(endpoint, "B")["request_count"] == 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    shadow = gateway.metrics(endpoint, "B")
    assert 0 < shadow["request_count"] <= 40
    assert shadow["error_count"] == 0
    assert shadow["predictions"] == {"1": shadow["request_count"] * len(ROWS)}  # B's answers, logged only
    assert gateway.metrics(endpoint, "A")["request_count"] == 40
    logged = gateway.call("GET", f"/endpoints/{endpoint}/requests", params={"start": "2000-01-01T00:00:00Z"}).json()
    assert len(logged) == 40 * len(ROWS)  # the drift monitor's view: what clients were answered, no mirrored rows
    assert {(r["__deployment__"], r["__prediction__"]) for r in logged} == {("A", 0)}


def test_a_slow_shadow_never_delays_the_clients(gateway: GatewayProcess, endpoint: str) -> None:
    # The shadow takes 5 s per request; ~6 of these 12 are mirrored, more than the gateway has
    # scoring threads. If live requests queued behind the shadow, some mirrored request would have
    # finished (and been logged) before the last live answer came back. So the check is an order
    # of events, not a time limit: every live answer arrives while no mirrored request has ended.
    gateway.faults(endpoint, "B", latency_ms=5000)
    assert gateway.set_traffic(endpoint, {"A": 100}, {"B": 50}).status_code == 200
    try:
        for _ in range(12):
            resp = gateway.score(endpoint, ROWS)
            assert (resp.status_code, resp.headers[DEPLOYMENT_HEADER]) == (200, "A")
        assert gateway.metrics(endpoint, "B")["request_count"] == 0, "a live answer waited for the shadow"
    finally:
        gateway.faults(endpoint, "B")  # the mirrored requests still queued finish at once
    for _ in range(100):  # bounded: the shadow's answers are logged once they end
        if gateway.metrics(endpoint, "B")["request_count"] > 0:
            break
        time.sleep(0.1)
    assert gateway.metrics(endpoint, "B")["request_count"] > 0


def test_a_shadow_that_falls_behind_is_skipped_not_queued_and_catches_up(
        gateway_factory: Callable[..., GatewayProcess], models: Models) -> None:
    # one mirrored request at most: while the slow shadow answers one, the others are not mirrored
    gw, name = gateway_factory("--max-mirrored", "1"), _new_endpoint()
    assert gw.deploy(name, "A", models.zero)["state"] == "succeeded"
    assert gw.deploy(name, "B", models.one)["state"] == "succeeded"
    gw.faults(name, "B", latency_ms=3000)
    assert gw.set_traffic(name, {"A": 100}, {"B": 50}).status_code == 200
    for _ in range(30):
        resp = gw.score(name, ROWS)
        assert (resp.status_code, resp.headers[DEPLOYMENT_HEADER]) == (200, "A")
    assert gw.metrics(name, "B")["mirror_skipped"] > 0, "every request was mirrored although the shadow was busy"
    assert "is behind" in gw.log_tail()
    gw.faults(name, "B")
    for _ in range(100):  # bounded: the one mirrored request ends, then mirroring resumes
        gw.score(name, ROWS)
        if gw.metrics(name, "B")["request_count"] >= 2:
            break
        time.sleep(0.1)
    assert gw.metrics(name, "B")["request_count"] >= 2


# -- atomic traffic changes ------------------------------------------------------------------------
def test_a_traffic_switch_finishes_every_request_in_flight_on_the_old_deployment(gateway: GatewayProcess,
                                                                                 endpoint: str) -> None:
    gateway.faults(endpoint, "A", latency_ms=400)
    with _in_flight(gateway, endpoint, 16) as futures:
        assert gateway.set_traffic(endpoint, {"B": 100}).status_code == 200
        switched = time.monotonic()
        answers = [f.result(timeout=60) for f in futures]

    assert [(a.status, a.deployment) for a in answers] == [(200, "A")] * 16, [a.text for a in answers]
    assert all(a.predictions == ZEROS for a in answers)
    assert any(a.at > switched for a in answers), "the switch must land while requests are in flight"
    after = [gateway.score(endpoint, ROWS) for _ in range(10)]
    assert {(r.status_code, r.headers[DEPLOYMENT_HEADER], tuple(r.json()["predictions"])) for r in after} == {
        (200, "B", tuple(ONES))}


def test_deleting_a_deployment_does_not_fail_its_requests_still_in_flight(gateway: GatewayProcess,
                                                                          endpoint: str) -> None:
    gateway.faults(endpoint, "A", latency_ms=300)
    with _in_flight(gateway, endpoint, 12) as futures:  # more than the gateway's scoring threads: some wait
        assert gateway.set_traffic(endpoint, {"B": 100}).status_code == 200
        assert gateway.call("DELETE", f"/endpoints/{endpoint}/deployments/A").status_code == 200
        deleted = time.monotonic()
        answers = [f.result(timeout=60) for f in futures]

    assert [(a.status, a.deployment) for a in answers] == [(200, "A")] * 12, [a.text for a in answers]
    assert all(a.predictions == ZEROS for a in answers)
    assert any(a.at > deleted for a in answers), "the delete must land while requests are in flight"
    assert "A" not in gateway.deployments(endpoint)


# -- metrics ---------------------------------------------------------------------------------------
def test_injected_errors_show_in_the_metrics_as_requests_and_errors(gateway: GatewayProcess, endpoint: str) -> None:
    gateway.faults(endpoint, "B", error_rate=1.0)
    start = _now()
    answers = [gateway.score(endpoint, ROWS, deployment="B") for _ in range(7)]
    end = _now()

    assert {(r.status_code, r.headers[DEPLOYMENT_HEADER]) for r in answers} == {(500, "B")}
    assert all("injected fault in deployment 'B'" in r.json()["error"] for r in answers)
    metrics = gateway.client().deployment_metrics(endpoint, "B", start, end)
    assert (metrics.request_count, metrics.error_count, metrics.error_rate) == (7, 7, 1.0)
    assert metrics.predictions == {}


def test_rows_that_do_not_match_the_signature_are_400_with_the_reason_and_counted_apart_from_errors(
        gateway: GatewayProcess, endpoint: str) -> None:
    start = _now()
    wrong = [{k: ("not a number" if k == "f0" else v) for k, v in row.items()} for row in ROWS]
    refused = [gateway.score(endpoint, wrong, deployment="B") for _ in range(3)]
    answered = gateway.score(endpoint, ROWS, deployment="B")
    end = _now()

    assert {r.status_code for r in refused} == {400} and answered.status_code == 200
    assert all(r.json()["error"].startswith("the rows do not match the model's signature: ") for r in refused)
    metrics = gateway.client().deployment_metrics(endpoint, "B", start, end)
    assert (metrics.request_count, metrics.error_count, metrics.client_error_count) == (4, 0, 3)


def test_the_predictions_histogram_counts_every_answer(gateway: GatewayProcess, endpoint: str) -> None:
    start = _now()
    for _ in range(4):
        assert gateway.score(endpoint, ROWS).status_code == 200
    for _ in range(5):
        assert gateway.score(endpoint, ROWS, deployment="B").status_code == 200
    end = _now()

    a, b = gateway.metrics(endpoint, "A", start, end), gateway.metrics(endpoint, "B", start, end)
    assert (a["request_count"], a["error_count"], a["predictions"]) == (4, 0, {"0": 4 * len(ROWS)})
    assert (b["request_count"], b["error_count"], b["predictions"]) == (5, 0, {"1": 5 * len(ROWS)})


def test_p95_latency_is_at_least_the_injected_latency(gateway: GatewayProcess, endpoint: str) -> None:
    gateway.faults(endpoint, "A", latency_ms=250)
    start = _now()
    for _ in range(5):
        assert gateway.score(endpoint, ROWS).status_code == 200
    metrics = gateway.metrics(endpoint, "A", start, _now())
    assert metrics["request_count"] == 5
    assert 250 <= metrics["latency_p50_ms"] <= metrics["latency_p95_ms"] <= metrics["latency_p99_ms"]


def test_metrics_count_only_the_requests_inside_the_window(gateway: GatewayProcess, endpoint: str) -> None:
    before = _now()
    for _ in range(3):
        assert gateway.score(endpoint, ROWS).status_code == 200
    assert gateway.metrics(endpoint, "A", "2000-01-01T00:00:00Z", before)["request_count"] == 0
    assert gateway.metrics(endpoint, "A", before, _now())["request_count"] == 3


# -- delete ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(("traffic", "mirror", "busy"), [
    ({"A": 100}, {}, "A"), ({"A": 70, "B": 30}, {}, "B"), ({"A": 100}, {"B": 20}, "B"),
], ids=["all-live", "some-live", "mirrored"])
def test_a_deployment_carrying_traffic_cannot_be_deleted(gateway: GatewayProcess, endpoint: str,
                                                         traffic: dict[str, int], mirror: dict[str, int],
                                                         busy: str) -> None:
    assert gateway.set_traffic(endpoint, traffic, mirror).status_code == 200
    before = gateway.traffic(endpoint)

    resp = gateway.call("DELETE", f"/endpoints/{endpoint}/deployments/{busy}")

    assert resp.status_code == 409
    assert f"deployment {busy!r} still carries traffic" in resp.json()["error"]
    assert busy in gateway.deployments(endpoint)
    assert gateway.traffic(endpoint) == before
    assert gateway.score(endpoint, ROWS, deployment=busy).status_code == 200


def test_after_traffic_moves_away_a_deployment_can_be_deleted_and_is_gone(gateway: GatewayProcess,
                                                                          endpoint: str) -> None:
    assert gateway.set_traffic(endpoint, {"A": 100}, {"B": 20}).status_code == 200
    assert gateway.set_traffic(endpoint, {"C": 100}).status_code == 200

    for deployment in ("A", "B"):
        resp = gateway.call("DELETE", f"/endpoints/{endpoint}/deployments/{deployment}")
        assert (resp.status_code, resp.json()) == (200, {"deleted": deployment})

    assert list(gateway.deployments(endpoint)) == ["C"]
    assert gateway.traffic(endpoint) == {"traffic": {"C": 100}, "mirror_traffic": {}}
    assert gateway.score(endpoint, ROWS, deployment="A").status_code == 404
    resp = gateway.score(endpoint, ROWS)
    assert (resp.status_code, resp.headers[DEPLOYMENT_HEADER]) == (200, "C")


def test_deleting_an_unknown_deployment_is_404(gateway: GatewayProcess, endpoint: str) -> None:
    resp = gateway.call("DELETE", f"/endpoints/{endpoint}/deployments/nope")
    assert resp.status_code == 404
    assert "nope" in resp.json()["error"]


# -- restart ---------------------------------------------------------------------------------------
def test_after_a_restart_deployments_traffic_and_scoring_are_back(own_gateway: GatewayProcess,
                                                                 models: Models) -> None:
    gw, name = own_gateway, _new_endpoint()
    assert gw.deploy(name, "A", models.zero)["state"] == "succeeded"
    assert gw.deploy(name, "B", models.one)["state"] == "succeeded"
    assert gw.set_traffic(name, {"A": 100}, {"B": 20}).status_code == 200
    for _ in range(3):
        assert gw.score(name, ROWS).status_code == 200
    deployments, split = gw.deployments(name), gw.traffic(name)
    assert gw.metrics(name, "A")["request_count"] == 3

    assert gw.stop() == 0  # SIGTERM: a clean shutdown
    gw.start()

    assert gw.deployments(name) == deployments == {"A": models.zero, "B": models.one}
    assert gw.traffic(name) == split == {"traffic": {"A": 100, "B": 0}, "mirror_traffic": {"B": 20}}
    resp = gw.score(name, ROWS)
    assert (resp.status_code, resp.headers[DEPLOYMENT_HEADER], resp.json()) == (200, "A", {"predictions": ZEROS})
    resp = gw.score(name, ROWS, deployment="B")
    assert (resp.status_code, resp.json()) == (200, {"predictions": ONES})
    assert gw.metrics(name, "A")["request_count"] == 4  # the request log survived too


def test_a_deployment_cut_short_by_a_crash_is_carried_out_after_the_restart(own_gateway: GatewayProcess,
                                                                             models: Models) -> None:
    gw, name = own_gateway, _new_endpoint()
    assert gw.deploy(name, "A", models.zero)["state"] == "succeeded"
    gw.stop()
    gw.start()  # a fresh process: the first load imports MLflow, so the next one runs for a while
    resp = gw.call("PUT", f"/endpoints/{name}/deployments/B",
                   json={"model_uri": models.one, "model_name": "B", "model_version": "2"})
    assert resp.status_code == 202, resp.text
    op_id = resp.json()["operation_id"]
    assert gw.call("GET", f"/operations/{op_id}").json()["state"] == "running"
    gw.kill()  # SIGKILL: no shutdown code runs
    gw.start()

    assert gw.wait_operation(op_id)["state"] == "succeeded"  # the caller's operation id is still known
    assert gw.deployments(name) == {"A": models.zero, "B": models.one}
    assert gw.score(name, ROWS, deployment="B").json() == {"predictions": ONES}


def test_a_finished_operation_can_still_be_polled_after_a_restart(own_gateway: GatewayProcess,
                                                                  models: Models) -> None:
    gw, name = own_gateway, _new_endpoint()
    resp = gw.call("PUT", f"/endpoints/{name}/deployments/A",
                   json={"model_uri": models.zero, "model_name": "A", "model_version": "1"})
    op = gw.wait_operation(resp.json()["operation_id"])
    assert op["state"] == "succeeded"
    gw.stop()
    gw.start()
    assert gw.wait_operation(op["operation_id"]) == op


# -- state -----------------------------------------------------------------------------------------
def test_the_state_and_the_log_holding_every_scoring_request_are_readable_by_their_owner_only(
        own_gateway: GatewayProcess, models: Models) -> None:
    import stat

    gw, name = own_gateway, _new_endpoint()
    assert gw.deploy(name, "A", models.zero)["state"] == "succeeded"
    assert gw.set_traffic(name, {"A": 100}).status_code == 200
    assert gw.score(name, ROWS).status_code == 200
    assert stat.S_IMODE(gw.state_dir.stat().st_mode) == 0o700
    files = [p for p in gw.state_dir.rglob("*") if p.is_file()]
    assert "gateway.sqlite" in {p.name for p in files}
    assert gw.log_path is not None
    assert {p.name: oct(stat.S_IMODE(p.stat().st_mode)) for p in [*files, gw.log_path]
            if stat.S_IMODE(p.stat().st_mode) != 0o600} == {}


# -- request ids -----------------------------------------------------------------------------------
def _logged(gw: GatewayProcess, endpoint: str) -> list[dict[str, Any]]:
    return list(gw.call("GET", f"/endpoints/{endpoint}/requests", params={"start": "2000-01-01T00:00:00Z"}).json())


def test_every_answer_has_a_request_id_a_callers_own_is_kept_and_each_is_logged_with_its_prediction(
        gateway: GatewayProcess, endpoint: str) -> None:
    assert gateway.set_traffic(endpoint, {"A": 100}).status_code == 200
    mine = gateway.call("POST", f"/endpoints/{endpoint}/score", json={"input_data": ROWS},
                        headers={"x-request-id": "loan-2026-0042"})
    new = gateway.score(endpoint, ROWS)
    hostile = gateway.call("POST", f"/endpoints/{endpoint}/score", json={"input_data": ROWS},
                           headers={"x-request-id": "a b<script>"})
    assert mine.headers["x-request-id"] == "loan-2026-0042"
    assert str(uuid.UUID(new.headers["x-request-id"])) == new.headers["x-request-id"]
    assert hostile.headers["x-request-id"] != "a b<script>"  # not a plain token: replaced, never echoed
    ids = {r["__request_id__"] for r in _logged(gateway, endpoint)}
    assert {"loan-2026-0042", new.headers["x-request-id"], hostile.headers["x-request-id"]} <= ids
    assert {(r["__request_id__"], r["__prediction__"]) for r in _logged(gateway, endpoint)
            if r["__request_id__"] == "loan-2026-0042"} == {("loan-2026-0042", 0)}


def test_a_request_log_from_before_request_ids_is_kept_and_extended(
        tmp_path: Path, models: Models, gateway_factory: Callable[..., GatewayProcess]) -> None:
    import sqlite3

    state = tmp_path / "gateway-0"  # where the factory's first gateway keeps its state
    state.mkdir(mode=0o700)
    db = sqlite3.connect(state / "gateway.sqlite")
    db.execute("""CREATE TABLE requests (ts TEXT, endpoint TEXT, deployment TEXT, latency_ms REAL, status INTEGER,
                  mirrored INTEGER, inputs TEXT, outputs TEXT)""")
    db.execute("INSERT INTO requests VALUES ('2026-11-01T00:00:00.000000+00:00', 'old', 'A', 1.0, 200, 0, "
               "'[{\"x\": 1}]', '[0]')")
    db.commit()
    db.close()
    gw = gateway_factory()
    assert gw.metrics("old", "A")["request_count"] == 1  # nothing lost
    assert _logged(gw, "old") == [{"x": 1, "__prediction__": 0, "__deployment__": "A", "__request_id__": None}]
    name = _new_endpoint()
    assert gw.deploy(name, "A", models.zero)["state"] == "succeeded"
    assert gw.set_traffic(name, {"A": 100}).status_code == 200
    answer = gw.score(name, ROWS)
    assert {r["__request_id__"] for r in _logged(gw, name)} == {answer.headers["x-request-id"]}
