"""The rooms of the tree hold what they should (docs/architecture.md), checked rather than remembered."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# import-linter sees the azure.* namespace packages as one package, "azure"; these are checked here
AZURE_ALLOWED = {
    # the domain parses Event Grid's types, nothing more
    "mlops": {"azure.core.messaging", "azure.eventgrid"},
    "orchestrators": {"azure.durable_functions"},
}
MAX_FUNCTION_LINES = 60
SHORT_FUNCTION_ROOMS = ["orchestrators", "activities", "triggers", "mlops", "gateway"]


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def test_the_import_linter_contracts_hold() -> None:
    result = subprocess.run([str(Path(sys.executable).with_name("lint-imports"))], cwd=ROOT, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize("room", sorted(AZURE_ALLOWED))
def test_a_room_uses_only_the_azure_packages_it_may(room: str) -> None:
    allowed = AZURE_ALLOWED[room]
    found = {f"{path.relative_to(ROOT)}: {name}" for path in (ROOT / room).rglob("*.py") for name in _imports(path)
             if name.split(".")[0] == "azure" and not any(name == a or name.startswith(a + ".") for a in allowed)}
    assert not found, sorted(found)


def test_no_function_in_the_app_rooms_is_longer_than_60_lines() -> None:
    long = []
    for room in SHORT_FUNCTION_ROOMS:
        for path in (ROOT / room).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    lines = (node.end_lineno or node.lineno) - node.lineno + 1
                    if lines > MAX_FUNCTION_LINES:
                        long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({lines} lines)")
    assert not long, long
