"""Activities of a chat model's prompts: thin adapters over the platform's prompt registry (one port call each)."""

from __future__ import annotations

from typing import Any

import azure.durable_functions as df

from adapters import runtime
from adapters.errors import marks_transient
from mlops.contracts import GET_PROMPT, SET_PROMPT_ALIAS, FoundPrompt, PromptAliasChange, PromptQuery

bp = df.Blueprint()
Answer = dict[str, Any]


@bp.activity_trigger(input_name="request", activity=GET_PROMPT)
@marks_transient
def get_prompt_activity(request: Answer) -> Answer:
    """One version of the model's prompt, by number or alias (none: ``prompt`` is null)."""
    ask = PromptQuery.from_dict(request)
    return FoundPrompt(runtime.platform().get_prompt(ask.model, ask.version, ask.alias)).to_dict()


@bp.activity_trigger(input_name="request", activity=SET_PROMPT_ALIAS)
@marks_transient
def set_prompt_alias_activity(request: Answer) -> None:
    """Point an alias of the model's prompt at a version."""
    ask = PromptAliasChange.from_dict(request)
    runtime.platform().set_prompt_alias(ask.model, ask.alias, ask.version)
