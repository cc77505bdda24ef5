"""The local platform's prompt registry: a chat model's prompt versions in MLflow's prompt registry (SQLite in the
test's folder), with aliases, read back as PromptVersion; two platforms in one process keep to their own stores."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from echo_chat import save_echo_model

from adapters.local import LocalPlatform
from mlops.errors import NotFoundError
from mlops.ports import prompt_name

BRIEF = [{"role": "system", "content": "Answer in one sentence."}, {"role": "user", "content": "Q: {{question}}"}]
WARM = [{"role": "system", "content": "You are the friendly Contoso help desk."},
        {"role": "user", "content": "{{question}}"}]


@pytest.fixture
def platform(tmp_path: Path) -> LocalPlatform:
    return LocalPlatform(tmp_path / "mlops")


def test_registered_prompts_read_back_by_version_with_message_tags_and_template(platform: LocalPlatform) -> None:
    first = platform.register_prompt("faq-bot", BRIEF, "the first prompt", {"author": "lead"})
    second = platform.register_prompt("faq-bot", WARM, "warmer", {})

    assert (first.name, first.version, second.version) == (prompt_name("faq-bot"), "1", "2")
    got = platform.get_prompt("faq-bot", version="1")
    assert got is not None
    assert (got.template, got.message, got.tags, got.aliases) == (BRIEF, "the first prompt", {"author": "lead"}, [])
    assert got.created_at
    assert [(p.version, p.template) for p in platform.list_prompts("faq-bot")] == [("1", BRIEF), ("2", WARM)]
    latest = platform.get_prompt("faq-bot")
    assert latest is not None and latest.version == "2"


def test_an_alias_points_at_one_version_and_moves(platform: LocalPlatform) -> None:
    platform.register_prompt("faq-bot", BRIEF, "one", {})
    platform.register_prompt("faq-bot", WARM, "two", {})

    assert platform.get_prompt("faq-bot", alias="champion") is None  # unset
    platform.set_prompt_alias("faq-bot", "champion", "1")
    champion = platform.get_prompt("faq-bot", alias="champion")
    assert champion is not None and (champion.version, champion.aliases) == ("1", ["champion"])

    platform.set_prompt_alias("faq-bot", "champion", "2")
    platform.set_prompt_alias("faq-bot", "canary", "2")
    champion = platform.get_prompt("faq-bot", alias="champion")
    assert champion is not None and champion.template == WARM
    assert {p.version: p.aliases for p in platform.list_prompts("faq-bot")} == {"1": [], "2": ["canary", "champion"]}


def test_a_model_without_prompts_has_none_and_an_unknown_version_is_refused(platform: LocalPlatform) -> None:
    assert platform.list_prompts("faq-bot") == []
    assert platform.get_prompt("faq-bot") is None
    assert platform.get_prompt("faq-bot", version="1") is None
    assert platform.get_prompt("faq-bot", alias="champion") is None
    platform.register_prompt("faq-bot", BRIEF, "one", {})

    assert platform.get_prompt("faq-bot", version="7") is None
    with pytest.raises(NotFoundError, match=r"faq-bot-prompt v7"):
        platform.set_prompt_alias("faq-bot", "champion", "7")
    assert platform.get_prompt("faq-bot", alias="champion") is None  # nothing changed


def test_two_platforms_in_one_process_keep_their_prompts_apart(tmp_path: Path) -> None:
    one, two = LocalPlatform(tmp_path / "one"), LocalPlatform(tmp_path / "two")

    one.register_prompt("faq-bot", BRIEF, "one's", {})
    two.register_prompt("faq-bot", WARM, "two's", {})
    two.register_prompt("faq-bot", BRIEF, "two's second", {})

    assert [p.message for p in one.list_prompts("faq-bot")] == ["one's"]
    assert [p.message for p in two.list_prompts("faq-bot")] == ["two's", "two's second"]


def test_a_chat_evaluation_answers_candidate_and_champion_through_their_prompts(tmp_path: Path) -> None:
    from mlops.ports import EvaluationRequest

    save_echo_model(tmp_path / "echo")
    (tmp_path / "eval.jsonl").write_text(json.dumps({"messages": [{"role": "system", "content": "Old."},
                                                                  {"role": "user", "content": "Hours?"}],
                                                     "reference": "9 to 5."}) + "\n")
    platform = LocalPlatform(tmp_path / "mlops", policy_dir=tmp_path)
    uri = str(tmp_path / "echo")

    status = platform.submit_evaluation(EvaluationRequest(
        model="faq-bot", training_job="faq-bot-prompt-2", candidate_uri=uri, candidate_run="", label="",
        champion_uri=uri, eval_set="eval.jsonl", max_new_tokens=4, candidate_prompt=json.dumps(WARM),
        champion_prompt=json.dumps(BRIEF), judge_metrics=["coherence"]))
    for _ in range(600):  # bounded: a minute
        if status.state not in ("queued", "running"):
            break
        time.sleep(0.1)
        status = platform.get_job(status.job_id)

    assert status.state == "succeeded", status.message
    answers = json.loads((platform.runner.folder(status.job_id) / "outputs" / "evaluation" / "answers.json")
                         .read_text())
    assert answers == [{"prompt": "Hours?", "reference": "9 to 5.",
                        "candidate": "You are the friendly Contoso help desk. | Hours?",
                        "champion": "Answer in one sentence. | Q: Hours?"}]
    assert set(status.scores) == {"candidate", "champion"}
    # no judge model on this platform: the metric the policy asked for is skipped, and the run is told why
    assert status.skipped == {"coherence": "no judge model is configured (MLOPS_JUDGE_ENDPOINT / "
                                           "MLOPS_JUDGE_DEPLOYMENT)"}
    assert platform.get_job(status.job_id).skipped == status.skipped  # as recorded, on every later poll
