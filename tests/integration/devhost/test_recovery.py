"""Durability: SIGKILL devhost mid-flight, start it again, and every orchestration finishes correctly."""

import time
from collections.abc import Callable
from pathlib import Path

from devhost.testing import DevHostProcess

APP = Path(__file__).parents[1] / "apps" / "patterns" / "function_app.py"


def test_sigkill_with_20_orchestrations_in_flight_then_restart_completes_all(
    devhost_factory: Callable[..., DevHostProcess], tmp_path: Path
) -> None:
    counters = tmp_path / "counters"
    counters.mkdir()
    host = devhost_factory(APP, env={"PATTERNS_COUNTER_DIR": str(counters)})
    ids = [host.start_orchestration("slow_chain", f"o{i}", instance_id=f"crash-{i:02d}") for i in range(20)]
    # wait until work is under way (some activities done) but nothing is finished
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        statuses = [host.status(i) for i in ids]
        if all(s and s["runtimeStatus"] == "Running" for s in statuses):
            break
        time.sleep(0.05)
    time.sleep(0.5)
    before = [host.status(i)["runtimeStatus"] for i in ids]
    assert before.count("Completed") < 20, "the kill must land while orchestrations are in flight"
    host.kill()
    host.start()
    for i, iid in enumerate(ids):
        status = host.wait_for(iid, timeout=120)
        assert status["runtimeStatus"] == "Completed"
        assert status["output"] == {"steps": [f"o{i}-{k}" for k in range(5)], "sum": 30}


def test_restart_keeps_pending_timers_and_waiting_events(
    devhost_factory: Callable[..., DevHostProcess], tmp_path: Path
) -> None:
    host = devhost_factory(APP, virtual_clock=True, env={"PATTERNS_COUNTER_DIR": str(tmp_path)})
    waiting = host.start_orchestration("approval", {"hours": 6})
    timed = host.start_orchestration("approval", {"hours": 6})
    for iid in (waiting, timed):
        host.wait_for(iid, until=lambda s: s["customStatus"] == "waiting for approval")
    host.kill()
    host.start()
    host.raise_event(waiting, "Approval", {"by": "bob"})
    assert host.wait_for(waiting)["output"] == {"approved": {"by": "bob"}}
    host.advance_clock(6 * 3600 + 1)
    assert host.wait_for(timed, timeout=10)["output"] == {"approved": None, "timed_out": True}
