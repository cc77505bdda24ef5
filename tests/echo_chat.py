"""The echo chat model the tests share: a real MLflow model (models from code: nothing pickled) that answers
through ``training.chat.model.apply_prompt``, the project's one implementation, and echoes the conversation it was
asked, "<system messages> | <last user message>", so that each answer shows the prompt it went through."""

from __future__ import annotations

from pathlib import Path

ECHO_CODE = '''
import json

import mlflow
from mlflow.pyfunc import PythonModel

from training.chat.model import apply_prompt, conversations


class Echo(PythonModel):
    def predict(self, context, model_input, params=None):
        prompt = (params or {}).get("prompt") or ""
        replies = []
        for messages in conversations(model_input):
            if prompt:
                messages = apply_prompt(json.loads(prompt), messages)
            system = " ".join(m["content"] for m in messages if m["role"] == "system")
            replies.append(system + " | " + [m["content"] for m in messages if m["role"] == "user"][-1])
        return replies


mlflow.models.set_model(Echo())
'''


def save_echo_model(path: Path, with_prompt: bool = True) -> Path:
    """Save the echo model at ``path``, declaring the params ``max_new_tokens`` and, ``with_prompt``, ``prompt``,
    as the project's chat model does (a model without ``prompt`` is one saved before prompts existed)."""
    import mlflow.pyfunc
    from mlflow.models import ModelSignature
    from mlflow.types.schema import ParamSchema, ParamSpec

    path.parent.mkdir(parents=True, exist_ok=True)
    code = path.parent / f"{path.name}.py"
    code.write_text(ECHO_CODE)
    specs = [ParamSpec("max_new_tokens", "long", 8)] + ([ParamSpec("prompt", "string", "")] if with_prompt else [])
    mlflow.pyfunc.save_model(str(path), python_model=str(code), signature=ModelSignature(params=ParamSchema(specs)),
                             pip_requirements=["mlflow"])
    return path
