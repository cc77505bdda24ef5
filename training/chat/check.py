"""The chat data check job: token counts against the base model's context, and a PII scan that blocks, masks
or allows, on landed chat examples the control plane has already format-checked (mlops/chatdata.py).

Writes ``<report>/report.json`` (the verdict: token figures, PII entity counts and line numbers, problems, the
written data's sha256; never a PII value) and, unless PII blocked it, ``<data>/train.jsonl``: the examples to
train on, masked (each finding replaced by ``<ENTITY_TYPE>``) when ``--pii mask``, byte for byte the landed file
otherwise. The job exits 0 whenever it wrote a report, passed or not: the report is the verdict, a crash is not.
Tokens are counted the way the fine-tune sees an example: ``apply_chat_template(messages)`` with the base
model's tokenizer (the template adds its default system prompt when an example has none).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

try:  # imported as part of the project (tests, the local stack)
    from training.chat import base, pii
except ModuleNotFoundError:  # run as a script from its code folder, the way Azure ML runs a job
    import base  # type: ignore[import-not-found,no-redef]
    import pii  # type: ignore[import-not-found,no-redef]

ACTIONS = ("block", "mask", "allow")
MAX_PROBLEMS = 20
MAX_LINES = 20  # line numbers with findings the report lists


@dataclass
class Example:
    """One landed example: its line number and its JSON object."""

    line: int
    data: dict[str, Any]

    @property
    def messages(self) -> list[dict[str, Any]]:
        """The example's messages."""
        return list(self.data["messages"])


@dataclass
class Outcome:
    """What the check found and what it would write."""

    report: dict[str, Any]
    data: bytes | None  # train.jsonl, or None when PII blocked it
    problems: list[str] = field(default_factory=list)


def read_examples(content: bytes) -> tuple[list[Example], list[str]]:
    """The examples of a JSONL file, and a problem for each line that is not one (the format check ran first,
    so there should be none)."""
    examples, problems = [], []
    for number, raw in enumerate(content.decode("utf-8-sig").split("\n"), start=1):
        if not raw.strip():
            continue
        try:
            data = json.loads(raw)
        except json.JSONDecodeError:
            data = None
        if not isinstance(data, dict) or not isinstance(data.get("messages"), list):
            problems.append(f"line {number}: not a chat example (the format check should have refused it)")
            continue
        examples.append(Example(number, data))
    return examples, problems


def scan_pii(examples: list[Example], scanner: pii.PiiScanner, masking: bool) -> tuple[Counter[str], list[int],
                                                                                        list[Example]]:
    """(entity counts, lines with findings, the examples masked when ``masking``, else as they were)."""
    counts: Counter[str] = Counter()
    lines: list[int] = []
    out: list[Example] = []
    for example in examples:
        found = False
        messages = []
        for message in example.messages:
            content = message.get("content") if isinstance(message, dict) else None
            if isinstance(content, str) and (spans := scanner.spans(content)):
                counts.update(s.entity_type for s in spans)
                found = True
                if masking:
                    message = {**message, "content": scanner.mask(content, spans)}
            messages.append(message)
        if found:
            lines.append(example.line)
        out.append(Example(example.line, {**example.data, "messages": messages}) if masking else example)
    return counts, lines, out


def count_tokens(examples: list[Example], tokenizer: Any) -> list[int]:
    """Each example's length in tokens, as the chat template renders it."""
    return [len(tokenizer.apply_chat_template([{"role": m["role"], "content": m["content"]} for m in e.messages],
                                              tokenize=True, return_dict=False)) for e in examples]


def _lines_text(lines: list[int]) -> str:
    shown = ", ".join(str(n) for n in lines[:MAX_LINES])
    return shown + (f" and {len(lines) - MAX_LINES} more" if len(lines) > MAX_LINES else "")


def check(content: bytes, action: str, max_tokens: int, entities: tuple[str, ...], tokenizer: Any,
          context_length: int, threshold: float = pii.DEFAULT_THRESHOLD) -> Outcome:
    """The verdict on ``content`` and the data to train on."""
    if action not in ACTIONS:
        raise ValueError(f"pii {action!r}: must be one of {', '.join(ACTIONS)}")
    if max_tokens < 0:
        raise ValueError(f"max_tokens {max_tokens}: must be 0 (the base model's context length) or more")
    examples, problems = read_examples(content)
    scanner = pii.scanner(entities, threshold)
    counts, lines, examples = scan_pii(examples, scanner, masking=action == "mask")
    ordered = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    if not counts:
        verdict = "none found"
    elif action == "block":
        verdict = "blocked"
        found = ", ".join(f"{n} {entity}" for entity, n in ordered)
        problems.insert(0, f"PII found: {found} on lines {_lines_text(lines)} (data.pii is block)")
    else:
        verdict = "masked" if action == "mask" else "allowed"
    limit = max_tokens or context_length
    tokens = count_tokens(examples, tokenizer)
    problems += [f"line {e.line}: {n} tokens, over the limit of {limit}"
                 for e, n in zip(examples, tokens, strict=True) if n > limit]
    if not examples:
        problems.append("no examples")
    if len(problems) > MAX_PROBLEMS:
        problems = problems[:MAX_PROBLEMS] + [f"... and {len(problems) - MAX_PROBLEMS} more"]
    if verdict == "blocked":
        data = None
    elif verdict == "masked":
        data = "".join(json.dumps(e.data, ensure_ascii=False) + "\n" for e in examples).encode()
    else:
        data = content
    report = {
        "passed": not problems,
        "examples": len(examples),
        "tokens": {"max": max(tokens, default=0), "mean": round(sum(tokens) / len(tokens), 1) if tokens else 0.0,
                   "total": sum(tokens), "limit": limit},
        "pii": {"action": verdict, "policy": action, "entities": dict(ordered), "lines": lines[:MAX_LINES],
                "scanned": list(entities), "threshold": threshold},
        "problems": problems,
        "data_sha256": hashlib.sha256(data).hexdigest() if data is not None else None,
    }
    return Outcome(report, data, problems)


def summary(report: dict[str, Any]) -> str:
    """One line for the job's log."""
    tokens, found = report["tokens"], report["pii"]
    entities = ", ".join(f"{n} {e}" for e, n in found["entities"].items()) or "none"
    return (f"chat data check: {'passed' if report['passed'] else 'failed'}, {report['examples']} examples, "
            f"tokens max {tokens['max']} mean {tokens['mean']} (limit {tokens['limit']}), PII {found['action']} "
            f"({entities}), {len(report['problems'])} problems")


def _log(report: dict[str, Any]) -> None:
    """The verdict's figures into the job's MLflow run (MLFLOW_RUN_ID, set by the runner)."""
    import mlflow

    logging.getLogger("mlflow").setLevel(logging.WARNING)
    with mlflow.start_run():
        mlflow.log_params({"pii": report["pii"]["policy"], "pii_entities": ",".join(report["pii"]["scanned"]),
                           "max_tokens": report["tokens"]["limit"]})
        mlflow.log_metrics({"passed": float(report["passed"]), "examples": report["examples"],
                            "tokens_max": report["tokens"]["max"], "tokens_mean": report["tokens"]["mean"],
                            "tokens_total": report["tokens"]["total"],
                            "pii_findings": sum(report["pii"]["entities"].values())})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="the landed JSONL file")
    parser.add_argument("--pii", choices=ACTIONS, default="block")
    parser.add_argument("--max_tokens", type=int, default=0, help="0: the base model's context length")
    parser.add_argument("--entities", default=",".join(pii.DEFAULT_ENTITIES))
    parser.add_argument("--report", required=True, help="folder for report.json")
    parser.add_argument("--out_data", required=True, help="folder for train.jsonl")
    args = parser.parse_args(argv)
    try:
        entities = pii.parse_entities(args.entities)
    except pii.PiiConfigError as exc:
        parser.error(str(exc))
    if args.max_tokens < 0:
        parser.error(f"--max_tokens {args.max_tokens}: must be 0 (the base model's context length) or more")
    tokenizer = base.load_tokenizer()
    outcome = check(Path(args.data).read_bytes(), args.pii, args.max_tokens, entities, tokenizer,
                    base.context_length() if args.max_tokens == 0 else args.max_tokens)
    report_dir, data_dir = Path(args.report), Path(args.out_data)
    report_dir.mkdir(parents=True, exist_ok=True)
    data_dir.mkdir(parents=True, exist_ok=True)
    if outcome.data is not None:
        (data_dir / "train.jsonl").write_bytes(outcome.data)
    else:  # blocked: nothing to train on, not even a copy a rerun left behind
        (data_dir / "train.jsonl").unlink(missing_ok=True)
    (report_dir / "report.json").write_text(json.dumps(outcome.report, indent=2))
    _log(outcome.report)
    print(summary(outcome.report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
