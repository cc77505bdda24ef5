"""devhost's state (history, Event Grid deliveries, timers, keys) is readable by its owner only."""

from __future__ import annotations

import stat
from collections.abc import Callable
from pathlib import Path

from devhost.testing import DevHostProcess

APP = Path(__file__).parents[1] / "apps" / "patterns" / "function_app.py"


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_state_dir_and_its_files_are_private(devhost_factory: Callable[..., DevHostProcess],
                                                  tmp_path: Path) -> None:
    host = devhost_factory(APP, virtual_clock=True, env={"PATTERNS_COUNTER_DIR": str(tmp_path)})
    host.wait_for(host.start_orchestration("approval", {"hours": 1}),
                  until=lambda s: s["customStatus"] == "waiting for approval")
    state = host.state_dir
    assert _mode(state) == 0o700
    files = [p for p in state.rglob("*") if p.is_file()]
    assert {"durable.sqlite", "keys.json", "runtime.json"} <= {p.name for p in files}
    assert {p.name: oct(_mode(p)) for p in files if _mode(p) != 0o600} == {}
    assert {p.name: oct(_mode(p)) for p in state.rglob("*") if p.is_dir() and _mode(p) != 0o700} == {}
