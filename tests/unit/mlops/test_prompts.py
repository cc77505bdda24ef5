"""mlops.prompts: what a prompt template must look like, and what a prompt's model version records."""

from __future__ import annotations

import pytest

from mlops.errors import EventError
from mlops.ports import ModelVersion, PromptVersion
from mlops.prompts import PROMPT_NAME_TAG, PROMPT_VERSION_TAG, parse_template, prompt_tags

GOOD = [{"role": "system", "content": "Answer in one sentence."}, {"role": "user", "content": "Q: {{question}}"}]


def test_a_system_and_user_template_is_taken_as_it_is() -> None:
    assert parse_template(GOOD) == GOOD
    assert parse_template(GOOD[:1]) == GOOD[:1]  # a system prompt alone: the question passes as it is


@pytest.mark.parametrize(("template", "message"), [
    ([], "template: must be a non-empty list"),
    ("be nice", "template: must be a non-empty list"),
    ([{"role": "bot", "content": "x"}], "template[0].role: must be one of system, user, assistant, got 'bot'"),
    ([{"role": "system", "content": "  "}], "template[0].content: must be non-empty text"),
    ([{"role": "system", "content": "x", "name": "n"}], "template[0]: must be an object with only"),
    ([{"role": "user", "content": "no placeholder"}], "template: a user message must hold {{question}}"),
    ([{"role": "system", "content": "x" * 20_001}], "template: longer than 20000 characters"),
])
def test_a_template_that_does_not_fit_is_refused_naming_the_message(template: object, message: str) -> None:
    with pytest.raises(EventError) as err:
        parse_template(template)
    assert str(err.value).startswith(message), str(err.value)


def test_a_prompts_version_keeps_the_weights_lineage_and_names_its_prompt() -> None:
    champion = ModelVersion("faq-bot", "2", "file:///m", tags={"data_sha256": "abc", "release": "promoted",
                                                                "pii_action": "none found"})
    tags = prompt_tags(champion, PromptVersion("faq-bot-prompt", "3", GOOD), "prompt-faq-bot-1", "hash",
                       {"rouge_f1_score": 0.5}, extra={"eval_set_sha256": "e"})
    assert tags[PROMPT_NAME_TAG] == "faq-bot-prompt" and tags[PROMPT_VERSION_TAG] == "3"
    assert tags["weights_from_version"] == "2" and tags["data_sha256"] == "abc" and tags["eval_set_sha256"] == "e"
    assert "release" not in tags  # the champion's release state is its own
    assert tags["metric.rouge_f1_score"] == "0.500000"
