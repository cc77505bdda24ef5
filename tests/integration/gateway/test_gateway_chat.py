"""Chat requests on the score route of the real gateway process, in the shape of Azure ML's chat-completion
deployments: routing, pinning, mirroring, request ids, the request log and metrics as for rows, parameters
passed to the model as far as it declares them, and bad conversations refused with the reason."""

from __future__ import annotations

import json
import textwrap
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import requests
from echo_chat import save_echo_model

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


# -- deployments with default params: one chat model served through two prompts --------------------------------
BRIEF = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Q: {{question}}"}]
WARM = [{"role": "system", "content": "Be warm."}, {"role": "user", "content": "Dear desk, {{question}}"}]


@pytest.fixture(scope="module")
def echo_model(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The echo chat model (tests/echo_chat.py), declaring ``max_new_tokens`` and ``prompt``."""
    return str(save_echo_model(tmp_path_factory.mktemp("echo-model") / "echo"))


def _deploy_with_prompt(gateway: GatewayProcess, endpoint: str, deployment: str, model_uri: str,
                        template: list[dict[str, str]] | None, version: str) -> None:
    from mlops.ports import ModelVersion, PromptVersion

    prompt = PromptVersion(name="faq-prompt", version=version, template=template) if template else None
    op = gateway.client().begin_deployment(endpoint, deployment, ModelVersion(name="faq", version="3",
                                                                              model_uri=model_uri), prompt)
    assert gateway.wait_operation(op.operation_id)["state"] == "succeeded"


def test_two_deployments_of_one_model_answer_through_their_own_prompts_under_a_split(
        gateway: GatewayProcess, echo_model: str) -> None:
    name = f"prompts-{uuid.uuid4().hex[:8]}"
    _deploy_with_prompt(gateway, name, "champion", echo_model, BRIEF, "1")
    _deploy_with_prompt(gateway, name, "canary", echo_model, WARM, "2")
    assert gateway.set_traffic(name, {"champion": 50, "canary": 50}).status_code == 200

    answers = [_ask(gateway, name, _chat("where is my parcel?")) for _ in range(40)]

    expected = {"champion": "Be brief. | Q: where is my parcel?", "canary": "Be warm. | Dear desk, where is my parcel?"}
    assert all(r.status_code == 200 for r in answers)
    assert {r.headers[DEPLOYMENT_HEADER] for r in answers} == {"champion", "canary"}  # both served (1 in 2^39)
    assert all(r.json()["output"] == expected[r.headers[DEPLOYMENT_HEADER]] for r in answers)
    # the request log keeps the client's conversation, not the prompted one
    assert {r["messages"][0]["content"] for r in _logged(gateway, name)} == {"You answer support tickets."}
    listing = gateway.client().describe_deployments(name)
    assert listing["canary"] == {"model_uri": echo_model, "model_name": "faq", "model_version": "3",
                                 "params": {"prompt": json.dumps(WARM)}, "prompt_name": "faq-prompt",
                                 "prompt_version": "2"}
    assert listing["champion"]["prompt_version"] == "1"
    assert gateway.deployments(name) == {"champion": echo_model, "canary": echo_model}  # the plain listing as before


def test_a_client_cannot_override_the_prompt_a_deployment_serves_with(gateway: GatewayProcess,
                                                                      echo_model: str) -> None:
    name = f"override-{uuid.uuid4().hex[:8]}"
    _deploy_with_prompt(gateway, name, "prompted", echo_model, BRIEF, "1")
    _deploy_with_prompt(gateway, name, "plain", echo_model, None, "")
    assert gateway.set_traffic(name, {"prompted": 100}).status_code == 200
    theirs = json.dumps(WARM)

    overridden = _ask(gateway, name, _chat("hi", prompt=theirs, max_new_tokens=4))
    plain = _ask(gateway, name, _chat("hi", prompt=theirs), deployment="plain")

    assert (overridden.status_code, overridden.json()) == (200, {"output": "Be brief. | Q: hi"})
    # a deployment that sets no prompt takes the client's, as the model declares the param
    assert (plain.status_code, plain.json()) == (200, {"output": "Be warm. | Dear desk, hi"})
    # rows (a tabular request) are predicted without the deployment's params
    rows = gateway.call("POST", f"/endpoints/{name}/score",
                        json={"input_data": [{"messages": _chat("hi")["input_data"]["input_string"]}]})
    assert (rows.status_code, rows.json()) == (200, {"predictions": ["You answer support tickets. | hi"]})


@pytest.mark.parametrize(("params", "reason"), [
    ([1], "params must be an object, got list"),
    ({"prompt": {"role": "user"}}, "params.prompt must be a string, a number or a boolean, got dict"),
    ({"prompt": None}, "params.prompt must be a string, a number or a boolean, got NoneType"),
], ids=["a-list", "a-nested-object", "a-null"])
def test_bad_deployment_params_are_400_and_nothing_is_deployed(gateway: GatewayProcess, echo_model: str,
                                                               params: Any, reason: str) -> None:
    name = f"bad-{uuid.uuid4().hex[:8]}"
    resp = gateway.call("PUT", f"/endpoints/{name}/deployments/A", json={"model_uri": echo_model, "params": params})
    assert (resp.status_code, resp.json()) == (400, {"error": reason})
    assert gateway.deployments(name) == {}


def test_params_the_model_does_not_declare_fail_the_deployment_with_their_names(gateway: GatewayProcess,
                                                                               chat_models: dict[str, str]) -> None:
    name = f"undeclared-{uuid.uuid4().hex[:8]}"
    resp = gateway.call("PUT", f"/endpoints/{name}/deployments/A",
                        json={"model_uri": chat_models["brief"], "params": {"prompt": "[]", "tone": "warm"}})
    assert resp.status_code == 202, resp.text

    op = gateway.wait_operation(resp.json()["operation_id"])

    assert op["state"] == "failed"
    assert op["message"].startswith("the deployment's params prompt, tone are not declared by its model")
    assert gateway.deployments(name) == {}


def test_a_deployments_prompt_survives_a_restart(own_gateway: GatewayProcess, echo_model: str) -> None:
    name = f"restart-{uuid.uuid4().hex[:8]}"
    _deploy_with_prompt(own_gateway, name, "A", echo_model, WARM, "2")
    assert own_gateway.set_traffic(name, {"A": 100}).status_code == 200
    assert own_gateway.stop() == 0
    own_gateway.start()

    resp = _ask(own_gateway, name, _chat("hi"))

    assert (resp.status_code, resp.json()) == (200, {"output": "Be warm. | Dear desk, hi"})
    assert own_gateway.client().describe_deployments(name)["A"]["prompt_version"] == "2"
    # the same model, prompt and params again: nothing to load; another prompt: a new deployment of it
    _deploy_with_prompt(own_gateway, name, "A", echo_model, BRIEF, "3")
    assert _ask(own_gateway, name, _chat("hi")).json() == {"output": "Be brief. | Q: hi"}
