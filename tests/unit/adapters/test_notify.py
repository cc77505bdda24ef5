"""Notices out: the webhook message to a real local receiver, the topic event, and failures that never raise."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from adapters.notify import Notifier
from adapters.settings import SettingError, load_settings
from mlops.contracts import Notice
from mlops.notices import NoticeKind

APPROVAL = Notice(NoticeKind.APPROVAL_REQUIRED, "credit", "retrain-credit-1a2b", "waits for approval", "3",
                  {"timeout_hours": 24})
LOCAL = {"MLOPS_PLATFORM": "local", "AzureWebJobsStorage": "UseDevelopmentStorage=true"}


class Receiver:
    def __init__(self, status: int = 200) -> None:
        self.bodies: list[dict[str, Any]] = []
        bodies, code = self.bodies, status

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(code)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook?token=s3cret"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.server.shutdown()
    r.server.server_close()


class Topic:
    """Records what TopicPublisher.notice would send; ``fail`` makes it raise as an unreachable topic would."""

    def __init__(self, fail: bool = False) -> None:
        self.sent: list[tuple[str, str, dict[str, Any]]] = []
        self.fail = fail

    def notice(self, event_type: str, subject: str, data: dict[str, Any]) -> None:
        if self.fail:
            raise ConnectionError("topic unreachable")
        self.sent.append((event_type, subject, data))


def test_an_approval_notice_goes_to_the_topic_and_the_webhook_with_its_links(receiver: Receiver) -> None:
    topic = Topic()
    sent = Notifier(topic, receiver.url, "https://mlops.example/").send(APPROVAL)
    assert (sent.event, sent.webhook) == ("sent", "sent")
    ((event_type, subject, data),) = topic.sent
    assert (event_type, subject) == ("MLOps.Run.ApprovalRequired", "models/credit/runs/retrain-credit-1a2b")
    assert data["links"]["approve"] == "POST https://mlops.example/api/runs/retrain-credit-1a2b/approve"
    assert (data["model"], data["version"], data["timeout_hours"]) == ("credit", "3", 24)
    (body,) = receiver.bodies
    assert body["text"].startswith("**credit: run retrain-credit-1a2b waits for approval**")
    assert "reject: POST https://mlops.example/api/runs/retrain-credit-1a2b/reject" in body["text"]


def test_a_receiver_that_is_down_or_refuses_is_reported_never_raised(receiver: Receiver,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}/hook?token=s3cret"  # nothing listens once closed
    assert Notifier(None, closed, None).send(APPROVAL).webhook == "failed: ConnectionError"
    refusing = Receiver(status=500)
    try:
        assert Notifier(None, refusing.url, None).send(APPROVAL).webhook == "failed: HTTPError"
    finally:
        refusing.server.shutdown()
        refusing.server.server_close()
    assert "s3cret" not in caplog.text  # the URL's token stays out of the log


def test_a_topic_that_fails_still_lets_the_webhook_go(receiver: Receiver) -> None:
    sent = Notifier(Topic(fail=True), receiver.url, None).send(APPROVAL)
    assert sent.event.startswith("failed: ConnectionError: topic unreachable") and sent.webhook == "sent"
    assert "links" not in receiver.bodies[0]["text"] and "api/runs" not in receiver.bodies[0]["text"]  # no URL


def test_drift_goes_to_the_webhook_only_since_the_monitor_publishes_its_own_event(receiver: Receiver) -> None:
    topic = Topic()
    drift = Notice(NoticeKind.DRIFT_DETECTED, "credit", "monitor-20261202T100000", "f0 drifted", "3")
    sent = Notifier(topic, receiver.url, "https://mlops.example").send(drift, event=False)
    assert (sent.event, sent.webhook, topic.sent) == ("off", "sent", [])
    assert "model: https://mlops.example/api/models/credit" in receiver.bodies[0]["text"]


def test_without_a_webhook_or_topic_nothing_is_attempted() -> None:
    sent = Notifier(None, None, None).send(APPROVAL)
    assert (sent.event, sent.webhook) == ("off", "off")


def test_a_bad_webhook_url_is_refused_without_repeating_it() -> None:
    with pytest.raises(SettingError) as err:
        load_settings({**LOCAL, "MLOPS_NOTIFY_WEBHOOK_URL": "hooks.slack.com/services/T0/B0/s3cret"})
    assert err.value.name == "MLOPS_NOTIFY_WEBHOOK_URL" and "s3cret" not in str(err.value)
    assert "s3cret" not in repr(load_settings({**LOCAL, "MLOPS_NOTIFY_WEBHOOK_URL": "https://h.example/s3cret"}))


def test_the_public_url_defaults_to_the_function_apps_own_host_in_azure() -> None:
    assert load_settings({**LOCAL, "WEBSITE_HOSTNAME": "mlops-app.azurewebsites.net"}).public_url == \
        "https://mlops-app.azurewebsites.net"
    assert load_settings(LOCAL).public_url is None
    assert load_settings({**LOCAL, "WEBSITE_HOSTNAME": "x.azurewebsites.net",
                          "MLOPS_PUBLIC_URL": "https://ops.example"}).public_url == "https://ops.example"
