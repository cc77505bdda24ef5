"""`mlops run <id> --follow`: each stage as it changes, until the run ends; bounded; Ctrl-C leaves the run alone."""

from __future__ import annotations

import io
import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from clirig import Recorder, Seen, mlops
from rich.console import Console

from cli.follow import follow

RUN = "release-credit-0123456789ab"
PATH = f"/api/runs/{RUN}"


def stage(name: str, state: str, started: str = "2026-11-24T12:00:01", ended: str | None = None) -> dict[str, Any]:
    return {"name": name, "state": state, "started": started, "ended": ended, "detail": {}}


def doc(status: str, *stages: dict[str, Any], error: str | None = None) -> dict[str, Any]:
    return {"id": RUN, "kind": "release", "model": "credit", "status": status, "verdict": None,
            "stages": list(stages), "gates": [], "error": error}


def test_follow_prints_each_stage_change_once_and_ends_with_the_run(app: Recorder, no_state: Path) -> None:
    app.answer(PATH,
               doc("Running", stage("deploy", "running")),
               doc("Running", stage("deploy", "running")),
               doc("Running", stage("deploy", "done", ended="2026-11-24T12:00:05"), stage("smoke", "running")),
               doc("Completed", stage("deploy", "done", ended="2026-11-24T12:00:05"),
                   stage("smoke", "done", ended="2026-11-24T12:00:09")))
    result = mlops("--url", app.url, "run", RUN, "--follow", "--interval", "0.1")
    assert result.exit_code == 0, result.output
    lines = [line.strip() for line in result.output.splitlines()]
    changes = [line for line in lines if line.startswith("12:00")]
    assert changes == ["12:00:01 deploy: running", "12:00:05 deploy: done", "12:00:01 smoke: running",
                       "12:00:09 smoke: done"]
    assert len(app.seen) == 4


def test_follow_exits_1_when_the_run_fails_and_json_is_the_last_document(app: Recorder, no_state: Path) -> None:
    failed = doc("Failed", stage("canary-10", "failed"), error="canary 10%: error rate 0.2 > 0.05")
    app.answer(PATH, doc("Running", stage("canary-10", "running")), failed)
    result = mlops("--url", app.url, "run", RUN, "--follow", "--interval", "0.1", "-o", "json")
    assert result.exit_code == 1
    assert json.loads(result.stdout) == failed  # the progress and the verdict go to stderr
    assert f"run {RUN} ended Failed" in result.stderr


def test_follow_gives_up_after_its_timeout_with_a_bounded_number_of_polls(app: Recorder, no_state: Path) -> None:
    app.answer(PATH, doc("Running", stage("canary-50", "running")))
    result = mlops("--url", app.url, "run", RUN, "--follow", "--interval", "0.1", "--timeout", "1")
    assert result.exit_code == 1
    assert f"run {RUN} is still active after 1 s; stopped following" in result.output
    assert len(app.seen) == 11  # ceil(1 / 0.1) + 1 polls, then no more


def test_follow_retries_a_few_failed_polls_but_not_a_refusal(app: Recorder, no_state: Path) -> None:
    app.answer(PATH, (503, "application/json", b'{"error": "host restarting"}'), doc("Completed"))
    result = mlops("--url", app.url, "run", RUN, "--follow", "--interval", "0.1")
    assert result.exit_code == 0 and "HTTP 503: host restarting; trying again" in result.output
    app.seen.clear()
    app.answer(PATH, *[(502, "text/plain", b"bad gateway")] * 5)
    result = mlops("--url", app.url, "run", RUN, "--follow", "--interval", "0.1")
    assert result.exit_code == 1 and "HTTP 502: bad gateway" in result.output and len(app.seen) == 4
    app.seen.clear()
    app.answer(PATH, (401, "text/plain", b"Unauthorized"))
    result = mlops("--url", app.url, "run", RUN, "--follow", "--interval", "0.1")
    assert result.exit_code == 1 and "HTTP 401: Unauthorized" in result.output and len(app.seen) == 1


def test_follow_waits_for_a_queued_run_to_start(app: Recorder, no_state: Path) -> None:
    missing = (404, "application/json", json.dumps({"error": f"no run with id {RUN!r}"}).encode())
    app.answer(PATH, missing, missing, doc("Running", stage("deploy", "running")), doc("Completed"))
    result = mlops("--url", app.url, "run", RUN, "--follow", "--interval", "0.1")
    assert result.exit_code == 0, result.output
    assert result.output.count("the run has not started") == 1 and "12:00:01 deploy: running" in result.output
    app.seen.clear()
    app.answer(PATH, missing)
    result = mlops("--url", app.url, "run", RUN, "--follow", "--interval", "0.2", "--timeout", "1")
    assert result.exit_code == 1 and f"run {RUN} is not started after 1 s" in result.output
    assert len(app.seen) == 6


@pytest.fixture
def sigint_raises() -> Iterator[None]:
    """SIGINT raises KeyboardInterrupt in the main thread (Python's default), whatever the runner installed."""
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, before)


def test_ctrl_c_stops_following_without_a_traceback(app: Recorder, no_state: Path, sigint_raises: None) -> None:
    app.answer(PATH, doc("Running", stage("shadow", "running")))

    def interrupt_on_the_third_poll(seen: Seen) -> None:
        if len(app.seen) == 3:
            os.kill(os.getpid(), signal.SIGINT)  # what Ctrl-C in the terminal sends

    app.on_request = interrupt_on_the_third_poll
    result = mlops("--url", app.url, "run", RUN, "--follow", "--interval", "0.1")
    assert result.exit_code == 130
    assert f"stopped following {RUN}; the run goes on" in result.output and "Traceback" not in result.output
    assert 3 <= len(app.seen) <= 4
    assert all(s.method == "GET" for s in app.seen)  # nothing was sent to the run


def test_on_a_terminal_the_run_is_redrawn_in_place_until_it_ends() -> None:
    docs = iter([doc("Running", stage("deploy", "running")),
                 doc("Completed", stage("deploy", "done", ended="2026-11-24T12:00:05"), stage("smoke", "done"))])
    screen = io.StringIO()
    terminal = Console(file=screen, force_terminal=True, width=100)
    last = follow(lambda: next(docs), terminal, interval=0.1, timeout=10, sleep=lambda s: None)
    assert last["status"] == "Completed"
    shown = screen.getvalue()
    assert "\x1b[" in shown  # drawn with cursor moves, not printed line by line
    assert "smoke" in shown and f"{RUN}: Completed" in shown
