"""Prompt: a chat model's new prompt version is judged against the current one, then registered as a model version.

The runbook:
  1. load the policy, the champion (the live weights) and both prompts: the candidate version, and the one the
     ``champion`` alias names (none yet: the model answers as its examples taught it);
  2. the chat evaluation job answers the evaluation set with the champion's weights twice, once through each
     prompt (polled with durable timers, within the policy's timeout);
  3. the gates, as for a retrain: absolute floors, no regression against the current prompt;
  4. a human approval if the policy asks;
  5. register a model version: the champion's weights with this prompt (tags ``prompt_name``,
     ``prompt_version``, ``weights_from_version``). ModelRegistered starts its release like any version's: a
     deployment beside the live one that answers through the new prompt, smoke, canary, promote (the prompt's
     ``champion`` alias moves with the model's) or roll back.

A prompt is a release artifact like a model: it reaches users only through the same gate and canary, and every
deployment keeps the prompt it was released with, so a rollback restores both.
"""

from __future__ import annotations

import json
from collections.abc import Generator
from typing import Any

import azure.durable_functions as df

from mlops.contracts import (
    GET_ALIAS,
    GET_PROMPT,
    LOAD_POLICY,
    PROMPT,
    REGISTER_MODEL,
    SUBMIT_EVALUATION,
    FoundPrompt,
    FoundVersion,
    ModelRef,
    PromptInput,
    PromptQuery,
    RegisterInput,
    RetrainResult,
    VersionQuery,
)
from mlops.policy import Policy
from mlops.ports import EvaluationRequest, JobStatus, ModelVersion, PromptVersion
from mlops.prompts import PROMPT_STAGES, prompt_tags
from mlops.runs import RunStatus, event_data
from mlops.vocabulary import Alias, Verdict

from .judge import Judge
from .steps import Steps

bp = df.Blueprint()


@bp.orchestration_trigger(context_name="context", orchestration=PROMPT)
def prompt(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
    request = PromptInput.from_dict(event_data(context.get_input()))
    status = RunStatus.new(PROMPT, request.model, PROMPT_STAGES)
    status.message = f"prompt v{request.prompt_version}"
    steps = Steps(context, status)
    policy_dict = yield from steps.retried(LOAD_POLICY, ModelRef(request.model))
    result = yield from _Prompt(steps, request, policy_dict).run()
    return result.to_dict()


class _Prompt:
    """One prompt trial; the polling, gates and approval are the retrain's (``Judge``)."""

    def __init__(self, steps: Steps, request: PromptInput, policy_dict: dict[str, Any]) -> None:
        self.steps = steps
        self.model = request.model
        self.prompt_version = request.prompt_version
        self.policy = Policy.from_dict(policy_dict)
        self.judge = Judge(steps, self.policy)
        self.approved_by = ""
        self.extra_tags: dict[str, str] = {}

    def run(self) -> Generator[Any, Any, RetrainResult]:
        """The runbook; whatever fails, the run ends with a verdict and nothing is registered."""
        return (yield from self.steps.with_verdict(self._steps()))

    def _steps(self) -> Generator[Any, Any, RetrainResult]:
        champion, candidate, current = yield from self._find()
        candidate_metrics, current_metrics = yield from self._evaluate_prompts(champion, candidate, current)
        self.judge.gates(candidate_metrics, current_metrics, self.evaluation_run.skipped)
        self.approved_by = yield from self.judge.approval()
        version = yield from self._register_prompt(champion, candidate, current_metrics, candidate_metrics)
        return RetrainResult(self.model, version.version, candidate_metrics, current_metrics,
                             self.steps.status.gates)

    def _find(self) -> Generator[Any, Any, tuple[ModelVersion, PromptVersion, PromptVersion | None]]:
        self.steps.begin("evaluate", prompt_version=self.prompt_version)
        if not self.policy.is_chat:
            raise self.steps.fail("evaluate", f"{self.model} is not a chat model (evaluation.model_type: "
                                              f"{self.policy.evaluation.model_type}): it has no prompt")
        found = yield from self.steps.call(GET_ALIAS, VersionQuery(self.model, alias=Alias.CHAMPION), FoundVersion)
        if found.version is None:
            raise self.steps.fail("evaluate", f"{self.model} has no champion yet: a prompt is tried on the live "
                                              "model, so train and release one first")
        asked = yield from self.steps.call(GET_PROMPT, PromptQuery(self.model, version=self.prompt_version),
                                           FoundPrompt)
        if asked.prompt is None:
            raise self.steps.fail("evaluate", f"prompt v{self.prompt_version} of {self.model} is not registered")
        live = yield from self.steps.call(GET_PROMPT, PromptQuery(self.model, alias=Alias.CHAMPION), FoundPrompt)
        if live.prompt is not None and live.prompt.version == asked.prompt.version:
            raise self.steps.fail("evaluate", f"prompt v{self.prompt_version} is already the champion's")
        return found.version, asked.prompt, live.prompt

    def _evaluate_prompts(self, champion: ModelVersion, candidate: PromptVersion, current: PromptVersion | None
                          ) -> Generator[Any, Any, tuple[dict[str, float], dict[str, float]]]:
        """The evaluation job: the champion's weights answer through each prompt, on the same set."""
        evaluation = self.policy.evaluation
        trial = f"{self.model}-prompt-{candidate.version}-{self.steps.context.instance_id[-8:]}"  # the job's name
        request = EvaluationRequest(
            model=self.model, training_job=trial, candidate_uri=champion.model_uri, candidate_run="", label="",
            champion_uri=champion.model_uri, model_type="chat", timeout_minutes=self.policy.training.timeout_minutes,
            eval_set=evaluation.eval_set or "", max_new_tokens=evaluation.max_new_tokens,
            candidate_prompt=json.dumps(candidate.template),
            champion_prompt=json.dumps(current.template) if current else "",
            judge_metrics=list(evaluation.judge.metrics) if evaluation.judge else [])
        submitted = yield from self.steps.call(SUBMIT_EVALUATION, request, JobStatus)
        evaluated = yield from self.judge.finished(submitted, "evaluate", "evaluation")
        candidate_metrics = evaluated.scores.get("candidate", {})
        current_metrics = evaluated.scores.get("champion", {})
        self.evaluation_run = evaluated
        self.extra_tags.update({k: str(v) for k, v in evaluated.report.items() if k.endswith("_sha256")})
        self.steps.end("evaluate", job=evaluated.job_id, candidate=candidate_metrics, champion=current_metrics,
                       champion_version=champion.version, current_prompt=current.version if current else None,
                       answers=evaluated.report.get("answers", []),
                       **({"skipped": evaluated.skipped} if evaluated.skipped else {}))
        return candidate_metrics, current_metrics

    def _register_prompt(self, champion: ModelVersion, candidate: PromptVersion, current: dict[str, float],
                         metrics: dict[str, float]) -> Generator[Any, Any, ModelVersion]:
        """A model version of the champion's weights with this prompt; its release puts it beside the live one."""
        self.steps.begin("register")
        tags = prompt_tags(champion, candidate, self.steps.context.instance_id, self.policy.policy_hash, metrics,
                           self.approved_by, self.extra_tags)
        # the evaluation job's run makes the registration idempotent (a retried activity finds its version)
        job = JobStatus(job_id=self.evaluation_run.job_id, state="succeeded", model_uri=champion.model_uri,
                        tracking_run_id=self.evaluation_run.tracking_run_id)
        version = yield from self.steps.call(REGISTER_MODEL, RegisterInput(self.model, job, tags), ModelVersion)
        self.steps.status.version = version.version
        self.steps.end("register", version=version.version)
        self.steps.finish(Verdict.REGISTERED, f"prompt v{candidate.version} registered as {self.model} "
                                              f"v{version.version} (the weights of v{champion.version})")
        return version


