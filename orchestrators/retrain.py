"""Retrain: validate the landed data, train a candidate, judge it, and register it.

The runbook, step by step:
  1. load the model's policy;
  2. validate the data (columns, types, rows, nulls, label); a chat model's examples: their format, then the
     data check job (token counts with the base model's tokenizer, the PII scan that blocks, masks or allows);
  3. submit the user's training job (the platform splits the data once, deterministically, and binds the
     training part to it) and poll it with durable timers, within the policy's timeout (then it is canceled);
  4. submit the evaluation job: candidate and champion on the same held-out part, polled the same way;
  5. apply the gates (absolute thresholds, no regression against the champion);
  6. wait for a human approval if the policy asks (an external event racing a timer);
  7. register the candidate (ModelRegistered then starts a release).

A failed step ends the run Failed with a readable verdict; nothing is registered.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import azure.durable_functions as df

from mlops.contracts import (
    GET_ALIAS,
    GET_PROMPT,
    LOAD_POLICY,
    REGISTER_MODEL,
    RETRAIN,
    SUBMIT_DATA_CHECK,
    SUBMIT_EVALUATION,
    SUBMIT_TRAINING,
    VALIDATE_DATA,
    FoundPrompt,
    FoundVersion,
    ModelRef,
    PromptQuery,
    RegisterInput,
    RetrainInput,
    RetrainResult,
    ValidateInput,
    ValidationResult,
    VersionQuery,
)
from mlops.policy import Policy
from mlops.ports import DataRef, JobStatus, ModelVersion
from mlops.prompts import PROMPT_NAME_TAG, PROMPT_VERSION_TAG
from mlops.retrain import (
    STAGES,
    checked_data,
    data_check_request,
    data_check_tags,
    evaluation_request,
    lineage_tags,
    train_request,
)
from mlops.runs import RunStatus, event_data
from mlops.vocabulary import Alias, Verdict

from .judge import Judge
from .steps import Steps

bp = df.Blueprint()


@bp.orchestration_trigger(context_name="context", orchestration=RETRAIN)
def retrain(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
    request = RetrainInput.from_dict(event_data(context.get_input()))
    status = RunStatus.new(RETRAIN, request.model, STAGES)
    status.message = f"data {request.data.url}"
    steps = Steps(context, status)
    policy_dict = yield from steps.retried(LOAD_POLICY, ModelRef(request.model))
    result = yield from _Retrain(steps, request, policy_dict).run()
    return result.to_dict()


class _Retrain:
    """One retrain, step by step; a failed step raises RunFailed with its verdict."""

    def __init__(self, steps: Steps, request: RetrainInput, policy_dict: dict[str, Any]) -> None:
        self.steps = steps
        self.model = request.model
        self.data = request.data
        self.policy_dict = policy_dict
        self.policy = Policy.from_dict(policy_dict)
        self.judge = Judge(steps, self.policy)
        self.approved_by = ""
        self.train_data = request.data  # a chat model trains on what its data check wrote
        self.extra_tags: dict[str, str] = {}
        self.skipped: dict[str, str] = {}  # metrics the evaluation did not compute, with the reason

    def run(self) -> Generator[Any, Any, RetrainResult]:
        """The runbook; whatever fails, the run ends with a verdict and nothing is registered half-way."""
        return (yield from self.steps.with_verdict(self._steps()))

    def _steps(self) -> Generator[Any, Any, RetrainResult]:
        yield from self._validate()
        job = yield from self._train()
        champion, candidate_metrics, champion_metrics = yield from self._evaluate(job)
        self.judge.gates(candidate_metrics, champion_metrics, self.skipped)
        self.approved_by = yield from self.judge.approval()
        version = yield from self._register(job, candidate_metrics)
        return RetrainResult(self.model, version.version, candidate_metrics, champion_metrics,
                             self.steps.status.gates)

    def _validate(self) -> Generator[Any, Any, None]:
        self.steps.begin("validate")
        checked = yield from self.steps.call(VALIDATE_DATA, ValidateInput(self.model, self.data, self.policy_dict),
                                             ValidationResult)
        report = checked.report
        if not report.passed:
            raise self.steps.fail("validate", "data validation failed: " + "; ".join(report.problems),
                                  report={**report.to_dict(), "sha256": checked.sha256})
        self.data = DataRef(self.data.url, self.data.etag, self.data.content_length, checked.sha256)
        self.train_data = self.data
        if self.policy.is_chat:
            yield from self._check_chat_data()
        self.steps.end("validate", rows=report.rows)

    def _check_chat_data(self) -> Generator[Any, Any, None]:
        """A chat model's data check job: tokens and PII; the report is the verdict, values never leave it."""
        job = yield from self.steps.call(SUBMIT_DATA_CHECK, data_check_request(
            self.policy, self.data, self.steps.context.instance_id), JobStatus)
        job = yield from self.judge.finished(job, "validate", "the data check")
        report = job.report
        self.steps.status.stage_named("validate").detail["check"] = report
        if not report.get("passed"):
            raise self.steps.fail("validate", "data check failed: " + "; ".join(report.get("problems") or
                                                                                ["no report"]), check=report)
        self.train_data = checked_data(self.data, job)
        self.extra_tags = {**data_check_tags(report), "train_data_url": self.train_data.url,
                           "train_data_sha256": self.train_data.sha256}

    def _train(self) -> Generator[Any, Any, JobStatus]:
        """Submit the user's job and poll it until it ends or the policy's timeout passes."""
        training = self.policy.training
        self.steps.begin("train", job=training.job or f"built-in example ({training.algorithm})")
        job = yield from self.steps.call(SUBMIT_TRAINING, train_request(
            self.policy, self.train_data, self.steps.context.instance_id), JobStatus)
        job = yield from self.judge.finished(job, "train", "training")
        self.steps.end("train", job=job.job_id, metrics=job.metrics, lineage=job.lineage,
                       **({"trials": job.trials} if job.trials else {}))  # a sweep's trial table
        return job

    def _evaluate(self, job: JobStatus) -> Generator[
            Any, Any, tuple[ModelVersion | None, dict[str, float], dict[str, float] | None]]:
        """The evaluation job scores candidate and champion on the training job's held-out part."""
        self.steps.begin("evaluate", model_type=self.policy.evaluation.model_type)
        found = yield from self.steps.call(GET_ALIAS, VersionQuery(self.model, alias=Alias.CHAMPION), FoundVersion)
        champion = found.version
        prompt = None
        if self.policy.is_chat:  # a candidate answers through the live prompt, and is released with it
            live = yield from self.steps.call(GET_PROMPT, PromptQuery(self.model, alias=Alias.CHAMPION), FoundPrompt)
            prompt = live.prompt
            if prompt is not None:
                self.extra_tags.update({PROMPT_NAME_TAG: prompt.name, PROMPT_VERSION_TAG: prompt.version})
        submitted = yield from self.steps.call(SUBMIT_EVALUATION, evaluation_request(self.policy, job, champion,
                                                                                      prompt), JobStatus)
        evaluated = yield from self.judge.finished(submitted, "evaluate", "evaluation")
        candidate_metrics = evaluated.scores.get("candidate", {})
        champion_metrics = evaluated.scores.get("champion") if champion else None
        self.skipped = evaluated.skipped
        if evaluated.report:  # a chat evaluation: each question with the reference and both answers
            self.steps.status.stage_named("evaluate").detail["answers"] = evaluated.report.get("answers", [])
            self.extra_tags.update({k: str(v) for k, v in evaluated.report.items() if k.endswith("_sha256")})
        self.steps.end("evaluate", job=evaluated.job_id, candidate=candidate_metrics, champion=champion_metrics,
                       champion_version=champion.version if champion else None,
                       **({"skipped": evaluated.skipped} if evaluated.skipped else {}))
        return champion, candidate_metrics, champion_metrics

    def _register(self, job: JobStatus, metrics: dict[str, float]) -> Generator[Any, Any, ModelVersion]:
        """Register with lineage; the platform announces ModelRegistered, which starts the release."""
        self.steps.begin("register")
        tags = lineage_tags(self.data, self.steps.context.instance_id, self.policy.policy_hash, job, metrics,
                            self.approved_by, self.extra_tags)
        version = yield from self.steps.call(REGISTER_MODEL, RegisterInput(self.model, job, tags), ModelVersion)
        self.steps.status.version = version.version
        self.steps.end("register", version=version.version)
        self.steps.finish(Verdict.REGISTERED, f"{self.model} v{version.version} registered")
        return version
