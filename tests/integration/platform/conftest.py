"""Fixtures for the local and Azure ML platform tests: Azurite, and a devhost custom topic."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator

import pytest
from platformlab import EVENTS_APP, TOPIC, Topic

from devhost.azurite import Azurite
from devhost.testing import DevHostProcess


@pytest.fixture(scope="session")
def azurite() -> Iterator[Azurite]:
    """A real Azurite blob service (in memory), stopped at the end."""
    with Azurite(in_memory=True) as az:
        yield az


@pytest.fixture(scope="module")
def topic(tmp_path_factory: pytest.TempPathFactory, azurite: Azurite) -> Iterator[Topic]:
    """A devhost on the events app with the custom topic ``mlops``."""
    root = tmp_path_factory.mktemp("topic")
    out = root / "out"
    subs = root / "eventgrid.subscriptions.json"
    subs.write_text(json.dumps([{"name": "all", "source": {"type": "topic", "name": TOPIC},
                                 "destination": {"function": "sink_a"}}]))
    key = secrets.token_urlsafe(24)
    host = DevHostProcess(EVENTS_APP, root / "state", virtual_clock=True,
                          env={"AzureWebJobsStorage": azurite.connection_string, "EVENTS_OUT_DIR": str(out),
                               "DEVHOST_SUBSCRIPTIONS": str(subs), f"DEVHOST_TOPIC_KEY_{TOPIC.upper()}": key})
    host.start()
    try:
        yield Topic(host, out, key)
    finally:
        host.stop()
