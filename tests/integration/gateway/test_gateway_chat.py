"""Chat requests on the score route of the real gateway process, in the shape of Azure ML's chat-completion
deployments: routing, pinning, mirroring, request ids, the request log and metrics as for rows, parameters
passed to the model as far as it declares them, and bad conversations refused with the reason."""

from __future__ import annotations

import textwrap
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import requests

from adapters.gateway_client import DEPLOYMENT_HEADER

if TYPE_CHECKING:  # fixtures come from this directory's conftest.py
    from conftest import GatewayProcess, Models

# A chat model as MLflow code (models from code: nothing pickled): it answers "<prefix> <the last user message>",
# cut to max_new_tokens words.
MODEL_CODE = '''
import mlflow
from mlflow.pyfunc import PythonModel


class Answers(PythonModel):
    def predict(self, context, model_input, params=None):
        limit = int((params or {{}}).get("max_new_tokens", 64))
        replies = []
        for messages in model_input["messages"]:
            last = [m["content"] for m in list(messages) if m["role"] == "user"][-1]
            replies.append(" ".join(("{prefix} " + last).split()[:limit]))
        return replies


mlflow.models.set_model(Answers())
'''


def _save_chat_model(root: Path, name: str, prefix: str) -> str:
    import mlflow.pyfunc
    import pandas as pd
    from mlflow.models import infer_signature

    code = root / f"{name}.py"
    code.write_text(textwrap.dedent(MODEL_CODE.format(prefix=prefix)))
    example = pd.DataFrame({"messages": [[{"role": "system", "content": "Be brief."},
                                          {"role": "user", "content": "hello"}]]})
    signature = infer_signature(example, ["a reply"], params={"max_new_tokens": 64})
    path = root / name
    mlflow.pyfunc.save_model(str(path), python_model=str(code), signature=signature, pip_requirements=["mlflow"])
    return str(path)


@pytest.fixture(scope="module")
def chat_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Two chat models: one answers briefly ("ok: ..."), the other at length."""
    root = tmp_path_factory.mktemp("chat-models")
    return {"brief": _save_chat_model(root, "brief", "ok:"),
            "verbose": _save_chat_model(root, "verbose", "well, " * 20 + "as you asked:")}


@pytest.fixture
def chat_endpoint(gateway: GatewayProcess, chat_models: dict[str, str]) -> str:
    """An endpoint with deployments brief and verbose, all traffic on brief."""
    name = f"chat-{uuid.uuid4().hex[:8]}"
    for deployment, uri in chat_models.items():
        assert gateway.deploy(name, deployment, uri)["state"] == "succeeded"
    assert gateway.set_traffic(name, {"brief": 100}).status_code == 200
    return name


def _chat(content: str, **parameters: Any) -> dict[str, Any]:
    return {"input_data": {"input_string": [{"role": "system", "content": "You answer support tickets."},
                                            {"role": "user", "content": content}],
                           "parameters": parameters}}


def _ask(gateway: GatewayProcess, endpoint: str, body: Any, deployment: str | None = None,
         request_id: str | None = None) -> requests.Response:
    headers = {DEPLOYMENT_HEADER: deployment} if deployment else {}
    if request_id:
        headers["x-request-id"] = request_id
    return gateway.call("POST", f"/endpoints/{endpoint}/score", json=body, headers=headers)


def _logged(gateway: GatewayProcess, endpoint: str) -> list[dict[str, Any]]:
    resp = gateway.call("GET", f"/endpoints/{endpoint}/requests", params={"start": "2000-01-01T00:00:00Z"})
    assert resp.status_code == 200, resp.text
    return list(resp.json())


def test_a_chat_request_is_answered_in_the_chat_shape_and_logged_as_messages_and_reply(
        gateway: GatewayProcess, chat_endpoint: str) -> None:
    resp = _ask(gateway, chat_endpoint, _chat("my invoice is wrong", max_new_tokens=64), request_id="ticket-7")

    assert (resp.status_code, resp.json()) == (200, {"output": "ok: my invoice is wrong"})
    assert (resp.headers[DEPLOYMENT_HEADER], resp.headers["x-request-id"]) == ("brief", "ticket-7")
    body = _chat("my invoice is wrong")
    assert _logged(gateway, chat_endpoint) == [{"messages": body["input_data"]["input_string"],
                                                "__prediction__": "ok: my invoice is wrong",
                                                "__deployment__": "brief", "__request_id__": "ticket-7"}]
    metrics = gateway.metrics(chat_endpoint, "brief")
    assert (metrics["request_count"], metrics["predictions"]) == (1, {"ok: my invoice is wrong": 1})


def test_max_new_tokens_reaches_the_model_and_undeclared_generation_keys_are_ignored(
        gateway: GatewayProcess, chat_endpoint: str) -> None:
    resp = _ask(gateway, chat_endpoint, _chat("please reset my password now", max_new_tokens=3, temperature=0.7,
                                              top_p=0.9, do_sample=True))
    assert (resp.status_code, resp.json()) == (200, {"output": "ok: please reset"})


def test_a_parameter_no_deployment_understands_is_refused_with_its_name(gateway: GatewayProcess,
                                                                        chat_endpoint: str) -> None:
    resp = _ask(gateway, chat_endpoint, _chat("hi", max_new_tokns=3))
    assert resp.status_code == 400
    assert resp.json()["error"] == ("parameters not understood by deployment 'brief': max_new_tokns "
                                    "(its model declares: max_new_tokens)")
    assert gateway.metrics(chat_endpoint, "brief")["client_error_count"] == 1  # refused by the model's deployment


def test_a_pinned_chat_request_goes_to_that_deployment_and_a_shadow_gets_mirrored_conversations(
        gateway: GatewayProcess, chat_endpoint: str) -> None:
    pinned = _ask(gateway, chat_endpoint, _chat("where is my parcel"), deployment="verbose")
    assert pinned.status_code == 200 and pinned.headers[DEPLOYMENT_HEADER] == "verbose"
    assert pinned.json()["output"].endswith("as you asked: where is my parcel")

    assert gateway.set_traffic(chat_endpoint, {"brief": 100}, {"verbose": 50}).status_code == 200
    answers = [_ask(gateway, chat_endpoint, _chat(f"question {i}")) for i in range(20)]
    assert {(r.status_code, r.headers[DEPLOYMENT_HEADER]) for r in answers} == {(200, "brief")}
    assert [r.json() for r in answers] == [{"output": f"ok: question {i}"} for i in range(20)]
    for _ in range(100):  # mirrored requests are logged in the background: wait for them, bounded
        shadow = gateway.metrics(chat_endpoint, "verbose")
        if shadow["request_count"] > 1:
            break
        time.sleep(0.05)
    assert shadow["request_count"] > 1, "no conversation was mirrored to the shadow (1 is the pinned request)"
    assert all("as you asked:" in reply for reply in shadow["predictions"])  # the shadow's own replies
    # clients were only ever answered by brief: the request log's view has no mirrored conversation
    assert {r["__deployment__"] for r in _logged(gateway, chat_endpoint)} == {"brief", "verbose"}
    assert sum(r["__deployment__"] == "verbose" for r in _logged(gateway, chat_endpoint)) == 1


@pytest.mark.parametrize(("input_string", "parameters", "reason"), [
    ([], {}, "input_data.input_string must be a non-empty list of messages"),
    ("hello", {}, "input_data.input_string must be a non-empty list of messages"),
    (["hello"], {}, "input_data.input_string[0] must be an object {\"role\", \"content\"}, got str"),
    ([{"role": "robot", "content": "hi"}], {}, "input_data.input_string[0].role must be one of system, user, "
                                               "assistant, got 'robot'"),
    ([{"role": "user"}], {}, "input_data.input_string[0].content must be a string, got NoneType"),
    ([{"role": "user", "content": "hi"}, {"role": "assistant", "content": ["a", "list"]}], {},
     "input_data.input_string[1].content must be a string, got list"),
    ([{"role": "user", "content": "hi"}], [64], "input_data.parameters must be an object, got list"),
    ([{"role": "user", "content": "hi"}], {"max_new_tokens": {"n": 1}},
     "input_data.parameters.max_new_tokens must be a number, a boolean or a string"),
], ids=["empty", "a-string", "not-an-object", "unknown-role", "no-content", "content-not-text", "params-a-list",
        "param-an-object"])
def test_a_bad_conversation_is_400_naming_the_problem_and_nothing_is_scored(
        gateway: GatewayProcess, chat_endpoint: str, input_string: Any, parameters: Any, reason: str) -> None:
    resp = _ask(gateway, chat_endpoint, {"input_data": {"input_string": input_string, "parameters": parameters}})
    assert resp.status_code == 400
    assert resp.json()["error"].startswith(reason), resp.json()
    assert gateway.metrics(chat_endpoint, "brief")["request_count"] == 0


def test_a_conversation_sent_to_a_tabular_model_is_refused_by_its_signature(gateway: GatewayProcess,
                                                                            models: Models) -> None:
    name = f"tab-{uuid.uuid4().hex[:8]}"
    assert gateway.deploy(name, "A", models.zero)["state"] == "succeeded"
    assert gateway.set_traffic(name, {"A": 100}).status_code == 200
    resp = _ask(gateway, name, _chat("hello"))
    assert resp.status_code == 400
    assert resp.json()["error"].startswith("the messages or parameters do not match the model's signature: ")


def test_the_project_chat_model_answers_a_chat_request_through_the_gateway(gateway: GatewayProcess,
                                                                           tmp_path: Path) -> None:
    # the one test with the real language model (training/chat: SmolLM2-135M-Instruct; loading takes seconds)
    from training.chat.model import save_chat_model

    save_chat_model(tmp_path / "smollm", None, {"max_new_tokens": 16})
    name = f"llm-{uuid.uuid4().hex[:8]}"
    assert gateway.deploy(name, "base", str(tmp_path / "smollm"))["state"] == "succeeded"
    assert gateway.set_traffic(name, {"base": 100}).status_code == 200

    resp = _ask(gateway, name, _chat("What is the capital of France?", max_new_tokens=8, temperature=0.0))

    assert resp.status_code == 200, resp.text
    reply = resp.json()["output"]
    assert isinstance(reply, str) and reply.strip()
    assert _logged(gateway, name)[0]["__prediction__"] == reply
