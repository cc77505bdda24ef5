"""The format check of landed chat examples: is each line a chat example a fine-tune can learn from.

The format is Azure OpenAI's fine-tuning format for chat completion models
(https://learn.microsoft.com/en-us/azure/ai-services/openai/how-to/fine-tuning, "Example file format" and
"Multi-turn chat file format"): JSON Lines, one example per line, ``{"messages": [{"role": "system" | "user" |
"assistant", "content": "..."}, ...]}``; an assistant message may carry ``"weight": 0`` (skip it in training)
or ``1``. The docs define no other key for this format, so any other key is refused: ``tools`` / ``functions``
belong to the function-calling format, and ``name`` or ``tool_calls`` to messages our base model never sees.
The docs ask for UTF-8 with a byte-order mark; the mark is accepted, not required.

A problem names its line (1-based, blank lines counted, as an editor numbers them). Standard library only,
and one pass: in Azure this runs in the Function App. Token counts and the PII scan need the base model's
tokenizer and presidio; they belong to the data check job (training/chat/check.py).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from ._json import Json

ROLES = ("system", "user", "assistant")
_MESSAGE_KEYS = frozenset({"role", "content", "weight"})
_WEIGHTS = (0, 1)


@dataclass(frozen=True)
class ChatDataReport(Json):
    """The verdict on a landed JSONL file; ``problems`` says what is wrong, each naming its line."""

    passed: bool
    examples: int  # valid examples, a duplicate not counted again
    problems: list[str] = field(default_factory=list)
    duplicates: int = 0
    roles: dict[str, int] = field(default_factory=dict)  # messages per role, over the valid examples


def check_chat_data(content: bytes, min_examples: int, max_problems: int = 20) -> ChatDataReport:
    """Check every line of a chat JSONL file, the count of valid examples, and duplicates."""
    if content.startswith(b"\xef\xbb\xbf"):
        content = content[3:]
    problems: list[str] = []
    seen: dict[str, int] = {}  # the messages list, canonical JSON -> the line it was first on
    roles: Counter[str] = Counter()
    duplicates = lines = 0
    offset = 0
    for number, raw in enumerate(content.split(b"\n"), start=1):
        start, offset = offset, offset + len(raw) + 1
        if not raw.strip():
            continue
        lines += 1
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            problems.append(f"line {number}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at byte offset "
                            f"{start + exc.start} of the file)")
            continue
        messages, found = _example(text)
        if found:
            problems += [f"line {number}: {p}" for p in found]
            continue
        key = json.dumps(messages, sort_keys=True, ensure_ascii=False)
        if key in seen:
            duplicates += 1
            problems.append(f"line {number}: duplicate of line {seen[key]}")
            continue
        seen[key] = number
        roles.update(m["role"] for m in messages)
    if not lines:
        return ChatDataReport(False, 0, ["empty file: no examples (one JSON object per line)"])
    examples = len(seen)
    if examples < min_examples:
        # first, so that the cap below never hides it
        problems.insert(0, f"{examples} valid examples, at least {min_examples} required")
    if len(problems) > max_problems:
        problems = problems[:max_problems] + [f"... and {len(problems) - max_problems} more"]
    return ChatDataReport(not problems, examples, problems, duplicates, {r: roles[r] for r in ROLES if roles[r]})


def _example(text: str) -> tuple[list[dict[str, Any]], list[str]]:
    """(the example's messages, its problems) for one line's text."""
    try:
        example = json.loads(text)
    except json.JSONDecodeError as exc:
        return [], [f"not valid JSON ({exc.msg} at column {exc.colno})"]
    if not isinstance(example, dict):
        return [], [f"must be a JSON object with a messages list, not {_kind(example)}"]
    problems = [f"unknown key {k!r} (an example holds only messages)" for k in example if k != "messages"]
    messages = example.get("messages")
    if not isinstance(messages, list) or not messages:
        return [], problems + ["messages must be a non-empty list of messages"]
    for i, message in enumerate(messages):
        problems += [f"messages[{i}]{p}" for p in _message(message)]
    if problems:
        return [], problems
    present = {m["role"] for m in messages}
    for role in ("user", "assistant"):
        if role not in present:
            problems.append(f"no {role} message: an example needs at least one user and one assistant message")
    if "assistant" in present:
        if messages[-1]["role"] != "assistant":
            problems.append("the last message must be the assistant's (the answer to learn)")
        elif all(m.get("weight", 1) == 0 for m in messages if m["role"] == "assistant"):
            problems.append("every assistant message has weight 0: nothing to learn")
    return messages, problems


def _message(message: Any) -> list[str]:
    """The problems of one message (each starting with what follows ``messages[i]``)."""
    if not isinstance(message, dict):
        return [f" must be an object with role and content, not {_kind(message)}"]
    problems = [f" has unknown key {k!r} (a message holds role, content and, on assistant messages, weight)"
                for k in message if k not in _MESSAGE_KEYS]
    role = message.get("role")
    if role not in ROLES:
        problems.append(f".role {role!r} is not one of {', '.join(ROLES)}" if "role" in message else ": no role")
    content = message.get("content")
    if not isinstance(content, str) or not content.strip():
        problems.append(".content must be a non-empty string")
    if "weight" in message:
        weight = message["weight"]
        if role != "assistant":
            problems.append(".weight is allowed on assistant messages only")
        elif isinstance(weight, bool) or weight not in _WEIGHTS:
            problems.append(f".weight {weight!r} must be 0 or 1")
    return problems


def _kind(value: Any) -> str:
    """The JSON name of a value's type, for messages."""
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null",
            int: "a number", float: "a number"}.get(type(value), type(value).__name__)
