"""The smoke test's pieces: sample rows from the training data, and the verdict on the answers."""

from __future__ import annotations

import csv
import io
import itertools
from typing import Any


def sample_rows(content: bytes, label: str, count: int) -> list[dict[str, Any]]:
    """The first ``count`` rows of a CSV file as scoring requests: numbers parsed, the label left out."""
    reader = csv.DictReader(io.StringIO(content.decode("utf-8-sig")))
    return [{k: _number(v) for k, v in row.items() if k != label} for row in itertools.islice(reader, count)]


def verdict(rows: int, answers: list[Any] | None, error: str = "") -> tuple[bool, str]:
    """Passed, and why not: the deployment must answer every row (``answers`` None: the call failed)."""
    if answers is None:
        return False, error
    if len(answers) != rows:
        return False, f"{len(answers)} answers for {rows} rows"
    return True, ""


def _number(value: str) -> Any:
    for cast in (int, float):
        try:
            return cast(value)
        except ValueError:
            continue
    return value
