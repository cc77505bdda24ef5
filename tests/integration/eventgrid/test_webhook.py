"""The Event Grid webhook: keys, handshakes, both schemas, and bad bodies refused with a reason."""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from eglab import APP_DIR, EventsHost, make_events_host

from devhost.azurite import Azurite


def eg_event(**overrides: Any) -> dict[str, Any]:
    event = {"id": str(uuid.uuid4()),
             "topic": "/subscriptions/x/resourceGroups/y/providers/Microsoft.EventGrid/topics/t",
             "subject": "orders/42", "eventType": "Shop.OrderPlaced", "eventTime": "2024-05-01T12:00:00.1234567Z",
             "data": {"order": 42}, "dataVersion": "1.0"}
    event.update(overrides)
    return event


def cloud_event(**overrides: Any) -> dict[str, Any]:
    event = {"specversion": "1.0", "id": str(uuid.uuid4()), "source": "/shop", "type": "Shop.OrderShipped",
             "subject": "orders/43", "time": "2024-05-01T12:00:00+02:00", "datacontenttype": "application/json",
             "data": {"order": 43}}
    event.update(overrides)
    return event


def without(event: dict[str, Any], key: str) -> dict[str, Any]:
    out = copy.deepcopy(event)
    del out[key]
    return out


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory, azurite: Azurite) -> Iterator[EventsHost]:
    """One devhost for the module, keys enforced: the webhook needs no subscriptions."""
    lab = make_events_host(tmp_path_factory.mktemp("webhook"), azurite, enable_auth=True)
    lab.host.start()
    yield lab
    lab.host.stop()


def test_webhook_without_the_system_key_is_401(lab: EventsHost) -> None:
    body = [eg_event()]
    assert lab.webhook("sink_a", body, key=None).status_code == 401
    assert lab.webhook("sink_a", body, key="wrong").status_code == 401
    assert lab.webhook("sink_a", body, key=lab.host.function_key).status_code == 401
    assert lab.records("sink_a") == []


def test_webhook_accepts_the_system_key_in_the_header(lab: EventsHost) -> None:
    event = eg_event()
    resp = lab.webhook("sink_a", [event], key=None, headers={"x-functions-key": lab.host.system_key})
    assert resp.status_code == 202
    assert lab.wait_records("sink_a", where=lambda r: r["id"] == event["id"])


def test_unknown_or_non_event_grid_function_is_404(lab: EventsHost) -> None:
    missing = lab.webhook("no_such_function", [eg_event()])
    assert missing.status_code == 404
    assert "cannot find function" in missing.json()["error"]
    http_fn = lab.webhook("ping", [eg_event()])
    assert http_fn.status_code == 404
    assert "httpTrigger" in http_fn.json()["error"]
    assert lab.webhook(None, [eg_event()]).status_code == 404


def test_subscription_validation_handshake_echoes_the_code(lab: EventsHost) -> None:
    validation = eg_event(eventType="Microsoft.EventGrid.SubscriptionValidationEvent",
                          data={"validationCode": "512d38b6-c7b8-40c8-89fe-f46f9e9622b6",
                                "validationUrl": "https://rp-eastus2.eventgrid.azure.net/x"}, dataVersion="2")
    resp = lab.webhook("sink_b", [validation], event_type="SubscriptionValidation")
    assert resp.status_code == 200
    assert resp.json() == {"validationResponse": "512d38b6-c7b8-40c8-89fe-f46f9e9622b6"}
    wrong = lab.webhook("sink_b", [eg_event()], event_type="SubscriptionValidation")
    assert wrong.status_code == 400 and "SubscriptionValidationEvent" in wrong.json()["error"]
    deep = lab.webhook("sink_b", raw=b"[" * 100_000 + b"]" * 100_000, event_type="SubscriptionValidation")
    assert deep.status_code == 400 and "nested too deeply" in deep.json()["error"]
    assert lab.records("sink_b") == []


def test_cloudevent_validation_event_is_answered_too(lab: EventsHost) -> None:
    validation = cloud_event(type="Microsoft.EventGrid.SubscriptionValidationEvent",
                             data=json.dumps({"validationCode": "ce-code-1"}))  # data arrives JSON-encoded
    resp = lab.webhook("sink_b", validation, event_type="SubscriptionValidation",
                       content_type="application/cloudevents+json")
    assert resp.status_code == 200 and resp.json() == {"validationResponse": "ce-code-1"}


def test_cloudevents_abuse_protection_handshake(lab: EventsHost) -> None:
    resp = lab.webhook("sink_a", method="OPTIONS", event_type=None,
                       headers={"WebHook-Request-Origin": "eventgrid.azure.net"})
    assert resp.status_code == 200
    assert resp.headers["WebHook-Allowed-Origin"] == "eventgrid.azure.net"
    assert lab.webhook("sink_a", method="OPTIONS", event_type=None).status_code == 400
    assert lab.webhook("sink_a", method="OPTIONS", event_type=None, key=None,
                       headers={"WebHook-Request-Origin": "eventgrid.azure.net"}).status_code == 401


def test_unsubscribe_is_accepted_without_invoking(lab: EventsHost) -> None:
    assert lab.webhook("sink_b", [eg_event()], event_type="Unsubscribe").status_code == 202
    assert lab.records("sink_b") == []


def test_event_grid_batch_invokes_the_function_once_per_event(lab: EventsHost) -> None:
    events = [eg_event(), eg_event(subject="orders/2", eventTime="2024-05-01T14:00:00+02:00")]
    resp = lab.webhook("sink_a", events)
    assert resp.status_code == 202
    ids = {e["id"] for e in events}
    got = {r["id"]: r for r in lab.wait_records("sink_a", count=2, where=lambda r: r["id"] in ids)}
    first = got[events[0]["id"]]
    assert first["kind"] == "EventGridEvent"
    assert first["subject"] == "orders/42" and first["event_type"] == "Shop.OrderPlaced"
    assert first["topic"] == events[0]["topic"] and first["data"] == {"order": 42}
    assert first["data_version"] == "1.0"
    assert first["event_time"] == "2024-05-01T12:00:00.123456+00:00"
    assert got[events[1]["id"]]["event_time"] == "2024-05-01T12:00:00+00:00"  # +02:00 normalised to UTC


def test_async_function_runs_on_the_loop(lab: EventsHost) -> None:
    event = eg_event()
    assert lab.webhook("sink_async", [event]).status_code == 202
    assert lab.wait_records("sink_async", where=lambda r: r["id"] == event["id"])


@pytest.mark.parametrize("content_type,body", [
    ("application/cloudevents+json; charset=utf-8", cloud_event()),
    ("application/cloudevents-batch+json; charset=utf-8", [cloud_event(), cloud_event(subject="orders/44")]),
    ("application/json", [cloud_event()]),
], ids=["structured", "batch", "json-array"])
def test_cloudevents_reach_the_function_as_func_cloudevent(lab: EventsHost, content_type: str, body: Any) -> None:
    events = body if isinstance(body, list) else [body]
    resp = lab.webhook("sink_a", body, content_type=content_type)
    assert resp.status_code == 202
    ids = {e["id"] for e in events}
    got = lab.wait_records("sink_a", count=len(events), where=lambda r: r["id"] in ids)
    assert {r["kind"] for r in got} == {"CloudEvent"}
    one = next(r for r in got if r["id"] == events[0]["id"])
    assert one["source"] == "/shop" and one["type"] == "Shop.OrderShipped" and one["data"] == {"order": 43}
    assert one["time"] == "2024-05-01T10:00:00+00:00" and one["specversion"] == "1.0"


def test_a_failing_function_answers_500_with_its_error(lab: EventsHost) -> None:
    event = eg_event()
    resp = lab.webhook("fails_always", [event])
    assert resp.status_code == 500
    assert "fails_always refuses event" in resp.json()["error"]


_EG = eg_event()
_CE = cloud_event()
_CE_SINGLE = "application/cloudevents+json"
_CE_BATCH = "application/cloudevents-batch+json"

# (id, content type, raw body, words the 400 must contain)
MALFORMED: list[tuple[str, str, bytes, str]] = [
    ("empty-body", "application/json", b"", "empty"),
    ("not-json", "application/json", b"[{not json", "not valid JSON"),
    ("eg-object-not-array", "application/json", json.dumps(_EG).encode(), "must be a JSON array"),
    ("empty-array", "application/json", b"[]", "batch is empty"),
    ("array-of-numbers", "application/json", b"[1, 2]", "must be a JSON object"),
    ("missing-id", "application/json", json.dumps([without(_EG, "id")]).encode(), "'id' is missing"),
    ("id-not-string", "application/json", json.dumps([eg_event(id=7)]).encode(), "'id' must be a string"),
    ("missing-subject", "application/json", json.dumps([without(_EG, "subject")]).encode(), "'subject' is missing"),
    ("empty-subject", "application/json", json.dumps([eg_event(subject=" ")]).encode(), "'subject' must not be empty"),
    ("missing-event-type", "application/json", json.dumps([without(_EG, "eventType")]).encode(),
     "'eventType' is missing"),
    ("missing-event-time", "application/json", json.dumps([without(_EG, "eventTime")]).encode(),
     "'eventTime' is missing"),
    ("event-time-not-a-time", "application/json", json.dumps([eg_event(eventTime="yesterday")]).encode(),
     "not an RFC 3339 date-time"),
    ("event-time-impossible-date", "application/json",
     json.dumps([eg_event(eventTime="2024-02-30T10:00:00Z")]).encode(), "not a valid date-time"),
    ("missing-data", "application/json", json.dumps([without(_EG, "data")]).encode(), "'data' is missing"),
    ("missing-data-version", "application/json", json.dumps([without(_EG, "dataVersion")]).encode(),
     "'dataVersion' is missing"),
    ("bad-metadata-version", "application/json", json.dumps([eg_event(metadataVersion="2")]).encode(),
     "'metadataVersion' must be"),
    ("second-event-bad", "application/json", json.dumps([eg_event(), without(_EG, "id")]).encode(),
     "event [1]: required property 'id'"),
    ("ce-missing-source", _CE_SINGLE, json.dumps(without(_CE, "source")).encode(), "'source' is missing"),
    ("ce-missing-type", _CE_SINGLE, json.dumps(without(_CE, "type")).encode(), "'type' is missing"),
    ("ce-wrong-specversion", _CE_SINGLE, json.dumps(cloud_event(specversion="0.3")).encode(),
     "'specversion' must be \"1.0\""),
    ("ce-bad-time", _CE_SINGLE, json.dumps(cloud_event(time="01/05/2024")).encode(), "not an RFC 3339 date-time"),
    ("ce-data-and-base64", _CE_SINGLE, json.dumps(cloud_event(data_base64="aGk=")).encode(),
     "'data' and 'data_base64' must not both be present"),
    ("ce-batch-not-array", _CE_BATCH, json.dumps(_CE).encode(), "carries a JSON array"),
    ("ce-single-is-array", _CE_SINGLE, json.dumps([_CE]).encode(), "carries one event"),
    ("ce-upper-case-attribute", _CE_SINGLE, json.dumps(cloud_event(myExtension="x")).encode(),
     "lower-case letters and digits"),
    ("deeply-nested", "application/json", b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    ("deeply-nested-data", "application/json",
     json.dumps([eg_event(data="@")]).replace('"@"', "[" * 100 + "]" * 100).encode(), "nested too deeply"),
]


@pytest.mark.parametrize("content_type,raw,reason", [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED])
def test_malformed_body_is_400_with_the_reason_and_invokes_nothing(lab: EventsHost, content_type: str, raw: bytes,
                                                                   reason: str) -> None:
    resp = lab.webhook("sink_b", raw=raw, content_type=content_type)
    assert resp.status_code == 400, resp.text
    assert reason in resp.json()["error"]
    assert lab.host.session.get(lab.host.base_url + "/", timeout=5).status_code == 200
    assert lab.records("sink_b") == []


def test_wrong_content_type_is_415_and_oversized_body_is_413(lab: EventsHost) -> None:
    text = lab.webhook("sink_b", [eg_event()], content_type="text/plain")
    assert text.status_code == 415 and "text/plain" in text.json()["error"]
    big = lab.webhook("sink_b", [eg_event(data={"blob": "x" * (1024 * 1024)})])
    assert big.status_code == 413 and "1 MB" in big.json()["error"]
    assert lab.records("sink_b") == []


def test_missing_aeg_event_type_header_is_400(lab: EventsHost) -> None:
    resp = lab.webhook("sink_b", [eg_event()], event_type=None)
    assert resp.status_code == 400 and "aeg-event-type" in resp.json()["error"]
    assert lab.records("sink_b") == []


def test_devhost_keeps_serving_after_malformed_bodies(lab: EventsHost) -> None:
    for _, content_type, raw, _ in MALFORMED:
        assert lab.webhook("sink_b", raw=raw, content_type=content_type).status_code == 400
    event = eg_event()
    assert lab.webhook("sink_b", [event]).status_code == 202
    got = lab.wait_records("sink_b")
    assert [r["id"] for r in got] == [event["id"]]


def test_webhook_is_reachable_with_an_empty_route_prefix(events_host: Callable[..., EventsHost]) -> None:
    lab = events_host(app=APP_DIR / "noprefix" / "function_app.py")
    event = eg_event()
    assert lab.webhook("sink_a", [event]).status_code == 202
    assert lab.wait_records("sink_a", where=lambda r: r["id"] == event["id"])
    assert lab.host.session.get(lab.host.base_url + "/some/page", timeout=10).text == "catch_all some/page"
