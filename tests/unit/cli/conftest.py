"""Fixtures for the CLI's tests: the recording app, and a working directory with no local stack."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest
from clirig import Recorder, handler


@pytest.fixture
def app() -> Iterator[Recorder]:
    """A recording server on a free 127.0.0.1 port."""
    recorder = Recorder()
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler(recorder))
    recorder.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield recorder
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def no_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory with no local stack and a contexts file of its own; no MLOPS_* setting inherited."""
    for name in ("MLOPS_URL", "MLOPS_FUNCTION_KEY", "MLOPS_SCOPE", "MLOPS_CONTEXT", "MLOPS_LOCAL_STATE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLOPS_CONTEXTS", str(tmp_path / "config" / "contexts.json"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


