"""The format check of landed chat JSONL: every rule, each problem naming its line."""

from __future__ import annotations

import json
from typing import Any

from mlops.chatdata import ChatDataReport, check_chat_data


def _line(question: str = "What is the capital of France?", answer: str = "Paris.", **extra: Any) -> str:
    messages = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": question},
                {"role": "assistant", "content": answer}]
    return json.dumps({"messages": messages, **extra})


def _file(*lines: str) -> bytes:
    return ("\n".join(lines) + "\n").encode()


def _good(n: int) -> list[str]:
    return [_line(f"question {i}?", f"answer {i}.") for i in range(n)]


def test_a_good_file_passes_with_its_counts() -> None:
    report = check_chat_data(_file(*_good(3)), min_examples=3)
    assert report == ChatDataReport(True, 3, [], 0, {"system": 3, "user": 3, "assistant": 3})


def test_a_multi_turn_example_with_weights_passes() -> None:
    messages = [{"role": "user", "content": "Capital of France?"},
                {"role": "assistant", "content": "Paris", "weight": 0},
                {"role": "user", "content": "More sarcastic?"},
                {"role": "assistant", "content": "Paris, as if you didn't know.", "weight": 1}]
    report = check_chat_data(_file(json.dumps({"messages": messages})), min_examples=1)
    assert report.passed, report.problems
    assert report.roles == {"user": 2, "assistant": 2}


def test_a_byte_order_mark_crlf_and_blank_lines_are_accepted() -> None:
    content = b"\xef\xbb\xbf" + "\r\n\r\n".join(_good(2)).encode() + b"\r\n\r\n"
    report = check_chat_data(content, min_examples=2)
    assert report.passed, report.problems
    assert report.examples == 2


def test_an_empty_file_is_one_clear_problem() -> None:
    for content in (b"", b"\n  \n", b"\xef\xbb\xbf"):
        report = check_chat_data(content, min_examples=1)
        assert not report.passed
        assert report.problems == ["empty file: no examples (one JSON object per line)"]


def test_invalid_json_names_its_line_and_column() -> None:
    report = check_chat_data(_file(*_good(2), "", "not json"), min_examples=1)
    assert report.problems == ["line 4: not valid JSON (Expecting value at column 1)"]
    assert report.examples == 2


def test_a_line_that_is_not_an_object_or_lacks_messages() -> None:
    report = check_chat_data(_file("[1, 2]", '{"messages": []}', '{"prompt": "x", "completion": "y"}'),
                             min_examples=0)
    assert report.problems == [
        "line 1: must be a JSON object with a messages list, not an array",
        "line 2: messages must be a non-empty list of messages",
        "line 3: unknown key 'prompt' (an example holds only messages)",
        "line 3: unknown key 'completion' (an example holds only messages)",
        "line 3: messages must be a non-empty list of messages"]


def test_unknown_top_level_keys_are_refused() -> None:
    report = check_chat_data(_file(_line(tools=[])), min_examples=0)
    assert report.problems == ["line 1: unknown key 'tools' (an example holds only messages)"]


def test_a_role_outside_system_user_assistant_names_the_message() -> None:
    messages = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"},
                {"role": "bot", "content": "x"}, {"content": "no role"}]
    report = check_chat_data(_file(*_good(6), json.dumps({"messages": messages})), min_examples=1)
    assert report.problems == ["line 7: messages[2].role 'bot' is not one of system, user, assistant",
                               "line 7: messages[3]: no role"]


def test_content_must_be_a_non_empty_string_and_messages_objects() -> None:
    messages = [{"role": "user", "content": "  "}, {"role": "assistant", "content": ["parts"]}, "text",
                {"role": "assistant", "content": "ok", "name": "x"}]
    report = check_chat_data(_file(json.dumps({"messages": messages})), min_examples=0)
    assert report.problems == [
        "line 1: messages[0].content must be a non-empty string",
        "line 1: messages[1].content must be a non-empty string",
        "line 1: messages[2] must be an object with role and content, not a string",
        "line 1: messages[3] has unknown key 'name' (a message holds role, content and, on assistant messages, "
        "weight)"]


def test_an_example_needs_a_user_and_an_assistant_message() -> None:
    only_user = {"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "q"}]}
    only_assistant = {"messages": [{"role": "assistant", "content": "a"}]}
    report = check_chat_data(_file(json.dumps(only_user), json.dumps(only_assistant)), min_examples=0)
    assert report.problems == [
        "line 1: no assistant message: an example needs at least one user and one assistant message",
        "line 2: no user message: an example needs at least one user and one assistant message"]


def test_the_last_message_must_be_the_assistants() -> None:
    messages = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"},
                {"role": "user", "content": "and?"}]
    report = check_chat_data(_file(*_good(8), json.dumps({"messages": messages})), min_examples=1)
    assert report.problems == ["line 9: the last message must be the assistant's (the answer to learn)"]


def test_weight_is_0_or_1_and_on_assistant_messages_only() -> None:
    def example(user: dict[str, Any], assistant: dict[str, Any]) -> str:
        return json.dumps({"messages": [{"role": "user", "content": "q", **user},
                                        {"role": "assistant", "content": "a", **assistant}]})

    report = check_chat_data(_file(example({"weight": 1}, {}), example({}, {"weight": 0.5}),
                                   example({}, {"weight": True}), example({}, {"weight": 0})), min_examples=0)
    assert report.problems == ["line 1: messages[0].weight is allowed on assistant messages only",
                               "line 2: messages[1].weight 0.5 must be 0 or 1",
                               "line 3: messages[1].weight True must be 0 or 1",
                               "line 4: every assistant message has weight 0: nothing to learn"]


def test_a_duplicate_names_the_line_it_repeats_and_is_counted_once() -> None:
    first, second = _good(2)
    report = check_chat_data(_file(first, second, "", first), min_examples=1)
    assert report.problems == ["line 4: duplicate of line 1"]
    assert (report.duplicates, report.examples) == (1, 2)
    # the same messages with keys in another order are the same example
    shuffled = json.dumps({"messages": [dict(reversed(m.items())) for m in json.loads(first)["messages"]]})
    assert check_chat_data(_file(first, shuffled), 0).problems == ["line 2: duplicate of line 1"]


def test_too_few_valid_examples_names_both_numbers_first() -> None:
    report = check_chat_data(_file(*_good(3), "{"), min_examples=10)
    assert report.problems[0] == "3 valid examples, at least 10 required"
    assert report.problems[1].startswith("line 4: not valid JSON")
    assert not report.passed


def test_a_line_that_is_not_utf8_names_its_line_and_byte_offset() -> None:
    good = _file(*_good(2))
    content = good + b'{"messages": "caf\xe9"}\n'
    offset = len(good) + len(b'{"messages": "caf')
    report = check_chat_data(content, min_examples=1)
    assert report.problems == [f"line 3: not UTF-8 text (byte 0xe9 at byte offset {offset} of the file)"]
    assert report.examples == 2


def test_the_problem_list_is_capped_with_a_final_count() -> None:
    report = check_chat_data(_file(*["nope"] * 30), min_examples=0, max_problems=5)
    assert len(report.problems) == 6
    assert report.problems[:2] == ["line 1: not valid JSON (Expecting value at column 1)",
                                   "line 2: not valid JSON (Expecting value at column 1)"]
    assert report.problems[-1] == "... and 25 more"


def test_the_report_round_trips_through_json() -> None:
    report = check_chat_data(_file(*_good(2), _good(1)[0]), min_examples=1)
    assert ChatDataReport.from_dict(json.loads(json.dumps(report.to_dict()))) == report
