"""The whole local stack (Azurite, scoring gateway, devhost on function_app.py) for end-to-end tests."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser import chromium
from stacklab import Lab, running_stack

POLICIES = Path(__file__).parent / "policies"
ALERT_KEY = secrets.token_urlsafe(32)


@pytest.fixture(scope="session")
def alert_key() -> str:
    """The alert webhook's own key: the app's MLOPS_ALERT_KEY and devhost's key for on_monitor_alert alone."""
    return ALERT_KEY


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory, alert_key: str) -> Iterator[Lab]:
    """Each test module's own stack (about 3 s to start), with the virtual clock and the e2e policies.

    A module's tests share it and may build on one another, in order; no module sees another's runs.
    """
    with running_stack(tmp_path_factory.mktemp("stack"), POLICIES, extra_env={
            "MLOPS_ALERT_KEY": alert_key, "DEVHOST_FUNCTION_KEY_ON_MONITOR_ALERT": alert_key}) as lab:
        yield lab


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Headless Chromium for the module's dashboard checks (tests/e2e/browser.py)."""
    with chromium(tmp_path_factory.mktemp("chromium")) as driver:
        yield driver
