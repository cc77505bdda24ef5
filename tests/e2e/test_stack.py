"""The local stack as a supervisor: `mlops up` restarts what died, `mlops down` stops everything it started
(training jobs included), nothing outlives a killed test runner, and the state is private."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from click.testing import CliRunner
from stacklab import Lab

from cli.main import main
from cli.sampledata import generate, to_csv_bytes
from cli.stack import Stack, call
from devhost.process import alive, stop_groups

ROOT = Path(__file__).resolve().parents[2]
# a training job that runs for minutes: long enough to be caught running by `mlops down`
SLOW_POLICY = """
model: slow
label: label
data: {min_rows: 40}
training: {algorithm: gradient_boosting, params: {n_estimators: 200000}, poll_seconds: 1}
gates: {metrics: [{name: accuracy_score, threshold: 0.3}]}
release: {endpoint: slow, steps: [{traffic_percent: 100, bake_minutes: 0.01}]}
"""


def mlops(state: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["--state-dir", str(state), *args], catch_exceptions=False)
    return result.exit_code, result.output


def recorded(state: Path) -> dict[str, Any]:
    return dict(json.loads((state / "stack.json").read_text()))


def kill(pid: int) -> None:
    """SIGKILL one process, as a crash would, and wait until it is gone."""
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(pid)


def test_up_on_a_recorded_stack_restarts_what_died_and_keeps_the_rest(tmp_path: Path) -> None:
    state = tmp_path / "state"
    code, out = mlops(state, "up")
    assert code == 0, out
    try:
        first = recorded(state)
        kill(first["pids"]["gateway"])

        code, out = mlops(state, "up")

        assert code == 0 and "restarted: gateway" in out, out
        after = recorded(state)
        assert {k: v for k, v in after.items() if k != "pids"} == {k: v for k, v in first.items() if k != "pids"}
        assert after["pids"]["azurite"] == first["pids"]["azurite"]
        assert after["pids"]["devhost"] == first["pids"]["devhost"]
        assert requests.get(f"http://127.0.0.1:{after['gateway_port']}/health", timeout=10).ok

        kill(after["pids"]["devhost"])
        code, out = mlops(state, "up")
        assert code == 0 and "restarted: devhost" in out, out
        assert recorded(state)["function_key"] == first["function_key"]
        assert call(Stack.load(state), "GET", "models").status_code == 200  # the same keys open the same app

        code, out = mlops(state, "up")
        assert code == 0 and "nothing to restart" in out, out
    finally:
        mlops(state, "down")


@pytest.fixture(scope="module")
def training(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, int]]:
    """A stack whose app is running a (minutes-long) training job: the stack and the job's pid."""
    root = tmp_path_factory.mktemp("slow")
    (root / "policies").mkdir()
    (root / "policies" / "slow.yaml").write_text(SLOW_POLICY)
    stack = Stack(root / "state", virtual_clock=True, policy_dir=root / "policies", die_with_parent=True)
    lab = Lab(stack.up())
    try:
        lab.land("slow", "d.csv", to_csv_bytes(generate(300, seed=2)))
        jobs = stack.platform_dir / "jobs"
        # the job's supervisor: the command runs in its process group and dies with it
        pid_file = lab.wait(lambda: next(iter(jobs.glob("*/supervisor.pid")), None) if jobs.exists() else None,
                            what="the training job to start")
        pid = int(pid_file.read_text())
        assert alive(pid)
        yield stack, pid
    finally:
        stack.down()


def test_the_stack_state_and_logs_are_readable_by_their_owner_only(training: tuple[Stack, int]) -> None:
    stack, _ = training
    state = stack.state_dir
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    ours = [state / "stack.json", *state.glob("*.log"), state / "devhost" / "durable.sqlite",
            state / "gateway" / "gateway.sqlite", stack.platform_dir / "mlflow.db"]
    assert {str(p.relative_to(state)): oct(stat.S_IMODE(p.stat().st_mode)) for p in ours
            if stat.S_IMODE(p.stat().st_mode) != 0o600} == {}
    folders = [state / "azurite", state / "devhost", state / "gateway", stack.platform_dir, stack.platform_dir / "jobs"]
    assert {str(p.relative_to(state)): oct(stat.S_IMODE(p.stat().st_mode)) for p in folders
            if stat.S_IMODE(p.stat().st_mode) != 0o700} == {}


def _children(pid: int) -> list[int]:
    return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def test_down_stops_the_training_jobs_the_app_started(training: tuple[Stack, int]) -> None:
    stack, job = training
    for _ in range(240):  # bounded: a minute for the supervisor to start the command
        command = _children(job)
        if command:
            break
        time.sleep(0.25)
    assert command, "the job's supervisor never started its command"
    code, out = mlops(stack.state_dir, "down")
    assert code == 0 and "training job slow-" in out, out
    assert not alive(job), f"training job {job} still running after `mlops down`"
    assert not [pid for pid in command if alive(pid)], "the job's command outlived `mlops down`"


def test_a_killed_test_runner_leaves_no_stack_process_behind(tmp_path: Path) -> None:
    runner = subprocess.Popen([sys.executable, "-c", textwrap.dedent("""
        import json, sys, time
        from cli.stack import Stack
        info = Stack(sys.argv[1], virtual_clock=True, die_with_parent=True).up()
        print(json.dumps(info.pids), flush=True)
        time.sleep(600)
    """), str(tmp_path / "state")], stdout=subprocess.PIPE, text=True, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    line = runner.stdout.readline()  # type: ignore[union-attr]
    pids: dict[str, int] = json.loads(line) if line else {}
    try:
        assert set(pids) == {"azurite", "gateway", "devhost"}, line
        runner.kill()  # SIGKILL: no teardown of any kind runs
        runner.wait()
        deadline = time.monotonic() + 20
        while any(alive(p) for p in pids.values()) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert {n: p for n, p in pids.items() if alive(p)} == {}
    finally:
        runner.kill()
        stop_groups(pids.values(), grace=2)


def test_a_picked_port_taken_before_the_component_binds_it_moves_to_another(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    import cli.stack as stack_module
    from devhost.process import free_port

    with socket.socket() as taken:  # what another process's connection did to the port devhost was given
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        picks = iter([busy])
        monkeypatch.setattr(stack_module, "free_port", lambda: next(picks, None) or free_port())
        stack = Stack(tmp_path / "state", virtual_clock=True, die_with_parent=True)
        try:
            info = stack.up(gateway_port=free_port(), azurite_port=free_port())
            assert info.devhost_port != busy
            assert requests.get(f"{info.devhost_url}/api/openapi.json", timeout=10,
                                params={"code": info.function_key}).status_code == 200
            assert recorded(tmp_path / "state")["devhost_port"] == info.devhost_port
        finally:
            stack.down()
