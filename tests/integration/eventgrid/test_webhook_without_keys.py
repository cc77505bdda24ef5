"""The Event Grid webhook without ``--enable-auth``: the local-testing URL of the docs works as written.

"Post to your Event Grid trigger function's URL ... ``http://localhost:7071/runtime/webhooks/eventgrid?functionName={FUNCTION_NAME}``"
(https://learn.microsoft.com/azure/azure-functions/event-grid-how-tos#local-testing-with-viewer-web-app): no
``code=``, as Core Tools enforces no keys locally unless started with ``--enableAuth``. Custom topics are
Event Grid's own endpoints, not the Functions host's, so their ``aeg-sas-key`` is checked in both modes.
The keyed webhook (``--enable-auth``) is test_webhook.py.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable

import requests
from eglab import WEBHOOK, EventsHost, topic_sub


def test_the_webhook_runs_the_function_without_a_key_by_default(events_host: Callable[..., EventsHost]) -> None:
    lab = events_host([topic_sub("orders-all", "sink_a", "orders")], topic_keys={"orders": "b3JkZXJzLWtleQ=="})
    event = {"id": str(uuid.uuid4()), "subject": "orders/1", "eventType": "Shop.OrderPlaced",
             "eventTime": "2024-05-01T12:00:00Z", "data": {"order": 1}, "dataVersion": "1.0"}
    url = f"{lab.host.base_url}{WEBHOOK}?functionName=sink_a"
    resp = requests.post(url, data=json.dumps([event]), timeout=30,
                         headers={"Content-Type": "application/json", "aeg-event-type": "Notification"})
    assert resp.status_code == 202, resp.text
    assert [r["id"] for r in lab.wait_records("sink_a")] == [event["id"]]
    handshake = requests.options(url, headers={"WebHook-Request-Origin": "eventgrid.azure.net"}, timeout=30)
    assert handshake.status_code == 200 and handshake.headers["WebHook-Allowed-Origin"] == "eventgrid.azure.net"
    # devhost's admin route is open too; the custom topic still wants its key.
    status = requests.get(f"{lab.host.base_url}/admin/devhost/eventgrid", timeout=30)
    assert status.status_code == 200 and "timerInvocations" in status.json()
    keyless = requests.post(lab.topic_endpoint("orders"), data=json.dumps([event]), timeout=30,
                            headers={"Content-Type": "application/json"})
    assert keyless.status_code == 401
