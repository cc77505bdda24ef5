"""Chat requests on the score route, in the shape of Azure ML's chat-completion deployments.

Models from the Azure ML catalog deployed to a managed online endpoint take
``{"input_data": {"input_string": [{"role", "content"}, ...], "parameters": {...}}}`` and answer
``{"output": "<the reply>"}``
(https://learn.microsoft.com/azure/machine-learning/how-to-deploy-models-llama, "consume models
deployed to managed compute"; the catalog's scoring script names the same shape when it refuses
one). Here such a request becomes one row ``{"messages": [...]}`` for the MLflow chat model and its
``parameters`` become predict params.

Parameters: a key the deployment's model declares in its params schema is passed on (MLflow checks
its type: a wrong one is a 400). A common generation key the model does not declare
(``GENERATION_KEYS``, the ones Azure ML's samples send) is ignored, so a client written for Azure ML
works unchanged. Any other key is refused with a 400 naming it: a typo must not pass unnoticed.
A deployment's own default params (``gateway.scoring``) are merged over the client's before this check,
and win where both set a key.
A message's keys other than ``role`` and ``content`` (``name``, a fine-tuning ``weight``) are dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .state import GatewayError

ROLES = ("system", "user", "assistant")
# sent by Azure ML's chat samples; ignored when a model does not declare them
GENERATION_KEYS = frozenset({"max_new_tokens", "max_tokens", "temperature", "top_p", "top_k", "do_sample",
                             "repetition_penalty", "return_full_text"})
CHAT_SHAPE = '{"input_data": {"input_string": [{"role": "user", "content": "..."}], "parameters": {...}}}'


@dataclass(frozen=True)
class ChatRequest:
    """A validated chat request: the conversation and the parameters the client sent."""

    messages: list[dict[str, str]]
    parameters: dict[str, Any] = field(default_factory=dict)

    @property
    def row(self) -> dict[str, Any]:
        """The one input row the chat model takes (and the request log keeps)."""
        return {"messages": self.messages}


def is_chat(body: Any) -> bool:
    """The body is in the chat shape: ``input_data`` is an object with ``input_string``."""
    return isinstance(body, dict) and isinstance(body.get("input_data"), dict) and "input_string" in body["input_data"]


def parse_chat(body: dict[str, Any]) -> ChatRequest:
    """The chat request in ``body`` (``is_chat(body)``); GatewayError 400 naming what is wrong."""
    data = body["input_data"]
    messages = data["input_string"]
    if not isinstance(messages, list) or not messages:
        raise GatewayError(400, f"input_data.input_string must be a non-empty list of messages: {CHAT_SHAPE}")
    for i, message in enumerate(messages):
        where = f"input_data.input_string[{i}]"
        if not isinstance(message, dict):
            raise GatewayError(400, f"{where} must be an object {{\"role\", \"content\"}}, "
                                    f"got {type(message).__name__}")
        role, content = message.get("role"), message.get("content")
        if role not in ROLES:
            raise GatewayError(400, f"{where}.role must be one of {', '.join(ROLES)}, got {role!r}")
        if not isinstance(content, str):
            raise GatewayError(400, f"{where}.content must be a string, got {type(content).__name__}")
    parameters = data.get("parameters", {})
    if parameters is None:
        parameters = {}
    if not isinstance(parameters, dict):
        raise GatewayError(400, f"input_data.parameters must be an object, got {type(parameters).__name__}")
    for key, value in parameters.items():
        if isinstance(value, (dict, list)) or value is None:
            raise GatewayError(400, f"input_data.parameters.{key} must be a number, a boolean or a string")
    return ChatRequest([{"role": m["role"], "content": m["content"]} for m in messages], dict(parameters))


def declared_params(model: Any) -> frozenset[str]:
    """The params an MLflow model declares in its signature (none without a params schema)."""
    metadata = getattr(model, "metadata", None)
    schema = metadata.get_params_schema() if metadata is not None else None
    return frozenset(p.name for p in schema.params) if schema is not None else frozenset()


def model_params(parameters: dict[str, Any], declared: frozenset[str], deployment: str) -> dict[str, Any]:
    """The parameters passed to the model: the declared ones; undeclared generation keys are dropped,
    anything else is GatewayError 400."""
    unknown = sorted(k for k in parameters if k not in declared and k not in GENERATION_KEYS)
    if unknown:
        understood = ", ".join(sorted(declared)) or "none"
        raise GatewayError(400, f"parameters not understood by deployment {deployment!r}: {', '.join(unknown)} "
                                f"(its model declares: {understood})")
    return {k: v for k, v in parameters.items() if k in declared}
