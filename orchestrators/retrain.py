"""Retrain: validate the landed data, train a candidate, judge it, and register it.

The runbook, step by step:
  1. load the model's policy;
  2. validate the data (columns, types, rows, nulls, label);
  3. submit training and poll the job with durable timers, within the policy's timeout;
  4. evaluate candidate and champion on the same held-out split;
  5. apply the gates (absolute thresholds, no regression against the champion);
  6. wait for a human approval if the policy asks (an external event racing a timer);
  7. register the candidate (ModelRegistered then starts a release).

A failed step ends the run Failed with a readable verdict; nothing is registered.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import azure.durable_functions as df

from mlops.gates import evaluate_gates
from mlops.policy import Policy
from mlops.runs import (
    APPROVAL_EVENT,
    EVALUATE_MODEL,
    GET_ALIAS,
    GET_JOB,
    LOAD_POLICY,
    REGISTER_MODEL,
    RETRAIN,
    SUBMIT_TRAINING,
    VALIDATE_DATA,
    RunFailed,
    RunStatus,
    event_data,
)
from orchestrators.status import StatusReporter

bp = df.Blueprint()

STAGES = ["validate", "train", "evaluate", "gates", "approval", "register"]


def _fail(context: df.DurableOrchestrationContext, reporter: StatusReporter, stage: str, message: str,
          **detail: Any) -> RunFailed:
    reporter.status.end(stage, context.current_utc_datetime, ok=False, **detail)
    reporter.status.finish("failed", message)
    reporter.publish()
    return RunFailed(message)


@bp.orchestration_trigger(context_name="context", orchestration=RETRAIN)
def retrain(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
    request = event_data(context.get_input())
    model = request["model"]
    data = request["data"]
    status = RunStatus.new(RETRAIN, model, STAGES)
    status.message = f"data {data['url']}"

    reporter = StatusReporter(context, status)
    publish = reporter.publish

    policy_dict = yield context.call_activity(LOAD_POLICY, model)
    policy = Policy.from_dict(policy_dict)

    # 1. validate
    status.begin("validate", context.current_utc_datetime)
    publish()
    report = yield context.call_activity(VALIDATE_DATA, {"model": model, "data": data, "policy": policy_dict})
    if not report["passed"]:
        raise _fail(context, reporter, "validate", "data validation failed: " + "; ".join(report["problems"]),
                    report=report)
    data = {**data, "sha256": report.get("sha256", "")}
    status.end("validate", context.current_utc_datetime, rows=report.get("rows"))

    # 2. train, polled with durable timers
    training = policy.training
    status.begin("train", context.current_utc_datetime, algorithm=training.algorithm)
    publish()
    job = yield context.call_activity(SUBMIT_TRAINING, {
        "model": model, "data": data, "label": policy.label, "algorithm": training.algorithm,
        "params": training.params, "run_id": context.instance_id, "policy_hash": policy.policy_hash,
        "test_fraction": training.test_fraction, "seed": training.seed,
    })
    deadline = context.current_utc_datetime + timedelta(minutes=training.timeout_minutes)
    polls = 0
    while job["state"] not in ("succeeded", "failed", "canceled"):
        if context.current_utc_datetime >= deadline:
            raise _fail(context, reporter, "train", f"training timed out after {training.timeout_minutes} minutes",
                        job=job["job_id"])
        yield context.create_timer(context.current_utc_datetime + timedelta(seconds=training.poll_seconds))
        job = yield context.call_activity(GET_JOB, job["job_id"])
        polls += 1
        status.stages[1].detail["polls"] = polls
        publish()
    if job["state"] != "succeeded":
        raise _fail(context, reporter, "train", f"training {job['state']}: {job.get('message', '')}", job=job["job_id"])
    status.end("train", context.current_utc_datetime, job=job["job_id"], metrics=job.get("metrics", {}))

    # 3. evaluate candidate and champion on the same held-out data
    status.begin("evaluate", context.current_utc_datetime)
    publish()
    champion = yield context.call_activity(GET_ALIAS, {"model": model, "alias": "champion"})
    evals = [context.call_activity(EVALUATE_MODEL, {"model_uri": job["model_uri"], "data": data,
                                                    "label": policy.label, "test_fraction": training.test_fraction,
                                                    "seed": training.seed})]
    if champion:
        evals.append(context.call_activity(EVALUATE_MODEL, {"model_uri": champion["model_uri"], "data": data,
                                                            "label": policy.label,
                                                            "test_fraction": training.test_fraction,
                                                            "seed": training.seed}))
    results = yield context.task_all(evals)
    candidate_metrics = results[0]
    champion_metrics = results[1] if champion else None
    status.end("evaluate", context.current_utc_datetime, candidate=candidate_metrics, champion=champion_metrics,
               champion_version=champion["version"] if champion else None)

    # 4. gates: a pure decision from mlops.gates
    status.begin("gates", context.current_utc_datetime)
    gate_report = evaluate_gates(policy.gates, candidate_metrics, champion_metrics)
    status.gates = [v.to_dict() for v in gate_report.verdicts]
    if not gate_report.passed:
        failed = [v.reason for v in gate_report.verdicts if not v.passed]
        raise _fail(context, reporter, "gates", "gate failed: " + "; ".join(failed))
    status.end("gates", context.current_utc_datetime)

    # 5. optional human approval: the Approval event races a timer; a timeout is a rejection
    approval = policy.gates.approval
    if approval.required:
        status.begin("approval", context.current_utc_datetime, timeout_hours=approval.timeout_hours)
        status.message = "waiting for approval"
        publish()
        timeout = context.create_timer(context.current_utc_datetime + timedelta(hours=approval.timeout_hours))
        answer = context.wait_for_external_event(APPROVAL_EVENT)
        winner = yield context.task_any([answer, timeout])
        if winner == timeout:
            raise _fail(context, reporter, "approval",
                        f"approval timed out after {approval.timeout_hours} h: rejected")
        timeout.cancel()
        decision = event_data(answer.result)
        if not decision.get("approved"):
            raise _fail(context, reporter, "approval",
                        f"rejected by {decision.get('by', 'an operator')}: {decision.get('reason', 'no reason given')}",
                        decision=decision)
        status.end("approval", context.current_utc_datetime, decision=decision)
    else:
        status.skip("approval", "the policy does not require approval")

    # 6. register (ModelRegistered is announced by the platform)
    status.begin("register", context.current_utc_datetime)
    publish()
    tags = {"data_url": data["url"], "data_etag": data.get("etag", ""), "data_sha256": data.get("sha256", ""),
            "run_id": context.instance_id, "policy_hash": policy.policy_hash,
            "training_job": job["job_id"], "tracking_run_id": job.get("tracking_run_id", "")}
    tags.update({f"metric.{k}": f"{v:.6f}" for k, v in candidate_metrics.items()})
    version = yield context.call_activity(REGISTER_MODEL, {"model": model, "job": job, "tags": tags})
    status.version = version["version"]
    status.end("register", context.current_utc_datetime, version=version["version"])
    status.finish("registered", f"{model} v{version['version']} registered")
    publish()
    return {"model": model, "version": version["version"], "metrics": candidate_metrics,
            "champion_metrics": champion_metrics, "gates": status.gates}
