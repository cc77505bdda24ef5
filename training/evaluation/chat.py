"""The chat evaluation job: candidate and champion answer the same fixed evaluation set, scored against references.

The evaluation set is JSONL, one ``{"messages": [system?, user, ...], "reference": "the expected answer"}`` object
a line, with an optional ``"context"`` string (what the answer should be grounded in). Each model (an MLflow model
URI, loaded with ``mlflow.pyfunc.load_model``) answers every conversation greedily; per model the job computes

- ``f1_score``: token F1 after SQuAD normalisation (azure.ai.evaluation's F1ScoreEvaluator), mean over examples;
- ``rouge_f1_score``, ``rouge_precision``, ``rouge_recall``: ROUGE-L (RougeScoreEvaluator, RougeType.ROUGE_L), means;
- ``bleu_score``, ``chrf_score``: sacrebleu's corpus BLEU and chrF over the whole set, divided by 100 into [0, 1];
- ``exact_match``: the fraction equal to the reference after lowercasing and dropping punctuation and whitespace;
- ``latency_seconds_mean``, ``latency_seconds_p95``: per answer; ``output_words_mean``;
- with ``--judge_metrics`` and a judge (``--judge_endpoint``, ``--judge_deployment``, ``--judge_api_version``: an
  Azure OpenAI deployment), ``relevance``, ``coherence``, ``groundedness``: the judge's 1-5 scores, means (judge.py).
  ``groundedness`` needs every example's ``context``. Without a judge they are not computed, and scores.json says
  so under ``skipped`` with the reason.

With a prompt (``--candidate_prompt`` / ``--champion_prompt``: a JSON file holding a chat template, see
training/chat/model.py ``apply_prompt``), that model answers through it: the file's text goes to ``predict`` as the
``prompt`` param. A prompt release evaluates one model with two prompts this way.

``<evaluation>/scores.json`` holds ``{"candidate": {...}, "champion": {...}}`` (the champion when one is given) and
``"skipped": {metric: reason}`` when a metric asked for was not computed; ``<evaluation>/answers.json`` each
example's prompt, reference and answers (and, judged, each model's ``judge`` verdicts: score and reason). Metrics
are logged to the job's run as ``candidate_<metric>`` / ``champion_<metric>``.
Docs: https://learn.microsoft.com/azure/ai-foundry/how-to/develop/evaluate-sdk (textual similarity and AI-assisted
quality evaluators),
https://github.com/mjpost/sacrebleu (corpus_bleu, corpus_chrf).
"""

from __future__ import annotations

import argparse
import json
import logging
import string
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd

try:  # imported as part of the project (tests, the local stack)
    from training.evaluation import judge as judging
except ImportError:  # run as the job's code (Azure ML uploads this folder alone)
    import judge as judging  # type: ignore[import-not-found,no-redef]

METRICS = ("f1_score", "rouge_f1_score", "rouge_precision", "rouge_recall", "bleu_score", "chrf_score",
           "exact_match", "latency_seconds_mean", "latency_seconds_p95", "output_words_mean")
_log = logging.getLogger("evaluation.chat")


class EvalSetError(ValueError):
    """A line of the evaluation set is not an example: names the file and the line."""


def read_eval_set(path: str) -> list[dict[str, Any]]:
    """The examples of the evaluation set; EvalSetError names the first line that is not one."""
    examples = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path} line {number}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise EvalSetError(f"{where}: not JSON ({exc.msg})") from exc
        if not isinstance(row, dict) or not isinstance(row.get("reference"), str):
            raise EvalSetError(f"{where}: needs a string 'reference'")
        messages = row.get("messages")
        if not isinstance(messages, list) or not messages or not all(
                isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)
                for m in messages):
            raise EvalSetError(f"{where}: 'messages' must be a non-empty list of {{role, content}} objects")
        if not any(m["role"] == "user" for m in messages):
            raise EvalSetError(f"{where}: 'messages' has no user message")
        if "context" in row and not isinstance(row["context"], str):
            raise EvalSetError(f"{where}: 'context' must be a string")
        examples.append({"messages": messages, "reference": row["reference"], "line": number,
                         **({"context": row["context"]} if "context" in row else {})})
    if not examples:
        raise EvalSetError(f"{path}: no examples")
    return examples


def similarity_scorers() -> tuple[Callable[[str, str], float], Callable[[str, str], tuple[float, float, float]]]:
    """F1 and ROUGE-L (f1, precision, recall) scorers of (response, reference), by azure-ai-evaluation's
    F1ScoreEvaluator and RougeScoreEvaluator (installed --no-deps: requirements-llm.txt says why)."""
    from azure.ai.evaluation import F1ScoreEvaluator, RougeScoreEvaluator, RougeType

    f1_eval, rouge_eval = F1ScoreEvaluator(), RougeScoreEvaluator(rouge_type=RougeType.ROUGE_L)

    def f1(response: str, reference: str) -> float:
        return float(f1_eval(response=response, ground_truth=reference)["f1_score"])

    def rouge(response: str, reference: str) -> tuple[float, float, float]:
        result: dict[str, Any] = dict(rouge_eval(response=response, ground_truth=reference))
        values = result.get("rouge_properties") or result  # 1.18 nests them; earlier versions did not
        return (float(values["rouge_f1_score"]), float(values["rouge_precision"]), float(values["rouge_recall"]))

    return f1, rouge


def last_question(example: dict[str, Any]) -> str:
    """The conversation's last user message: what the answer answers."""
    return str(next(m["content"] for m in reversed(example["messages"]) if m["role"] == "user"))


def check_contexts(examples: list[dict[str, Any]], path: str) -> None:
    """Groundedness judges an answer against its example's context: EvalSetError names the first line without one."""
    for example in examples:
        if not str(example.get("context") or "").strip():
            raise EvalSetError(f"{path} line {example['line']}: groundedness is asked (evaluation.judge.metrics), "
                               "so every example needs a 'context' string")


def _exact(text: str) -> str:
    """What exact match compares: lowercase, no punctuation, no whitespace."""
    return "".join(ch for ch in text.lower() if ch not in set(string.punctuation) and not ch.isspace())


def _p95(values: list[float]) -> float:
    """The 95th percentile, linearly interpolated (numpy's default)."""
    ordered = sorted(values)
    rank = 0.95 * (len(ordered) - 1)
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def read_prompt(path: str) -> str:
    """The JSON text of the prompt template in the file at ``path`` ("none": ""); SystemExit names what is wrong."""
    if path == "none":
        return ""
    try:
        template = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise SystemExit(f"prompt {path}: {exc}") from exc
    if not isinstance(template, list) or not template or not all(isinstance(m, dict) for m in template):
        raise SystemExit(f"prompt {path}: a template must be a non-empty list of {{role, content}} messages")
    return json.dumps(template)  # the model checks the messages themselves


def takes_prompt(model: Any) -> bool:
    """The model declares a ``prompt`` param (MLflow drops params a model does not declare, silently)."""
    schema = model.metadata.get_params_schema() if getattr(model, "metadata", None) is not None else None
    return schema is not None and any(p.name == "prompt" for p in schema.params)


def answer(model: Any, examples: list[dict[str, Any]], max_new_tokens: int,
           prompt: str = "") -> tuple[list[str], list[float]]:
    """Each example's answer and its latency in seconds (one conversation per call, so latency is per answer);
    with ``prompt`` (a template's JSON) the model answers through it."""
    params: dict[str, Any] = {"max_new_tokens": max_new_tokens} | ({"prompt": prompt} if prompt else {})
    answers, latencies = [], []
    for example in examples:
        started = time.perf_counter()
        out = model.predict(pd.DataFrame({"messages": [example["messages"]]}), params=params)
        latencies.append(time.perf_counter() - started)
        answers.append(str(list(out)[0]))
    return answers, latencies


def score(answers: list[str], latencies: list[float], references: list[str]) -> dict[str, float]:
    """The metrics of one model's answers against the references."""
    import sacrebleu

    f1, rouge = similarity_scorers()
    rouges = [rouge(a, r) for a, r in zip(answers, references, strict=True)]
    n = len(answers)
    return {
        "f1_score": sum(f1(a, r) for a, r in zip(answers, references, strict=True)) / n,
        "rouge_f1_score": sum(r[0] for r in rouges) / n,
        "rouge_precision": sum(r[1] for r in rouges) / n,
        "rouge_recall": sum(r[2] for r in rouges) / n,
        "bleu_score": float(sacrebleu.corpus_bleu(answers, [references]).score) / 100,
        "chrf_score": float(sacrebleu.corpus_chrf(answers, [references]).score) / 100,
        "exact_match": sum(_exact(a) == _exact(r) for a, r in zip(answers, references, strict=True)) / n,
        "latency_seconds_mean": sum(latencies) / n,
        "latency_seconds_p95": _p95(latencies),
        "output_words_mean": sum(len(a.split()) for a in answers) / n,
    }


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    parser = argparse.ArgumentParser()
    for arg in ("eval_set", "candidate", "evaluation"):
        parser.add_argument(f"--{arg}", required=True)
    parser.add_argument("--champion", default="none")
    parser.add_argument("--candidate_prompt", default="none")
    parser.add_argument("--champion_prompt", default="none")
    parser.add_argument("--max_new_tokens", type=int, default=48)
    for arg in ("judge_endpoint", "judge_deployment", "judge_api_version", "judge_metrics"):
        parser.add_argument(f"--{arg}", default=judging.NONE)
    args = parser.parse_args()
    if args.max_new_tokens < 1:
        raise SystemExit(f"--max_new_tokens must be at least 1, not {args.max_new_tokens}")
    judge_metrics = judging.parse_metrics(args.judge_metrics)
    judge = judging.judge_config(args.judge_endpoint, args.judge_deployment, args.judge_api_version)
    try:
        examples = read_eval_set(args.eval_set)
        if "groundedness" in judge_metrics:  # with a judge or not: the set must fit the policy wherever it runs
            check_contexts(examples, args.eval_set)
    except (EvalSetError, OSError) as exc:
        raise SystemExit(f"evaluation set: {exc}") from exc
    references = [e["reference"] for e in examples]
    models = {"candidate": args.candidate} | ({"champion": args.champion} if args.champion != "none" else {})
    prompts = {"candidate": read_prompt(args.candidate_prompt), "champion": read_prompt(args.champion_prompt)}
    by_metric = judging.scorers(judge, judge_metrics, judging.default_credential()) if judge and judge_metrics else {}
    scores: dict[str, dict[str, float]] = {}
    answers: dict[str, list[str]] = {}
    verdicts: dict[str, list[dict[str, Any]]] = {}
    with mlflow.start_run():  # the job's run (MLFLOW_RUN_ID)
        for who, uri in models.items():
            started = time.perf_counter()
            model = mlflow.pyfunc.load_model(uri)
            print(f"{who}: loaded {uri} in {time.perf_counter() - started:.1f} s", flush=True)
            if prompts[who] and not takes_prompt(model):
                raise SystemExit(f"{who} {uri}: the model declares no 'prompt' param, so it cannot answer through "
                                 f"--{who}_prompt")
            answers[who], latencies = answer(model, examples, args.max_new_tokens, prompts[who])
            scores[who] = score(answers[who], latencies, references)
            del model  # one model in memory at a time
            if by_metric:
                try:
                    means, verdicts[who] = judging.judge_answers(
                        by_metric, [last_question(e) for e in examples], answers[who],
                        [str(e.get("context") or "") for e in examples])
                except judging.JudgeError as exc:
                    raise SystemExit(f"{who}: the judge ({args.judge_deployment} at {args.judge_endpoint}) failed: "
                                     f"{exc}") from exc
                scores[who].update(means)
                print(f"{who}: judged {', '.join(f'{m} {v:.2f}' for m, v in means.items())}", flush=True)
        mlflow.log_metrics({f"{who}_{k}": v for who, metrics in scores.items() for k, v in metrics.items()})
    skipped = {metric: judging.NO_JUDGE for metric in judge_metrics} if judge is None else {}
    out = Path(args.evaluation)
    out.mkdir(parents=True, exist_ok=True)
    (out / "scores.json").write_text(json.dumps({**scores, **({"skipped": skipped} if skipped else {})}, indent=2))
    rows = [{"prompt": last_question(e), "reference": e["reference"], **{who: answers[who][i] for who in models},
             **({"judge": {who: verdicts[who][i] for who in verdicts}} if verdicts else {})}
            for i, e in enumerate(examples)]
    (out / "answers.json").write_text(json.dumps(rows, indent=2))
    print("scores:", json.dumps(scores), *(["skipped:", json.dumps(skipped)] if skipped else []))


if __name__ == "__main__":
    main()
