"""Fixtures for the Event Grid, blob watcher and timer tests: one Azurite for the session, and
devhost processes on the events fixture app with a subscriptions file written by each test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from eglab import EventsHost, make_events_host

from devhost.azurite import Azurite


@pytest.fixture(scope="session")
def azurite() -> Iterator[Azurite]:
    """A real Azurite blob service (in memory) for the whole session, stopped at the end."""
    with Azurite(in_memory=True) as az:
        yield az


@pytest.fixture
def events_host(tmp_path: Path, azurite: Azurite) -> Iterator[Callable[..., EventsHost]]:
    """Start devhost (virtual clock) on an events fixture app with the given subscriptions; stopped after the test."""
    made: list[EventsHost] = []

    def make(subscriptions: list[dict[str, Any]] | None = None, start: bool = True, **kwargs: Any) -> EventsHost:
        lab = make_events_host(tmp_path / f"host-{len(made)}", azurite, subscriptions, **kwargs)
        made.append(lab)
        if start:
            lab.host.start()
        return lab

    yield make
    for lab in made:
        lab.host.stop()
