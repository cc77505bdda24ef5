"""The whole local stack (Azurite, scoring gateway, devhost on function_app.py) for end-to-end tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from stacklab import Lab

from cli.stack import Stack

POLICIES = Path(__file__).parent / "policies"


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """One stack for the end-to-end tests, with the virtual clock and the e2e policies."""
    stack = Stack(tmp_path_factory.mktemp("stack"), virtual_clock=True, policy_dir=POLICIES)
    info = stack.up()
    try:
        yield Lab(info)
    finally:
        stack.down()
