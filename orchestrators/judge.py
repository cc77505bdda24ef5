"""The judging steps a retrain and a prompt trial share: a job polled to its end, the gates, the approval."""

from __future__ import annotations

from collections.abc import Generator
from datetime import timedelta
from typing import Any

from mlops.contracts import APPROVAL_EVENT, CANCEL_JOB, GET_JOB, JobRef
from mlops.gates import evaluate_gates
from mlops.notices import NoticeKind
from mlops.policy import Policy
from mlops.ports import JobStatus
from mlops.runs import event_data

from .steps import Steps


class Judge:
    """The steps of one run that judge a candidate under the model's policy; a failed one raises RunFailed."""

    def __init__(self, steps: Steps, policy: Policy) -> None:
        self.steps = steps
        self.policy = policy

    def finished(self, job: JobStatus, stage: str, what: str) -> Generator[Any, Any, JobStatus]:
        """Poll ``job`` with durable timers; past the policy's timeout it is canceled and the run fails."""
        training = self.policy.training
        deadline = self.steps.now + timedelta(minutes=training.timeout_minutes)
        self.steps.status.stage_named(stage).detail["job"] = job.job_id  # the operator can read its log meanwhile
        polls = 0
        while not job.done:
            if self.steps.now >= deadline:
                reason = f"{what} timed out after {training.timeout_minutes} minutes"
                yield from self.steps.call(CANCEL_JOB, JobRef(job.job_id, reason), JobStatus)
                raise self.steps.fail(stage, reason, job=job.job_id)
            yield self.steps.context.create_timer(self.steps.now + timedelta(seconds=training.poll_seconds))
            job = yield from self.steps.call(GET_JOB, JobRef(job.job_id), JobStatus)
            polls += 1
            self.steps.status.stage_named(stage).detail["polls"] = polls
            self.steps.publish()
        if job.state != "succeeded":
            raise self.steps.fail(stage, f"{what} {job.state}: {job.message}", job=job.job_id)
        return job

    def gates(self, candidate: dict[str, float], champion: dict[str, float] | None,
              skipped: dict[str, str] | None = None) -> None:
        """A pure decision from mlops.gates; a gate on a metric the evaluation ``skipped`` is reported skipped."""
        self.steps.status.begin("gates", self.steps.now)
        report = evaluate_gates(self.policy.gates, candidate, champion, skipped)
        self.steps.status.gates = [v.to_dict() for v in report.verdicts]
        if not report.passed:
            raise self.steps.fail("gates", "gate failed: " + "; ".join(v.reason for v in report.failed))
        self.steps.end("gates", **({"skipped": [v.reason for v in report.skipped]} if report.skipped else {}))

    def approval(self) -> Generator[Any, Any, str]:
        """The Approval event races a timer; a timeout is a rejection. Who approved ("" when not required)."""
        approval = self.policy.gates.approval
        if not approval.required:
            self.steps.status.skip("approval", "the policy does not require approval")
            return ""
        self.steps.status.message = "waiting for approval"
        self.steps.begin("approval", timeout_hours=approval.timeout_hours)
        yield from self.steps.notify("approval", NoticeKind.APPROVAL_REQUIRED,
                                     f"the candidate passed its gates and waits for an operator's approval; without "
                                     f"one within {approval.timeout_hours} h it is rejected",
                                     timeout_hours=approval.timeout_hours, gates=self.steps.status.gates)
        context = self.steps.context
        timeout = context.create_timer(self.steps.now + timedelta(hours=approval.timeout_hours))
        answer = context.wait_for_external_event(APPROVAL_EVENT)
        winner = yield context.task_any([answer, timeout])
        if winner == timeout:
            raise self.steps.fail("approval", f"approval timed out after {approval.timeout_hours} h: rejected")
        timeout.cancel()
        decision = event_data(answer.result)
        if not decision.get("approved"):
            raise self.steps.fail("approval", f"rejected by {decision.get('by', 'an operator')}: "
                                              f"{decision.get('reason', 'no reason given')}", decision=decision)
        self.steps.end("approval", decision=decision)
        return str(decision.get("by", "an operator"))
