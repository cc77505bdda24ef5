"""Shared fixtures: devhost's own pytest plugin provides ``devhost_factory``. Collection puts the longest modules
first, so that with ``--dist loadfile`` they start at once and the many short ones even out the end."""

from __future__ import annotations

import pytest

pytest_plugins = ["devhost.testing"]

# The longest modules, longest first (measured in the suite: ./dev test prints the slowest tests at the end).
# A module left out keeps its place after these; the list orders the run, it never selects.
LONGEST_FIRST = ("e2e/test_llmops.py", "e2e/test_chaos.py", "e2e/test_demo.py", "e2e/test_dashboard.py",
                 "e2e/test_retrain.py", "e2e/test_api.py", "e2e/test_healing.py", "e2e/test_own_models.py",
                 "e2e/test_release.py", "e2e/test_ab.py")


def _rank(item: pytest.Item) -> int:
    path = item.path.as_posix()
    return next((i for i, name in enumerate(LONGEST_FIRST) if path.endswith("tests/" + name)), len(LONGEST_FIRST))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Longest modules first; every module's tests stay together and in order (a stable sort)."""
    items.sort(key=_rank)
