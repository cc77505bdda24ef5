"""devhost.process: what the local tooling starts is tied to its parent only when asked, and logs are private."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from devhost.process import alive, signal_group, spawn

REPO = Path(__file__).resolve().parents[3]
SLEEPER = [sys.executable, "-c", "import time; time.sleep(600)"]


def _parent(script: str) -> subprocess.Popen[str]:
    """A python process (a test runner, the CLI) running ``script``, which prints the pid of what it started."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(script)], stdout=subprocess.PIPE, text=True,
                            env=env, cwd=REPO)


@pytest.fixture
def children() -> Iterator[list[int]]:
    """Pids the test's parents started; their groups are killed at the end whatever happened."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        signal_group(pid, signal.SIGKILL)


def _gone_within(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not alive(pid)


def test_a_server_a_test_fixture_started_stops_when_the_test_runner_is_killed(children: list[int]) -> None:
    parent = _parent(f"""
        import time
        from devhost.process import ServerProcess
        server = ServerProcess(None)
        server.launch({SLEEPER!r}, None, None, lambda: True, 10)
        print(server.proc.pid, flush=True)
        time.sleep(600)
    """)
    children.append(int(parent.stdout.readline()))  # type: ignore[union-attr]
    parent.kill()  # SIGKILL: no fixture teardown runs
    parent.wait()
    assert _gone_within(children[0], 5), "the server outlived the killed test runner"


def test_a_child_spawned_without_the_tie_outlives_its_parent(children: list[int]) -> None:
    # what `mlops up` needs: the stack keeps running after the command returns
    parent = _parent(f"""
        from devhost.process import spawn
        print(spawn({SLEEPER!r}, None).pid, flush=True)
    """)
    children.append(int(parent.stdout.readline()))  # type: ignore[union-attr]
    parent.wait()
    time.sleep(0.3)
    assert alive(children[0])


def test_a_child_log_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    spawn([sys.executable, "-c", "print('hello')"], log).wait()
    assert log.read_text() == "hello\n"
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
