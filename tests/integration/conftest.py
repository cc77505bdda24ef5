"""Fixtures for integration tests: devhost processes on the fixture apps."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from devhost.testing import DevHostProcess

APPS = Path(__file__).parent / "apps"


@pytest.fixture(scope="module")
def patterns_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevHostProcess]:
    """One devhost (virtual clock) on the patterns app, shared by a module's tests."""
    state = tmp_path_factory.mktemp("patterns")
    counters = state / "counters"
    counters.mkdir()
    host = DevHostProcess(APPS / "patterns" / "function_app.py", state / "devhost", virtual_clock=True,
                          env={"PATTERNS_COUNTER_DIR": str(counters)}, enable_auth=True)
    host.start()
    yield host
    host.stop()
