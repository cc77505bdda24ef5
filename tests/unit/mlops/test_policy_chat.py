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
