"""Fixtures for the in-process runner's tests: the fixture app, indexed once, and a runner on it."""

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from devhost.app_loader import FunctionIndex
from devhost.testing import OrchestrationRunner, load_app

APP = Path(__file__).parent / "app" / "function_app.py"


def scores(item: int) -> int:
    """The stand-in model: an item's score is ten times the item."""
    return item * 10


def releases(release: dict[str, Any]) -> dict[str, Any]:
    """The stand-in build: the release comes back prepared."""
    return {**release, "prepared": True}


STUBS: dict[str, Callable[[Any], Any]] = {
    "say_hello": lambda city: f"Hello {city}!",
    "get_items": lambda count: list(range(count)),
    "score": scores,
    "prepare": releases,
    "publish": lambda release: "published",
    "echo": lambda value: value,
}


@pytest.fixture(scope="module")
def app_index() -> FunctionIndex:
    """The fixture app, imported once per test module."""
    return load_app(APP)


@pytest.fixture
def runner(app_index: FunctionIndex) -> OrchestrationRunner:
    """A runner on the fixture app with every activity but ``flaky`` replaced."""
    return OrchestrationRunner(app_index, STUBS)
