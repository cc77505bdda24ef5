"""A stand-in app for the CLI: a real HTTP server on 127.0.0.1 that records every request and answers as told."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from click.testing import CliRunner, Result

from cli.main import main

# (status, content type, body) for a request; a list of them is answered in turn, the last one repeated
Answer = tuple[int, str, bytes]


@dataclass
class Seen:
    """One request as the server saw it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Recorder:
    """The server's URL, what it was asked, and what it answers per path (without the query)."""

    url: str = ""
    seen: list[Seen] = field(default_factory=list)
    answers: dict[str, list[Answer]] = field(default_factory=dict)
    on_request: Callable[[Seen], None] | None = None

    def answer(self, path: str, *answers: Answer | dict[str, Any]) -> None:
        """Answer ``path`` with these, in turn (a dict: 200 with it as JSON)."""
        self.answers[path] = [(200, "application/json", json.dumps(a).encode()) if isinstance(a, dict) else a
                              for a in answers]

    def next_answer(self, path: str) -> Answer:
        queue = self.answers.get(path)
        if not queue:
            return 404, "application/json", json.dumps({"error": f"no route {path}"}).encode()
        return queue.pop(0) if len(queue) > 1 else queue[0]


def handler(recorder: Recorder) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            seen = Seen(self.command, self.path, {k.lower(): v for k, v in self.headers.items()},
                        self.rfile.read(length))
            recorder.seen.append(seen)
            if recorder.on_request is not None:
                recorder.on_request(seen)
            status, ctype, body = recorder.next_answer(self.path.split("?")[0])
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _serve

        def log_message(self, format: str, *args: Any) -> None:  # keep the test output clean
            return None

    return Handler


def mlops(*args: str, obj: Any = None) -> Result:
    """Run the CLI in-process; an exception that escapes it fails the test (no traceback reaches a user)."""
    return CliRunner().invoke(main, list(args), obj=obj, catch_exceptions=False)
