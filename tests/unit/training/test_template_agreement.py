"""The two prompt-template checks agree: ``mlops.prompts.parse_template`` (the API, when a prompt is registered)
and ``training.chat.model.check_template`` (the chat model, which ships without the control plane and so cannot
import it). Whatever the API registers, the model must take as it is; what the model refuses, the API must have
refused first. The API may be stricter (no empty content, no extra keys, a size limit)."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from mlops.errors import EventError
from mlops.prompts import QUESTION as API_QUESTION
from mlops.prompts import ROLES, parse_template
from training.chat.model import QUESTION, TEMPLATE_ROLES, ChatModelError, check_template

MESSAGES: list[Any] = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Q: {{question}}"},
    {"role": "user", "content": "no placeholder"},
    {"role": "assistant", "content": "Sure."},
    {"role": "tool", "content": "{{question}}"},
    {"role": "user", "content": ""},
    {"role": "system", "content": 7},
    {"role": "user", "content": "{{question}}", "name": "x"},
    "not a message",
]


def _templates() -> list[Any]:
    cases: list[Any] = [[], None, "text", {"role": "user", "content": QUESTION}]
    for n in (1, 2, 3):
        cases += [list(t) for t in itertools.product(MESSAGES, repeat=n)]
    return cases


def test_both_checks_name_the_same_placeholder_and_roles() -> None:
    assert API_QUESTION == QUESTION
    assert tuple(ROLES) == tuple(TEMPLATE_ROLES)


def test_every_template_the_api_registers_the_model_takes_unchanged() -> None:
    accepted = refused = 0
    for template in _templates():
        try:
            registered = parse_template(template)
        except EventError:
            refused += 1
            continue
        accepted += 1
        assert check_template(registered) == registered, template
    assert accepted > 20 and refused > 100  # both sides of the line were exercised


def test_every_template_the_model_refuses_the_api_refused_first() -> None:
    for template in _templates():
        try:
            check_template(template)
        except ChatModelError:
            with pytest.raises(EventError):
                parse_template(template)
