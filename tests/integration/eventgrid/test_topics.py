"""Custom topics: azure-eventgrid's own publisher client against devhost, keys, routing by filters."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from azure.core.credentials import AzureKeyCredential, AzureSasCredential
from azure.core.exceptions import HttpResponseError
from azure.core.messaging import CloudEvent
from azure.eventgrid import EventGridEvent, EventGridPublisherClient, generate_sas
from eglab import EventsHost, make_events_host, topic_sub

from devhost.azurite import Azurite

ORDERS_KEY = "b3JkZXJzLXRvcGljLWtleS1mb3ItZGV2aG9zdC10ZXN0cw=="


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory, azurite: Azurite) -> Iterator[EventsHost]:
    subs = [
        topic_sub("orders-all", "sink_a", "orders"),
        topic_sub("orders-shipped", "sink_b", "orders", filter={"includedEventTypes": ["Shop.OrderShipped"]}),
        topic_sub("cloudy-all", "sink_async", "cloudy", schema="CloudEventSchemaV1_0",
                  source_extra={"inputSchema": "CloudEventSchemaV1_0"}),
    ]
    lab = make_events_host(tmp_path_factory.mktemp("topics"), azurite, subs, topic_keys={"orders": ORDERS_KEY})
    lab.host.start()
    yield lab
    lab.host.stop()


def generated_key(lab: EventsHost, topic: str) -> str:
    return str(json.loads((lab.host.state_dir / "keys.json").read_text())[f"DEVHOST_TOPIC_KEY_{topic.upper()}"])


def test_publisher_client_sends_event_grid_events_routed_by_filters(lab: EventsHost) -> None:
    client = EventGridPublisherClient(lab.topic_endpoint("orders"), AzureKeyCredential(ORDERS_KEY))
    placed = EventGridEvent(subject="orders/1", event_type="Shop.OrderPlaced", data={"n": 1}, data_version="1.0")
    shipped = EventGridEvent(subject="orders/1", event_type="Shop.OrderShipped", data={"n": 1}, data_version="1.0")
    client.send([placed, shipped])
    ids = {str(placed.id), str(shipped.id)}  # the SDK's EventGridEvent.id is a uuid.UUID

    got = lab.wait_records("sink_a", count=2, where=lambda r: r["id"] in ids)
    assert {r["event_type"] for r in got} == {"Shop.OrderPlaced", "Shop.OrderShipped"}
    assert all(r["topic"].endswith("/providers/Microsoft.EventGrid/topics/orders") for r in got)
    [only] = lab.wait_records("sink_b", where=lambda r: r["id"] in ids)
    assert only["id"] == str(shipped.id)
    lab.wait_idle()
    assert [r["id"] for r in lab.records("sink_b") if r["id"] in ids] == [str(shipped.id)]


def test_publisher_client_sends_a_cloudevent_batch(lab: EventsHost) -> None:
    client = EventGridPublisherClient(lab.topic_endpoint("cloudy"), AzureKeyCredential(generated_key(lab, "cloudy")))
    events = [CloudEvent(source="/shop", type="Shop.Restocked", data={"sku": i}, subject=f"sku/{i}") for i in range(3)]
    client.send(events)  # content type application/cloudevents-batch+json
    ids = {str(e.id) for e in events}
    got = lab.wait_records("sink_async", count=3, where=lambda r: r["id"] in ids)
    assert {r["kind"] for r in got} == {"CloudEvent"}
    assert sorted(r["data"]["sku"] for r in got) == [0, 1, 2]


def test_wrong_or_missing_key_is_401_and_nothing_is_routed(lab: EventsHost) -> None:
    event = EventGridEvent(subject="orders/9", event_type="Shop.OrderShipped", data={}, data_version="1")
    client = EventGridPublisherClient(lab.topic_endpoint("orders"), AzureKeyCredential("d3Jvbmc="))
    with pytest.raises(HttpResponseError) as caught:
        client.send([event])
    assert caught.value.status_code == 401
    bare = lab.host.session.post(lab.topic_endpoint("orders"), json=[], timeout=10)
    assert bare.status_code == 401
    lab.wait_idle()
    assert not [r for r in lab.records("sink_a") + lab.records("sink_b") if r["id"] == str(event.id)]


def test_shared_access_signature_is_accepted_until_it_expires(lab: EventsHost) -> None:
    endpoint = lab.topic_endpoint("orders")
    good = generate_sas(endpoint, ORDERS_KEY, datetime.now(UTC) + timedelta(minutes=5))
    event = EventGridEvent(subject="orders/sas", event_type="Shop.OrderPlaced", data={}, data_version="1")
    EventGridPublisherClient(endpoint, AzureSasCredential(good)).send(event)
    assert lab.wait_records("sink_a", where=lambda r: r["id"] == str(event.id))
    expired = generate_sas(endpoint, ORDERS_KEY, datetime.now(UTC) - timedelta(minutes=1))
    with pytest.raises(HttpResponseError) as caught:
        EventGridPublisherClient(endpoint, AzureSasCredential(expired)).send(event)
    assert caught.value.status_code == 401


def test_malformed_publish_is_400_with_the_reason(lab: EventsHost) -> None:
    headers = {"aeg-sas-key": ORDERS_KEY}
    no_subject = [{"id": str(uuid.uuid4()), "eventType": "Shop.OrderPlaced", "eventTime": "2024-05-01T00:00:00Z",
                   "data": {}, "dataVersion": "1"}]
    resp = lab.host.session.post(lab.topic_endpoint("orders"), json=no_subject, headers=headers, timeout=10)
    assert resp.status_code == 400 and "'subject' is missing" in resp.json()["error"]
    cloud = {"specversion": "1.0", "id": "1", "source": "/s", "type": "t"}
    resp = lab.host.session.post(lab.topic_endpoint("orders"), data=json.dumps(cloud), timeout=10,
                                 headers={**headers, "Content-Type": "application/cloudevents+json"})
    assert resp.status_code == 400 and "inputSchema" in resp.json()["error"]


def test_unknown_topic_is_404(lab: EventsHost) -> None:
    resp = lab.host.session.post(lab.topic_endpoint("nosuchtopic"), json=[], headers={"aeg-sas-key": ORDERS_KEY},
                                 timeout=10)
    assert resp.status_code == 404
