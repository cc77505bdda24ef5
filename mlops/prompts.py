"""A chat model's prompt versions: what a template must look like, and what a prompt's model version records.

A template is a list of chat messages (the chat format of Azure OpenAI and MLflow's prompt registry); in a user
message ``{{question}}`` stands for the question asked. Applied to a conversation (training/chat/model.py,
``apply_prompt``), its system messages replace the conversation's and the last user message is rendered through
its user message. A prompt reaches users as a model version: the champion's weights with the prompt, released
through canary like any version (orchestrators/prompt.py).
"""

from __future__ import annotations

from typing import Any

from .errors import EventError
from .ports import ModelVersion, PromptVersion, prompt_name

PROMPT_STAGES = ["evaluate", "gates", "approval", "register"]
QUESTION = "{{question}}"
ROLES = ("system", "user", "assistant")
MAX_TEMPLATE_CHARS = 20_000
PROMPT_NAME_TAG, PROMPT_VERSION_TAG = "prompt_name", "prompt_version"
# the lineage a prompt's version keeps from the version whose weights it serves
_INHERITED = ("data_url", "data_sha256", "train_data_url", "train_data_sha256", "training_job", "job_yaml_sha256",
              "code_sha256", "pii_action", "pii_entities", "train_examples")


def parse_template(value: Any) -> list[dict[str, str]]:
    """A prompt template from a request body; EventError naming the bad message and field."""
    if not isinstance(value, list) or not value:
        raise EventError("template", "must be a non-empty list of messages {\"role\", \"content\"}")
    messages = []
    for i, message in enumerate(value):
        where = f"template[{i}]"
        if not isinstance(message, dict) or set(message) - {"role", "content"}:
            raise EventError(where, "must be an object with only \"role\" and \"content\"")
        role, content = message.get("role"), message.get("content")
        if role not in ROLES:
            raise EventError(f"{where}.role", f"must be one of {', '.join(ROLES)}, got {role!r}")
        if not isinstance(content, str) or not content.strip():
            raise EventError(f"{where}.content", "must be non-empty text")
        messages.append({"role": str(role), "content": content})
    users = [m for m in messages if m["role"] == "user"]
    if users and not any(QUESTION in m["content"] for m in users):
        raise EventError("template", f"a user message must hold {QUESTION} (where the question goes)")
    if sum(len(m["content"]) for m in messages) > MAX_TEMPLATE_CHARS:
        raise EventError("template", f"longer than {MAX_TEMPLATE_CHARS} characters")
    return messages


def prompt_tags(champion: ModelVersion, prompt: PromptVersion, run_id: str, policy_hash: str,
                metrics: dict[str, float], approved_by: str = "",
                extra: dict[str, str] | None = None) -> dict[str, str]:
    """The tags of a prompt's model version: the prompt, the weights it serves and their lineage, the run, and its
    metrics on the evaluation set."""
    tags = {k: champion.tags[k] for k in _INHERITED if k in champion.tags}
    tags.update({PROMPT_NAME_TAG: prompt.name or prompt_name(champion.name), PROMPT_VERSION_TAG: prompt.version,
                 "weights_from_version": champion.version, "run_id": run_id, "policy_hash": policy_hash,
                 **(extra or {})})
    if approved_by:
        tags["approved_by"] = approved_by
    tags.update({f"metric.{k}": f"{v:.6f}" for k, v in metrics.items()})
    return tags
