"""A chat model's policy: what it must name, what it may not, and the defaults it gets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mlops.errors import PolicyError
from mlops.policy import Policy, parse_policy

ROOT = Path(__file__).resolve().parents[3]
CHAT: dict[str, Any] = {"model": "faq-bot", "training": {"job": "job.yaml"},
                        "evaluation": {"model_type": "chat", "eval_set": "eval.jsonl"}}


def test_the_example_policy_is_a_chat_model_with_its_gates() -> None:
    text = (ROOT / "examples" / "faq-bot" / "faq-bot.yaml").read_text()
    policy = parse_policy("faq-bot", text, "faq-bot.yaml")
    assert policy.is_chat and policy.label == "" and policy.data.pii == "block"
    assert [g.name for g in policy.gates.metrics] == ["rouge_f1_score", "f1_score"]


def test_a_chat_policy_gets_jsonl_ten_examples_and_a_rouge_gate_by_default() -> None:
    policy = Policy.from_dict(CHAT)
    assert policy.data.allowed_suffixes == (".jsonl",) and policy.data.min_rows == 10
    (gate,) = policy.gates.metrics
    assert (gate.name, gate.threshold, gate.max_regression, gate.higher_is_better) == ("rouge_f1_score", 0.2, 0.02,
                                                                                       True)


@pytest.mark.parametrize(("change", "message"), [
    ({"training": {}}, "training.job: a chat model needs its fine-tune job"),
    ({"evaluation": {"model_type": "chat"}}, "evaluation.eval_set: a chat model is judged on a fixed evaluation set"),
    ({"label": "answer"}, "label: a chat model has no label column"),
    ({"data": {"allowed_suffixes": [".csv"]}}, "data.allowed_suffixes: a chat model's examples are JSONL, not .csv"),
    ({"data": {"pii": "redact"}}, "data.pii: Input should be 'block', 'mask' or 'allow'"),
    ({"monitoring": {"performance": {}}}, "monitoring.performance: performance on ground truth is for classifiers"),
])
def test_a_chat_policy_that_misses_or_misuses_a_field_names_it(change: dict[str, Any], message: str) -> None:
    with pytest.raises(PolicyError) as err:
        Policy.from_dict({**CHAT, **change})
    assert str(err.value).startswith(message), str(err.value)


def test_latency_is_lower_is_better_and_needs_no_direction() -> None:
    policy = Policy.from_dict({**CHAT, "gates": {"metrics": [{"name": "latency_seconds_p95", "threshold": 2.0}]}})
    assert not policy.gates.metrics[0].higher_is_better


# -- the judge: AI-assisted metrics (docs/llmops.md) ------------------------------------------------------------
JUDGED: dict[str, Any] = {**CHAT, "evaluation": {**CHAT["evaluation"],
                                                 "judge": {"metrics": ["relevance", "groundedness"]}}}


def test_a_chat_policy_may_ask_the_judge_for_any_of_its_metrics_and_gate_on_them_higher_is_better() -> None:
    policy = Policy.from_dict({**JUDGED, "gates": {"metrics": [
        {"name": "relevance", "threshold": 3.5, "max_regression": 0.25}, {"name": "groundedness", "threshold": 4}]}})

    assert policy.evaluation.judge is not None and policy.evaluation.judge.metrics == ("relevance", "groundedness")
    assert [(g.name, g.higher_is_better) for g in policy.gates.metrics] == [("relevance", True),
                                                                           ("groundedness", True)]
    assert Policy.from_dict(CHAT).evaluation.judge is None  # off unless the section is given
    assert Policy.from_dict(CHAT).to_dict()["evaluation"]["judge"] is None


@pytest.mark.parametrize(("judge", "message"), [
    ({"metrics": []}, "evaluation.judge.metrics: name at least one of relevance, coherence, groundedness"),
    ({"metrics": ["fluency"]}, "evaluation.judge.metrics.0: Input should be 'relevance', 'coherence' or "
                               "'groundedness' (got 'fluency')"),
    ({"metrics": ["coherence", "coherence"]}, "evaluation.judge.metrics: each metric once: coherence appears"),
    ({}, "evaluation.judge.metrics: Field required"),
    ({"metrics": ["relevance"], "deployment": "gpt-4o"}, "evaluation.judge.deployment: Extra inputs are not "
                                                         "permitted"),
], ids=["empty", "unknown", "twice", "missing", "deployment-is-a-setting"])
def test_a_judge_section_that_is_not_one_is_refused_naming_the_field(judge: dict[str, Any], message: str) -> None:
    with pytest.raises(PolicyError) as err:
        Policy.from_dict({**CHAT, "evaluation": {**CHAT["evaluation"], "judge": judge}})
    assert str(err.value).startswith(message), str(err.value)


def test_a_gate_on_a_judge_metric_the_policy_does_not_ask_for_is_refused() -> None:
    with pytest.raises(PolicyError) as err:
        Policy.from_dict({**JUDGED, "gates": {"metrics": [{"name": "coherence", "threshold": 3}]}})
    assert str(err.value) == "gates.metrics: coherence is scored by the judge: list it in evaluation.judge.metrics"
    with pytest.raises(PolicyError, match="list it in evaluation.judge.metrics"):
        Policy.from_dict({**CHAT, "gates": {"metrics": [{"name": "relevance", "threshold": 3}]}})


def test_a_judge_is_for_chat_models_only() -> None:
    with pytest.raises(PolicyError) as err:
        Policy.from_dict({"model": "credit", "label": "y", "evaluation": {"judge": {"metrics": ["relevance"]}}})
    assert str(err.value) == ("evaluation.judge: a judge scores a chat model's answers (evaluation.model_type: chat), "
                              "not a classifier's predictions")


def test_the_policys_judge_metrics_reach_the_evaluation_request() -> None:
    from mlops.ports import JobStatus
    from mlops.retrain import evaluation_request

    job = JobStatus("faq-bot-1", "succeeded", model_uri="runs:/1/model")
    assert evaluation_request(Policy.from_dict(JUDGED), job, None).judge_metrics == ["relevance", "groundedness"]
    assert evaluation_request(Policy.from_dict(CHAT), job, None).judge_metrics == []
