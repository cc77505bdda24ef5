"""The code is ruff- and mypy-clean (the standards say so; this makes it a test)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ["devhost", "mlops", "adapters", "gateway", "training", "cli", "triggers", "orchestrators", "activities",
            "function_app.py", "bench"]


def test_ruff_finds_nothing() -> None:
    result = subprocess.run([sys.executable, "-m", "ruff", "check", *PACKAGES, "tests"], cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_finds_nothing() -> None:
    result = subprocess.run([sys.executable, "-m", "mypy", *PACKAGES], cwd=ROOT, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr


def test_no_two_test_modules_share_a_name() -> None:
    """The test folders have no __init__.py, so pytest imports modules by basename: two test_x.py anywhere make
    the second fail to collect (an error in CI, never seen when one folder is run alone)."""
    tests = Path(__file__).resolve().parents[1]
    names: dict[str, list[str]] = {}
    for path in tests.rglob("test_*.py"):
        if "__pycache__" not in path.parts:
            names.setdefault(path.name, []).append(str(path.relative_to(tests)))
    assert not {n: p for n, p in names.items() if len(p) > 1}
