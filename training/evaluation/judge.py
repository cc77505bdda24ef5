"""AI-assisted metrics of the chat evaluation job: an Azure OpenAI deployment judges each answer.

azure-ai-evaluation's RelevanceEvaluator, CoherenceEvaluator and GroundednessEvaluator each send the judge one chat
completion per answer (their prompty files ask for ``{"reason", "score" 1-5, "status"}`` JSON) and parse its reply;
the query is the conversation's last user message, the response the model's answer, and groundedness's context the
example's ``context``. Authentication is Entra ID, never a key: the evaluators take ``model_config`` (endpoint,
deployment, API version) and ``credential``, here azure.identity's DefaultAzureCredential, which on Azure ML compute
is the compute's managed identity (it needs "Cognitive Services OpenAI User" on the Azure OpenAI resource). The
evaluators retry throttling (429, honouring Retry-After) and 5xx themselves; whatever still fails ends the job with
the service's message (JudgeError). Without a judge, the metrics are skipped with the reason ``NO_JUDGE``.
Docs: https://learn.microsoft.com/azure/ai-foundry/how-to/develop/evaluate-sdk (AI-assisted quality evaluators).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

METRICS = ("relevance", "coherence", "groundedness")  # mlops.policy.JUDGE_METRICS: a job cannot import the app
NONE = "none"  # the job's inputs say "not given" so (chat_job.yaml)
NO_JUDGE = "no judge model is configured (MLOPS_JUDGE_ENDPOINT / MLOPS_JUDGE_DEPLOYMENT)"
LOWEST = 1.0  # the rubrics' lowest score: what an answer the judge cannot score (an empty one) counts as


class JudgeError(RuntimeError):
    """A judge call failed (HTTP error, throttling past the retries, no credential, an answer with no score)."""


@dataclass(frozen=True)
class JudgeConfig:
    """Where the judge is: the Azure OpenAI resource's endpoint, the deployment, the data-plane API version."""

    endpoint: str
    deployment: str
    api_version: str

    @property
    def model_config(self) -> dict[str, str]:
        """azure-ai-evaluation's AzureOpenAIModelConfiguration: no api_key, so the credential signs in."""
        return {"azure_endpoint": self.endpoint, "azure_deployment": self.deployment, "api_version": self.api_version}


def parse_metrics(text: str) -> tuple[str, ...]:
    """The metrics of ``--judge_metrics`` ("relevance,coherence"; "none": none); SystemExit names an unknown one."""
    if text.strip() in ("", NONE):
        return ()
    metrics = tuple(m.strip() for m in text.split(",") if m.strip())
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise SystemExit(f"--judge_metrics: {', '.join(unknown)} is not one of {', '.join(METRICS)}")
    return tuple(dict.fromkeys(metrics))


def judge_config(endpoint: str, deployment: str, api_version: str) -> JudgeConfig | None:
    """The judge the job was given, or None; SystemExit names what a half-given judge lacks."""
    given = {"--judge_endpoint": endpoint, "--judge_deployment": deployment, "--judge_api_version": api_version}
    present = {name for name, value in given.items() if value and value != NONE}
    if not present:
        return None
    if present != set(given):
        raise SystemExit(f"a judge needs {', '.join(sorted(set(given) - present))} too")
    return JudgeConfig(endpoint, deployment, api_version)


def default_credential() -> Any:
    """DefaultAzureCredential: the compute's managed identity on Azure ML, a developer's sign-in (az login) locally."""
    from azure.identity import DefaultAzureCredential

    return DefaultAzureCredential()


@dataclass(frozen=True)
class Verdict:
    """One answer's score on one metric, and the judge's reason."""

    score: float
    reason: str


Scorer = Callable[[str, str, str], Verdict]  # (query, response, context) -> the judge's verdict


def scorers(config: JudgeConfig, metrics: tuple[str, ...], credential: Any) -> dict[str, Scorer]:
    """One scorer per metric, each calling the judge through azure-ai-evaluation's evaluator for it."""
    from azure.ai.evaluation import CoherenceEvaluator, GroundednessEvaluator, RelevanceEvaluator

    kinds = {"relevance": RelevanceEvaluator, "coherence": CoherenceEvaluator, "groundedness": GroundednessEvaluator}
    return {metric: _scorer(metric, kinds[metric](config.model_config, credential=credential)) for metric in metrics}


def _scorer(metric: str, evaluator: Any) -> Scorer:
    from azure.core.exceptions import AzureError

    def score(query: str, response: str, context: str) -> Verdict:
        if not response.strip():  # the evaluators refuse an empty response; it answers nothing
            return Verdict(LOWEST, "an empty answer: nothing to judge, scored the lowest")
        inputs = {"query": query, "response": response} | ({"context": context} if metric == "groundedness" else {})
        try:
            result = dict(evaluator(**inputs))
        except AzureError as exc:  # azure-ai-evaluation's EvaluationException (the service's message) and
            raise JudgeError(getattr(exc, "message", None) or str(exc)) from exc  # azure.identity's sign-in errors
        except ValueError as exc:  # the judge's reply was not the JSON its prompt asks for
            raise JudgeError(f"the judge's reply could not be read ({exc})") from exc
        reason = str(result.get(f"{metric}_reason") or "")
        if result.get(f"{metric}_status") == "skipped":  # the judge declined (it found nothing to judge)
            return Verdict(LOWEST, reason or "the judge declined to score it")
        value = result.get(metric)
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise JudgeError(f"the judge's reply gave no {metric} score (reason: {reason or 'none'})")
        return Verdict(float(value), reason)

    return score


def judge_answers(by_metric: dict[str, Scorer], queries: list[str], answers: list[str],
                  contexts: list[str]) -> tuple[dict[str, float], list[dict[str, dict[str, Any]]]]:
    """Each metric's mean over the answers, and each answer's verdicts (metric -> score and reason);
    JudgeError says which metric and answer failed."""
    verdicts: list[dict[str, dict[str, Any]]] = [{} for _ in answers]
    for metric, score in by_metric.items():
        for i, (query, answer, context) in enumerate(zip(queries, answers, contexts, strict=True)):
            try:
                verdict = score(query, answer, context)
            except JudgeError as exc:
                raise JudgeError(f"judging {metric} of answer {i + 1}: {exc}") from exc
            verdicts[i][metric] = {"score": verdict.score, "reason": verdict.reason}
    means = {metric: sum(v[metric]["score"] for v in verdicts) / len(verdicts) for metric in by_metric}
    return means, verdicts
