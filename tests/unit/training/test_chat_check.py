"""The chat data check job (training/chat/check.py): token counts, and PII blocked, masked or allowed, with counts
and line numbers in the report and never a value. One run as the job runs (a process), the others in-process."""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[3]
CHECK = ROOT / "training" / "chat" / "check.py"

EMAIL, PHONE, CARD = "jane.doe@example.com", "+1 212-555-0199", "4111 1111 1111 1111"
VALUES = (EMAIL, PHONE, CARD, "jane.doe", "555-0199", "4111")


def _example(question: str, answer: str, **assistant: Any) -> dict[str, Any]:
    return {"messages": [{"role": "system", "content": "You answer support tickets."},
                         {"role": "user", "content": question},
                         {"role": "assistant", "content": answer, **assistant}]}


def _jsonl(*examples: dict[str, Any]) -> bytes:
    return "".join(json.dumps(e) + "\n" for e in examples).encode()


CLEAN = [_example("How do I reset my password?", "Use the reset link on the sign-in page."),
         _example("Where is my invoice?", "Invoices are under Billing, then History.", weight=1)]
WITH_PII = _jsonl(
    CLEAN[0],
    _example(f"Write to me at {EMAIL} please.", f"We will write to {EMAIL} today."),  # line 2
    CLEAN[1],
    _example(f"Call me on {PHONE}, my card is {CARD}.", "We never take card numbers by phone."))  # line 4


@pytest.fixture(scope="module")
def tracking(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One MLflow store for the module's runs (creating one costs seconds)."""
    uri = f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        patch.delenv("MLFLOW_RUN_ID", raising=False)
        yield uri


def _run_in_process(tmp_path: Path, content: bytes, *args: str) -> tuple[dict[str, Any], Path]:
    from training.chat import check

    (tmp_path / "landed.jsonl").write_bytes(content)
    code = check.main(["--data", str(tmp_path / "landed.jsonl"), "--report", str(tmp_path / "report"),
                       "--out_data", str(tmp_path / "data"), *args])
    assert code == 0
    return json.loads((tmp_path / "report" / "report.json").read_text()), tmp_path / "data" / "train.jsonl"


def _assert_no_values(text: str) -> None:
    for value in VALUES:
        assert value not in text


def test_pii_blocked_fails_the_check_with_counts_and_lines_writes_no_data_and_exits_0(tmp_path: Path,
                                                                                        tracking: str) -> None:
    (tmp_path / "landed.jsonl").write_bytes(WITH_PII)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MLFLOW_TRACKING_URI": tracking}
    done = subprocess.run([sys.executable, str(CHECK), "--data", str(tmp_path / "landed.jsonl"), "--pii", "block",
                           "--max_tokens", "0", "--report", str(tmp_path / "report"),
                           "--out_data", str(tmp_path / "data")],
                          cwd=CHECK.parent, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    text = (tmp_path / "report" / "report.json").read_text()
    report = json.loads(text)
    assert report["passed"] is False
    assert report["problems"] == ["PII found: 2 EMAIL_ADDRESS, 1 CREDIT_CARD, 1 PHONE_NUMBER on lines 2, 4 "
                                  "(data.pii is block)"]
    assert report["pii"]["action"] == "blocked"
    assert report["pii"]["entities"] == {"EMAIL_ADDRESS": 2, "CREDIT_CARD": 1, "PHONE_NUMBER": 1}
    assert report["pii"]["lines"] == [2, 4]
    assert report["data_sha256"] is None
    assert not (tmp_path / "data" / "train.jsonl").exists()
    assert report["examples"] == 4
    assert report["tokens"]["limit"] == 8192  # 0: SmolLM2's context length
    assert 0 < report["tokens"]["max"] <= report["tokens"]["total"]
    assert "chat data check: failed, 4 examples" in done.stdout
    _assert_no_values(text)
    _assert_no_values(done.stdout + done.stderr)


def test_pii_masked_writes_placeholders_and_no_original_value(tmp_path: Path, tracking: str) -> None:
    report, train = _run_in_process(tmp_path, WITH_PII, "--pii", "mask")
    assert report["passed"] is True
    assert report["pii"] | {"scanned": None} == {
        "action": "masked", "policy": "mask", "entities": {"EMAIL_ADDRESS": 2, "CREDIT_CARD": 1, "PHONE_NUMBER": 1},
        "lines": [2, 4], "scanned": None, "threshold": 0.4}
    written = train.read_bytes()
    assert report["data_sha256"] == hashlib.sha256(written).hexdigest()
    _assert_no_values(written.decode())
    _assert_no_values(json.dumps(report))
    rows = [json.loads(line) for line in written.decode().splitlines()]
    assert rows[0] == CLEAN[0] and rows[2] == CLEAN[1]  # untouched examples stay as they were, weight included
    assert rows[1]["messages"][1]["content"] == "Write to me at <EMAIL_ADDRESS> please."
    assert rows[1]["messages"][2]["content"] == "We will write to <EMAIL_ADDRESS> today."
    assert rows[3]["messages"][1]["content"] == "Call me on <PHONE_NUMBER>, my card is <CREDIT_CARD>."


def test_pii_allowed_passes_with_counts_and_the_data_unchanged(tmp_path: Path, tracking: str) -> None:
    report, train = _run_in_process(tmp_path, WITH_PII, "--pii", "allow", "--entities", "email_address")
    assert report["passed"] is True
    assert report["pii"]["action"] == "allowed"
    assert report["pii"]["entities"] == {"EMAIL_ADDRESS": 2}  # only what --entities asked for
    assert report["pii"]["lines"] == [2]
    assert train.read_bytes() == WITH_PII
    assert report["data_sha256"] == hashlib.sha256(WITH_PII).hexdigest()
    _assert_no_values(json.dumps(report))


def test_an_example_over_max_tokens_is_named_by_line_and_count(tmp_path: Path, tracking: str) -> None:
    long = _example("Tell me everything. " * 40, "Here is everything. " * 40)
    report, train = _run_in_process(tmp_path, _jsonl(CLEAN[0], long, CLEAN[1]), "--max_tokens", "100")
    assert report["passed"] is False
    assert report["tokens"]["limit"] == 100
    (problem,) = report["problems"]
    match = re.fullmatch(r"line 2: (\d+) tokens, over the limit of 100", problem)
    assert match and int(match.group(1)) == report["tokens"]["max"] > 100
    assert report["pii"]["action"] == "none found"
    assert train.exists()  # only PII blocks the data; the verdict fails the run


def test_a_clean_file_passes_and_is_written_as_it_landed(tmp_path: Path, tracking: str) -> None:
    content = _jsonl(*CLEAN)
    report, train = _run_in_process(tmp_path, content)
    assert report["passed"] is True and report["problems"] == []
    assert report["pii"] == {"action": "none found", "policy": "block", "entities": {}, "lines": [],
                             "scanned": ["EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "IBAN_CODE", "IP_ADDRESS",
                                         "US_SSN"], "threshold": 0.4}
    tokens = report["tokens"]
    assert tokens["limit"] == 8192 and tokens["mean"] == tokens["total"] / 2 and tokens["max"] < tokens["total"]
    assert train.read_bytes() == content


def test_an_entity_without_an_offline_recognizer_is_refused_by_name(tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    from training.chat import check

    with pytest.raises(SystemExit) as exc:
        check.main(["--data", "x", "--report", str(tmp_path), "--out_data", str(tmp_path),
                    "--entities", "EMAIL_ADDRESS,PERSON"])
    assert exc.value.code == 2
    assert "PERSON not supported offline" in capsys.readouterr().err


def test_the_scanner_finds_counts_and_masks_without_touching_the_network(monkeypatch: pytest.MonkeyPatch) -> None:
    from training.chat import pii

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the PII scanner tried the network")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    scanner = pii.PiiScanner(pii.DEFAULT_ENTITIES)  # a new one: its email recognizer validates domains now
    texts = [f"mail {EMAIL} or jim@corp.co.uk", "IBAN DE89 3704 0044 0532 0130 00 from 10.0.0.7, SSN 536-22-1874",
             "order 123456789 on 2024-01-15 at shop.example.com/help", "bad@localhost"]
    assert scanner.scan(texts) == {"EMAIL_ADDRESS": 2, "IBAN_CODE": 1, "IP_ADDRESS": 1, "US_SSN": 1}
    assert scanner.mask(texts[1]) == "IBAN <IBAN_CODE> from <IP_ADDRESS>, SSN <US_SSN>"
    assert pii.mask("no personal data here") == "no personal data here"
    # an email's domain is also a URL: one finding, the longer one
    assert pii.scan([EMAIL], ("EMAIL_ADDRESS", "URL")) == {"EMAIL_ADDRESS": 1}


def test_the_job_yaml_loads_and_binds_both_outputs() -> None:
    from adapters.jobs.spec import bind_inputs, load_spec, resolve_command

    spec = load_spec(CHECK.parent / "check_job.yaml", contract=False)  # azure.ai.ml's load_job validates it
    inputs = bind_inputs(spec, {}, {"data": "/in/landed.jsonl", "pii": "mask", "max_tokens": 0})
    command = resolve_command(spec, inputs, {"report": "/out/report", "data": "/out/data"})
    assert command == ("python check.py --data /in/landed.jsonl --pii mask --max_tokens 0 --entities "
                       "EMAIL_ADDRESS,PHONE_NUMBER,CREDIT_CARD,IBAN_CODE,IP_ADDRESS,US_SSN --report /out/report "
                       "--out_data /out/data")
