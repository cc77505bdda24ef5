"""The smoke test's pieces: sample rows from the head of the training data, and the verdict on the answers."""

from __future__ import annotations

import csv
import io
import itertools
import json
from typing import Any

from .gates import NULL_VALUES

# The smoke test reads this much of the training file (Platform.read_head), never all of it: a few rows fit
# many times over, and a 50 MB file no longer costs the Function App its size in memory.
HEAD_BYTES = 256 * 1024


def sample_rows(content: bytes, label: str, count: int, head_bytes: int = HEAD_BYTES) -> list[dict[str, Any]]:
    """The first ``count`` rows of a CSV file as scoring requests: numbers parsed, nulls as None, no label.

    ``content`` is the first ``head_bytes`` of the file, or all of it when it is shorter; a head that long
    may end inside a row (or inside a character), so what follows its last newline is left out.
    """
    if len(content) >= head_bytes:
        content = content[:content.rfind(b"\n") + 1]
    reader = csv.DictReader(io.StringIO(content.decode("utf-8-sig"), newline=""))
    return [{k: _number(v) for k, v in row.items() if k != label} for row in itertools.islice(reader, count)]


def sample_prompts(content: bytes, count: int, head_bytes: int = HEAD_BYTES) -> list[dict[str, Any]]:
    """The first ``count`` chat examples of a JSONL head as scoring requests: each one's messages up to the last
    user message (the answer left out), as ``{"messages": [...]}`` rows. Lines that are not examples are skipped:
    the data passed validation, so only a head cut inside a line can hold one."""
    if len(content) >= head_bytes:
        content = content[:content.rfind(b"\n") + 1]
    rows: list[dict[str, Any]] = []
    for line in content.decode("utf-8-sig", "replace").splitlines():
        try:
            messages = json.loads(line)["messages"]
        except (ValueError, KeyError, TypeError):
            continue
        users = [i for i, m in enumerate(messages) if isinstance(m, dict) and m.get("role") == "user"]
        if users:
            rows.append({"messages": messages[:users[-1] + 1]})
        if len(rows) == count:
            break
    return rows


def verdict(rows: int, answers: list[Any] | None, error: str = "") -> tuple[bool, str]:
    """Passed, and why not: the deployment must answer every row (``answers`` None: the call failed)."""
    if answers is None:
        return False, error
    if len(answers) != rows:
        return False, f"{len(answers)} answers for {rows} rows"
    return True, ""


def _number(value: str | None) -> Any:
    if value is None or value.strip().lower() in NULL_VALUES:  # None: a short row's missing field
        return None  # the model's pipeline imputes it, as training did
    for cast in (int, float):
        try:
            return cast(value)
        except ValueError:
            continue
    return value
