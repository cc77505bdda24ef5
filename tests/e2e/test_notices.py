"""Someone is told: a run waiting for approval sends an event to the app's topic and a message to an incoming
webhook (a local receiver here), and the run is unaffected when the receiver is down."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from stacklab import Lab, running_stack

from cli.sampledata import generate, to_csv_bytes

POLICIES = Path(__file__).parent / "policies"


class Receiver:
    """An incoming webhook on 127.0.0.1 that keeps what it is sent; ``stop`` makes it unreachable."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        received = self.messages

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                received.append(json.loads(body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/ops-channel"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.stop()


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory, receiver: Receiver) -> Iterator[Lab]:
    """This module's own stack, with the webhook and a public URL for the links set as app settings."""
    with running_stack(tmp_path_factory.mktemp("stack"), POLICIES, extra_env={
            "MLOPS_NOTIFY_WEBHOOK_URL": receiver.url, "MLOPS_PUBLIC_URL": "https://mlops.example"}) as lab:
        yield lab


def _waiting(lab: Lab, name: str) -> dict[str, Any]:
    before = {i["instanceId"] for i in lab.instances("retrain-gated-")}
    lab.land("gated", name, to_csv_bytes(generate(400, seed=len(name))))

    def notice_recorded() -> dict[str, Any] | None:
        for run in lab.instances("retrain-gated-"):
            status = run.get("customStatus") or {}
            approval = next((s for s in status.get("stages", []) if s["name"] == "approval"), {})
            if run["instanceId"] not in before and "notice" in approval.get("detail", {}):
                return dict(run)
        return None

    return dict(lab.wait(notice_recorded, what=f"a run waiting for approval after {name}"))


def _notice(run: dict[str, Any]) -> dict[str, Any]:
    stages = run["customStatus"]["stages"]
    return dict(next(s for s in stages if s["name"] == "approval")["detail"]["notice"])


def test_a_run_waiting_for_approval_is_announced_on_the_topic_and_the_webhook(lab: Lab, receiver: Receiver) -> None:
    run = _waiting(lab, "a.csv")
    rid = run["instanceId"]
    assert _notice(run) == {"kind": "approval_required", "event": "sent", "webhook": "sent"}
    (message,) = receiver.messages
    assert (message["kind"], message["model"], message["run_id"]) == ("approval_required", "gated", rid)
    text = message["text"]
    assert f"gated: run {rid} waits for approval" in text and "within 2.0 h it is rejected" in text
    assert f"approve: POST https://mlops.example/api/runs/{rid}/approve" in text
    assert "code=" not in text  # no key in a message
    lab.durable("POST", f"instances/{rid}/raiseEvent/approval",
                data=json.dumps({"approved": False, "by": "bob", "reason": "next week"})).raise_for_status()
    assert "rejected by bob: next week" in lab.finished(rid)[0]["output"]


def test_with_the_receiver_down_the_run_waits_and_ends_as_it_would_have(lab: Lab, receiver: Receiver) -> None:
    lab.idle("gated")
    receiver.stop()
    run = _waiting(lab, "bb.csv")
    assert _notice(run) == {"kind": "approval_required", "event": "sent", "webhook": "failed: ConnectionError"}
    assert run["runtimeStatus"] == "Running" and run["customStatus"]["message"] == "waiting for approval"
    lab.durable("POST", f"instances/{run['instanceId']}/raiseEvent/approval",
                data=json.dumps({"approved": False, "by": "bob", "reason": "still next week"})).raise_for_status()
    finished = lab.finished(run["instanceId"])[0]
    assert finished["runtimeStatus"] == "Failed" and "rejected by bob: still next week" in finished["output"]
    assert "was not delivered: ConnectionError" in lab.log()
