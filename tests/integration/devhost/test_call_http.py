"""Durable HTTP (``context.call_http``) on a real devhost against a real HTTP server on 127.0.0.1.

The call runs as the extension's built-in activity ``BuiltIn::HttpActivity``; the orchestrator gets the
``DurableHttpResponse`` as a dict (statusCode, headers, content), follows ``202`` + ``Location``, and a
``token_source`` fails unless ``DEVHOST_HTTP_TOKEN`` is set
(https://learn.microsoft.com/azure/azure-functions/durable/durable-functions-http-features#consuming-http-apis).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from devhost.testing import DevHostProcess

APP = Path(__file__).parents[1] / "apps" / "http_calls" / "function_app.py"


@dataclass
class Seen:
    """One request the test server received."""

    method: str
    path: str
    headers: dict[str, str]
    body: str


@dataclass
class Server:
    """A small HTTP server the orchestrations call; it records what it received."""

    url: str
    seen: list[Seen] = field(default_factory=list)
    polls_before_done: int = 2


def _handler(server: Server) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # quiet
            return

        def _reply(self, status: int, body: str, headers: list[tuple[str, str]] = ()) -> None:  # type: ignore[assignment]
            data = body.encode()
            self.send_response(status)
            for name, value in headers:
                self.send_header(name, value)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode() if length else ""
            server.seen.append(Seen(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body))
            if self.path == "/json":
                self._reply(200, json.dumps({"hello": "world"}), [("X-Served-By", "test"), ("X-Multi", "a"),
                                                                   ("X-Multi", "b")])
            elif self.path == "/echo":
                self._reply(200, json.dumps({"method": self.command, "body": body,
                                             "contentType": self.headers.get("Content-Type"),
                                             "test": self.headers.get("X-Test"),
                                             "authorization": self.headers.get("Authorization")}))
            elif self.path == "/job":
                self._reply(202, "accepted", [("Location", "/job/status"), ("Retry-After", "0")])
            elif self.path == "/job/status":
                polls = sum(1 for s in server.seen if s.path == "/job/status")
                if polls <= server.polls_before_done:
                    self._reply(202, "running", [("Location", "/job/status"), ("Retry-After", "0")])
                else:
                    self._reply(200, "done")
            elif self.path == "/fail":
                self._reply(500, "boom")
            else:
                self._reply(404, "no such path")

        do_GET = do_POST = do_PUT = do_DELETE = _handle

    return Handler


@pytest.fixture
def server() -> Iterator[Server]:
    state = Server(url="")
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield state
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=10)


def _run(host: DevHostProcess, spec: Any, name: str = "call") -> dict[str, Any]:
    return host.wait_for(host.start_orchestration(name, spec), timeout=60)


def test_get_put_post_errors_and_polling(devhost_factory: Callable[..., DevHostProcess], server: Server) -> None:
    host = devhost_factory(APP)

    got = _run(host, {"method": "GET", "url": f"{server.url}/json"})
    assert got["runtimeStatus"] == "Completed", got
    response = got["output"]
    assert response["statusCode"] == 200 and json.loads(response["content"]) == {"hello": "world"}
    assert response["headers"]["X-Served-By"] == "test" and response["headers"]["X-Multi"] == ["a", "b"]
    assert "Content-Type" not in response["headers"]  # a content header, as in .NET's HttpResponseMessage
    history = host.status(got["instanceId"], showHistory="true")["historyEvents"]  # type: ignore[index]
    assert [e["FunctionName"] for e in history if e["EventType"] == "TaskCompleted"] == ["BuiltIn::HttpActivity"]

    posted = _run(host, {"method": "POST", "url": f"{server.url}/echo", "content": {"a": 1},
                         "headers": {"Content-Type": "application/json", "X-Test": "yes"}})["output"]
    assert posted["statusCode"] == 200
    assert json.loads(posted["content"]) == {"method": "POST", "body": '{"a": 1}', "contentType": "application/json",
                                             "test": "yes", "authorization": None}
    plain = json.loads(_run(host, {"method": "PUT", "url": f"{server.url}/echo", "content": "x"})["output"]["content"])
    assert plain["method"] == "PUT" and plain["body"] == '"x"' and plain["contentType"] == "text/plain"

    failed = _run(host, {"method": "GET", "url": f"{server.url}/fail"})
    assert failed["runtimeStatus"] == "Completed"  # an error status is a response, not a failure
    assert failed["output"]["statusCode"] == 500 and failed["output"]["content"] == "boom"

    polled = _run(host, {"method": "GET", "url": f"{server.url}/job"})["output"]
    assert polled["statusCode"] == 200 and polled["content"] == "done"
    assert [s.path for s in server.seen if s.path.startswith("/job")] == ["/job"] + ["/job/status"] * 3

    chained = _run(host, f"{server.url}/fail", name="call_then_activity")
    assert chained["output"] == {"status": 500, "greeting": "BOOM"}


def test_token_source_fails_clearly_without_a_configured_token(devhost_factory: Callable[..., DevHostProcess],
                                                               server: Server) -> None:
    host = devhost_factory(APP)
    status = _run(host, {"method": "GET", "url": f"{server.url}/echo",
                         "token_resource": "https://management.core.windows.net"})
    assert status["runtimeStatus"] == "Failed"
    assert "managed identity" in status["output"] and "DEVHOST_HTTP_TOKEN" in status["output"]
    assert server.seen == []  # nothing was sent
    refused = _run(host, {"method": "GET", "url": "http://127.0.0.1:9/nothing-listens-here"})
    assert refused["runtimeStatus"] == "Failed" and "BuiltIn::HttpActivity" in refused["output"]


def test_a_configured_token_is_sent_and_polling_is_bounded(devhost_factory: Callable[..., DevHostProcess],
                                                           server: Server) -> None:
    host = devhost_factory(APP, env={"DEVHOST_HTTP_TOKEN": "local-token", "DEVHOST_HTTP_MAX_POLLS": "1"})
    echoed = _run(host, {"method": "GET", "url": f"{server.url}/echo",
                         "token_resource": "https://management.core.windows.net"})["output"]
    assert json.loads(echoed["content"])["authorization"] == "Bearer local-token"
    bounded = _run(host, {"method": "GET", "url": f"{server.url}/job"})
    assert bounded["runtimeStatus"] == "Failed" and "still answered 202 after 1 polls" in bounded["output"]
