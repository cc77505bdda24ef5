"""The chat evaluation job's AI-assisted metrics (training/evaluation/judge.py): azure-ai-evaluation's own
RelevanceEvaluator, CoherenceEvaluator and GroundednessEvaluator, sending their requests to a fake Azure OpenAI
chat-completions endpoint (a real HTTP server on 127.0.0.1) that records what would be sent and answers in the REST
API's shape, with the JSON their prompty files ask the judge for (``{"reason", "score", "status"}``). Azure OpenAI
cannot run here; everything else is the real code, signing in with a static credential in place of the compute's
managed identity."""

from __future__ import annotations

import importlib.util
import json
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from azure.core.credentials import AccessToken
from echo_chat import save_echo_model

from training.evaluation import judge as judging

ROOT = Path(__file__).resolve().parents[3]
EVALUATION = ROOT / "training" / "evaluation"
DEPLOYMENT = "judge-gpt-4o"
API_VERSION = "2024-10-21"
TOKEN = "entra-token-for-the-compute"  # what the static credential hands out
SYSTEM = {"role": "system", "content": "You are the Contoso help desk assistant."}


@dataclass
class Request:
    """One request the fake received."""

    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: dict[str, Any]

    @property
    def prompt(self) -> str:
        """Every message's text, as the judge would read it."""
        return "\n".join(str(m.get("content")) for m in self.body.get("messages", []))

    @property
    def metric(self) -> str:
        """Which evaluator sent it, by its prompty file's own definition line."""
        text = self.prompt
        return ("relevance" if "Relevance Evaluator" in text else "coherence" if "**Coherence**" in text
                else "groundedness" if "**Groundedness**" in text else "?")


Reply = Callable[[Request], tuple[int, dict[str, str], dict[str, Any]]]


@dataclass
class FakeAzureOpenAI:
    """``POST /openai/deployments/<deployment>/chat/completions?api-version=...``, answered by ``reply``."""

    url: str
    reply: Reply
    requests: list[Request] = field(default_factory=list)


def completion(content: dict[str, Any]) -> tuple[int, dict[str, str], dict[str, Any]]:
    """A chat completion in the REST API's shape, the judge's JSON as the assistant's message."""
    return 200, {}, {"id": "chatcmpl-1", "object": "chat.completion", "created": 1767225600, "model": "gpt-4o",
                     "choices": [{"index": 0, "finish_reason": "stop",
                                  "message": {"role": "assistant", "content": json.dumps(content)}}],
                     "usage": {"prompt_tokens": 900, "completion_tokens": 40, "total_tokens": 940}}


def error(status: int, code: str, message: str, **headers: str) -> tuple[int, dict[str, str], dict[str, Any]]:
    """An Azure OpenAI error body."""
    return status, headers, {"error": {"code": code, "message": message}}


@pytest.fixture
def fake_openai() -> Iterator[FakeAzureOpenAI]:
    fake = FakeAzureOpenAI("", lambda request: error(500, "unset", "no reply configured"))

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            parts = urlsplit(self.path)
            body = json.loads(self.rfile.read(int(self.headers.get("content-length") or 0)) or b"{}")
            request = Request(parts.path, parse_qs(parts.query), {k.lower(): v for k, v in self.headers.items()},
                              body)
            fake.requests.append(request)
            expected = f"/openai/deployments/{DEPLOYMENT}/chat/completions"
            status, headers, answer = (fake.reply(request) if parts.path == expected else
                                       error(404, "DeploymentNotFound", f"no deployment at {parts.path}"))
            data = json.dumps(answer).encode()
            self.send_response(status)
            for name, value in {"content-type": "application/json", **headers}.items():
                self.send_header(name, value)
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (http.server's signature)
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    fake.url = f"http://127.0.0.1:{server.server_port}"
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()


class StaticCredential:
    """A TokenCredential that hands out one token and records the scopes it was asked for."""

    def __init__(self) -> None:
        self.scopes: list[tuple[str, ...]] = []

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        self.scopes.append(tuple(str(s.value if hasattr(s, "value") else s) for s in scopes))
        return AccessToken(TOKEN, int(time.time()) + 3600)


def config(fake: FakeAzureOpenAI) -> judging.JudgeConfig:
    return judging.JudgeConfig(fake.url, DEPLOYMENT, API_VERSION)


QUERIES = ["What is the billing service called?", "What is the billing service called, really?"]
ANSWERS = ["It is Bluefin.", "turtles all the way down"]
# The fake judge's rubric: a score per metric for each answer, found where the prompty file puts the response.
RUBRIC = {ANSWERS[0]: {"relevance": 5, "coherence": 4, "groundedness": 5},
          ANSWERS[1]: {"relevance": 1, "coherence": 3, "groundedness": 2}}


def by_rubric(request: Request) -> tuple[int, dict[str, str], dict[str, Any]]:
    answer = next(a for a in RUBRIC if f"RESPONSE: {a}\n" in request.prompt)
    score = RUBRIC[answer][request.metric]
    return completion({"reason": f"{request.metric} {score}: the answer says {answer.split()[-1]}", "score": score,
                       "status": "completed"})


CONTEXTS = ["The billing service is codenamed Bluefin.", "The billing service is codenamed Bluefin."]


def test_each_answer_is_scored_by_the_judge_deployment_with_an_entra_token_and_the_means_are_its_numbers(
        fake_openai: FakeAzureOpenAI) -> None:
    fake_openai.reply = by_rubric
    credential = StaticCredential()
    metrics = ("relevance", "coherence", "groundedness")

    means, verdicts = judging.judge_answers(judging.scorers(config(fake_openai), metrics, credential), QUERIES,
                                            ANSWERS, CONTEXTS)

    assert means == {"relevance": 3.0, "coherence": 3.5, "groundedness": 3.5}  # (5 + 1) / 2, (4 + 3) / 2, ...
    assert verdicts[0]["relevance"] == {"score": 5.0, "reason": "relevance 5: the answer says Bluefin."}
    assert verdicts[1]["groundedness"] == {"score": 2.0, "reason": "groundedness 2: the answer says down"}
    sent = fake_openai.requests
    assert [(r.metric, i) for r in sent for i, a in enumerate(ANSWERS) if a in r.prompt] == [
        ("relevance", 0), ("relevance", 1), ("coherence", 0), ("coherence", 1), ("groundedness", 0),
        ("groundedness", 1)]  # one chat completion per answer and metric
    for request in sent:
        assert request.path == f"/openai/deployments/{DEPLOYMENT}/chat/completions"
        assert request.query == {"api-version": [API_VERSION]}
        assert request.headers["authorization"] == f"Bearer {TOKEN}" and "api-key" not in request.headers
        assert request.body["response_format"] == {"type": "json_object"} and request.body["temperature"] == 0
    for request, (query, answer) in zip(sent, [*zip(QUERIES, ANSWERS, strict=True)] * 3, strict=True):
        assert query in request.prompt and answer in request.prompt  # the question and the response, as asked
    assert all(CONTEXTS[0] in r.prompt for r in sent if r.metric == "groundedness")
    assert all(CONTEXTS[0] not in r.prompt for r in sent if r.metric != "groundedness")
    assert credential.scopes and all(len(s) == 1 and s[0].endswith("/.default") for s in credential.scopes)


def test_an_empty_answer_is_not_sent_and_scores_the_lowest(fake_openai: FakeAzureOpenAI) -> None:
    fake_openai.reply = by_rubric
    by_metric = judging.scorers(config(fake_openai), ("coherence",), StaticCredential())

    means, verdicts = judging.judge_answers(by_metric, QUERIES, ["It is Bluefin.", "  "], CONTEXTS)

    assert means == {"coherence": 2.5} and verdicts[1]["coherence"]["score"] == judging.LOWEST
    assert len(fake_openai.requests) == 1


@pytest.mark.parametrize(("reply", "calls", "message"), [
    (error(403, "PermissionDenied", "The principal `0000` lacks the required data action `Microsoft.CognitiveServices/"
                                    "accounts/OpenAI/deployments/chat/completions/action`."),
     1, "Error code: 403 - The principal `0000` lacks the required data action"),
    # throttled: the evaluator retries as Retry-After says, 10 times, then gives the service's message
    (error(429, "429", "Requests to the ChatCompletions_Create Operation have exceeded call rate limit.",
           **{"retry-after": "0.01"}), 11, "Error code: 429 - Requests to the ChatCompletions_Create Operation"),
    (completion({"verdict": "fine"}), 1, "the judge's reply gave no relevance score"),
], ids=["forbidden", "throttled", "no-score"])
def test_a_judge_call_that_fails_says_which_answer_and_what_the_service_said(
        fake_openai: FakeAzureOpenAI, reply: tuple[int, dict[str, str], dict[str, Any]], calls: int,
        message: str) -> None:
    fake_openai.reply = lambda request: reply
    by_metric = judging.scorers(config(fake_openai), ("relevance",), StaticCredential())

    with pytest.raises(judging.JudgeError) as err:
        judging.judge_answers(by_metric, QUERIES, ANSWERS, CONTEXTS)

    assert str(err.value).startswith("judging relevance of answer 1: ") and message in str(err.value), err.value
    assert len(fake_openai.requests) == calls


# -- the job: main() with a judge, in this process so that the credential can be the static one -------------------
def _chat_job() -> ModuleType:
    spec = importlib.util.spec_from_file_location("_chat_job_with_judge", EVALUATION / "chat.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def tracking_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One MLflow store for this module's jobs (creating a SQLite store takes seconds)."""
    return f"sqlite:///{tmp_path_factory.mktemp('judge-jobs') / 'mlflow.db'}"


@pytest.fixture
def job(tracking_uri: str, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """The chat evaluation job, signing in with the static credential, logging to the module's MLflow store."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_uri)
    monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)
    monkeypatch.setattr(judging, "default_credential", StaticCredential)
    return _chat_job()


def _eval_set(tmp_path: Path, context: bool = True) -> Path:
    path = tmp_path / "eval.jsonl"
    path.write_text("".join(json.dumps({"messages": [SYSTEM, {"role": "user", "content": q}], "reference": "Bluefin.",
                                        **({"context": CONTEXTS[0]} if context else {})}) + "\n"
                            for q in ("What is the billing service called? Bluefin?", "Is it Bluefin?")))
    return path


def _argv(tmp_path: Path, fake: FakeAzureOpenAI, metrics: str) -> list[str]:
    echo = save_echo_model(tmp_path / "echo")
    (tmp_path / "turtles.json").write_text(json.dumps([{"role": "system", "content": "turtles"}]))
    return ["chat.py", "--eval_set", str(_eval_set(tmp_path)), "--candidate", str(echo), "--champion", str(echo),
            "--champion_prompt", str(tmp_path / "turtles.json"), "--judge_endpoint", fake.url, "--judge_deployment",
            DEPLOYMENT, "--judge_api_version", API_VERSION, "--judge_metrics", metrics,
            "--evaluation", str(tmp_path / "out")]


def echo_rubric(request: Request) -> tuple[int, dict[str, str], dict[str, Any]]:
    """The echo model answers "<system> | <question>": the champion's system prompt is "turtles"."""
    score = {"relevance": 2, "groundedness": 1} if "RESPONSE: turtles |" in request.prompt else {
        "relevance": 4, "groundedness": 5}
    return completion({"reason": f"{request.metric} scored", "score": score[request.metric], "status": "completed"})


def test_the_job_puts_each_models_judge_means_in_its_scores_and_the_reasons_beside_its_answers(
        job: ModuleType, tmp_path: Path, fake_openai: FakeAzureOpenAI, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_openai.reply = echo_rubric
    monkeypatch.setattr(sys, "argv", _argv(tmp_path, fake_openai, "relevance,groundedness"))

    job.main()

    scores = json.loads((tmp_path / "out" / "scores.json").read_text())
    assert set(scores) == {"candidate", "champion"}  # nothing skipped
    assert {k: scores["candidate"][k] for k in ("relevance", "groundedness")} == {"relevance": 4.0,
                                                                                 "groundedness": 5.0}
    assert {k: scores["champion"][k] for k in ("relevance", "groundedness")} == {"relevance": 2.0,
                                                                                "groundedness": 1.0}
    assert set(job.METRICS) < set(scores["candidate"])  # the text metrics are there as before
    answers = json.loads((tmp_path / "out" / "answers.json").read_text())
    assert answers[0]["judge"]["champion"] == {"relevance": {"score": 2.0, "reason": "relevance scored"},
                                               "groundedness": {"score": 1.0, "reason": "groundedness scored"}}
    assert len(fake_openai.requests) == 2 * 2 * 2  # two models, two answers, two metrics


def test_a_judge_that_refuses_fails_the_job_with_the_services_message_before_anything_is_written(
        job: ModuleType, tmp_path: Path, fake_openai: FakeAzureOpenAI, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_openai.reply = lambda request: error(401, "401", "Unauthorized. Access token is missing, invalid, audience "
                                                          "is incorrect, or have expired.")
    monkeypatch.setattr(sys, "argv", _argv(tmp_path, fake_openai, "coherence"))

    with pytest.raises(SystemExit) as err:
        job.main()

    assert str(err.value).startswith(f"candidate: the judge ({DEPLOYMENT} at {fake_openai.url}) failed: judging "
                                     "coherence of answer 1: "), err.value
    assert "Error code: 401 - Unauthorized. Access token is missing" in str(err.value)
    assert not (tmp_path / "out").exists()


def test_groundedness_needs_a_context_on_every_line_judge_or_not(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    chat = _chat_job()
    monkeypatch.setattr(sys, "argv", ["chat.py", "--eval_set", str(_eval_set(tmp_path, context=False)),
                                      "--candidate", "/nowhere", "--judge_metrics", "groundedness",
                                      "--evaluation", str(tmp_path / "out")])

    with pytest.raises(SystemExit, match=r"eval\.jsonl line 1: groundedness is asked \(evaluation\.judge\.metrics\), "
                                         r"so every example needs a 'context' string"):
        chat.main()
    assert not (tmp_path / "out").exists()  # it fails before any model loads


@pytest.mark.parametrize(("argv", "message"), [
    (["--judge_metrics", "fluency"], "--judge_metrics: fluency is not one of relevance, coherence, groundedness"),
    (["--judge_endpoint", "https://judge.openai.azure.com", "--judge_metrics", "relevance"],
     "a judge needs --judge_api_version, --judge_deployment too"),
])
def test_judge_inputs_that_do_not_fit_fail_the_job_naming_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                               argv: list[str], message: str) -> None:
    chat = _chat_job()
    monkeypatch.setattr(sys, "argv", ["chat.py", "--eval_set", str(_eval_set(tmp_path)), "--candidate", "/nowhere",
                                      *argv, "--evaluation", str(tmp_path / "out")])
    with pytest.raises(SystemExit) as err:
        chat.main()
    assert str(err.value) == message
