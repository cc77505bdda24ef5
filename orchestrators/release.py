"""Release: a registered model reaches production through smoke test, shadow and canary steps.

The runbook:
  1. deploy the candidate beside the live deployment at 0 % (polled with durable timers);
  2. smoke test it with sample requests;
  3. optionally shadow it (mirrored traffic, answers never returned) and analyse;
  4. canary steps (e.g. 10 -> 50 -> 100 %): set the split, bake (a durable timer), analyse
     candidate against live over the same window; a failed analysis rolls back at once;
  5. promote: 100 %, the ``champion`` alias moves, the old champion becomes ``previous``
     and its deployment is kept for the rollback window.

Operators can pause, resume or abort during a bake (external events). An abort or a failed
step restores the live split and tags the candidate rejected with the analysis that failed.
"""

from __future__ import annotations

from collections.abc import Generator
from datetime import timedelta
from typing import Any

import azure.durable_functions as df

from mlops.health import analyse_step
from mlops.policy import Policy
from mlops.runs import (
    ABORT_EVENT,
    BEGIN_DEPLOYMENT,
    DEPLOYMENT_METRICS,
    GET_ALIAS,
    GET_OPERATION,
    GET_TRAFFIC,
    LOAD_POLICY,
    PAUSE_EVENT,
    RELEASE,
    RESUME_EVENT,
    SET_ALIAS,
    SET_TRAFFIC,
    SMOKE_TEST,
    TAG_VERSION,
    RunFailed,
    RunStatus,
    deployment_name,
    event_data,
)
from orchestrators.status import StatusReporter

bp = df.Blueprint()

DEPLOY_POLL_SECONDS = 5
DEPLOY_TIMEOUT_MINUTES = 30


def live_deployment(traffic: dict[str, int], exclude: str) -> str | None:
    """The deployment serving the most live traffic, other than ``exclude``."""
    live = {d: p for d, p in traffic.items() if d != exclude and p > 0}
    return max(live, key=lambda d: live[d]) if live else None


def _split(live: str | None, candidate: str, percent: int) -> dict[str, int]:
    if live is None or percent >= 100:
        return {candidate: 100, **({live: 0} if live else {})}
    return {live: 100 - percent, candidate: percent}


@bp.orchestration_trigger(context_name="context", orchestration=RELEASE)
def release(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
    request = event_data(context.get_input())
    model, version = request["model"], str(request["version"])
    policy_dict = yield context.call_activity(LOAD_POLICY, model)
    plan = Policy.from_dict(policy_dict).release
    endpoint = plan.endpoint
    stage_names = ["deploy", "smoke"] + (["shadow"] if plan.shadow.enabled else []) \
        + [f"canary {s.traffic_percent}%" for s in plan.steps] + ["promote"]
    status = RunStatus.new(RELEASE, model, stage_names)
    status.version = version

    publish = StatusReporter(context, status).publish

    candidate = yield context.call_activity(GET_ALIAS, {"model": model, "version": version})
    if candidate is None:
        status.finish("failed", f"{model} v{version} is not registered")
        publish()
        raise RunFailed(status.message)
    champion = yield context.call_activity(GET_ALIAS, {"model": model, "alias": "champion"})
    cand_dep = deployment_name(model, version)
    split = yield context.call_activity(GET_TRAFFIC, endpoint)
    live_dep = live_deployment(split["traffic"], cand_dep)
    status.traffic = split

    def set_traffic(traffic: dict[str, int], mirror: dict[str, int] | None = None) -> Generator[Any, Any, Any]:
        applied = yield context.call_activity(SET_TRAFFIC, {"endpoint": endpoint, "model": model, "traffic": traffic,
                                                            "mirror_traffic": mirror or {}})
        status.traffic = applied
        publish()
        return applied

    def restore_and_fail(stage: str, message: str, **detail: Any) -> Generator[Any, Any, RunFailed]:
        """Live traffic back to the champion, candidate tagged rejected, the run ends Failed."""
        if live_dep is not None:
            yield from set_traffic({live_dep: 100, cand_dep: 0})
        yield context.call_activity(TAG_VERSION, {"model": model, "version": version,
                                                  "tags": {"release": "rejected", "release.reason": message[:500]}})
        status.end(stage, context.current_utc_datetime, ok=False, **detail)
        status.finish("rolled back" if live_dep else "failed", message)
        publish()
        return RunFailed(message)

    def bake(stage: str, minutes: float) -> Generator[Any, Any, str | None]:
        """Wait out the bake time; returns an abort reason if an operator aborts."""
        end = context.current_utc_datetime + timedelta(minutes=minutes)
        while True:
            timer = context.create_timer(end)
            abort = context.wait_for_external_event(ABORT_EVENT)
            pause = context.wait_for_external_event(PAUSE_EVENT)
            winner = yield context.task_any([timer, abort, pause])
            if winner == timer:
                return None
            timer.cancel()
            if winner == abort:
                return str(event_data(abort.result).get("reason", "aborted by an operator"))
            status.message = f"paused during {stage}"
            publish()
            resume = context.wait_for_external_event(RESUME_EVENT)
            abort2 = context.wait_for_external_event(ABORT_EVENT)
            got = yield context.task_any([resume, abort2])
            if got == abort2:
                return str(event_data(abort2.result).get("reason", "aborted by an operator"))
            status.message = f"resumed during {stage}"
            publish()
            end = max(end, context.current_utc_datetime + timedelta(seconds=1))

    # 1. deploy beside the live deployment at 0 %
    status.begin("deploy", context.current_utc_datetime, deployment=cand_dep, live=live_dep)
    publish()
    op = yield context.call_activity(BEGIN_DEPLOYMENT, {"endpoint": endpoint, "deployment": cand_dep,
                                                        "model": candidate})
    deadline = context.current_utc_datetime + timedelta(minutes=DEPLOY_TIMEOUT_MINUTES)
    while op["state"] == "running" and context.current_utc_datetime < deadline:
        yield context.create_timer(context.current_utc_datetime + timedelta(seconds=DEPLOY_POLL_SECONDS))
        op = yield context.call_activity(GET_OPERATION, op["operation_id"])
    if op["state"] != "succeeded":
        raise (yield from restore_and_fail("deploy", f"deployment {cand_dep} {op['state']}: {op.get('message', '')}"))
    status.end("deploy", context.current_utc_datetime)

    # 2. smoke test
    status.begin("smoke", context.current_utc_datetime)
    publish()
    smoke = yield context.call_activity(SMOKE_TEST, {"endpoint": endpoint, "deployment": cand_dep, "model": model,
                                                     "requests": plan.smoke_requests})
    if not smoke["passed"]:
        raise (yield from restore_and_fail("smoke", f"smoke test failed: {smoke['reason']}", smoke=smoke))
    status.end("smoke", context.current_utc_datetime, smoke=smoke)

    def analyse(stage: str, since: str, percent: int) -> Generator[Any, Any, dict[str, Any]]:
        metrics = yield context.task_all([
            context.call_activity(DEPLOYMENT_METRICS, {"endpoint": endpoint, "deployment": cand_dep, "start": since}),
            context.call_activity(DEPLOYMENT_METRICS, {"endpoint": endpoint, "deployment": live_dep, "start": since}),
        ])
        report = analyse_step(plan.health, metrics[0], metrics[1])
        result: dict[str, Any] = {"stage": stage, "percent": percent, **report.to_dict()}
        status.analysis = result
        return result

    # 3. shadow, then 4. canary steps
    if live_dep is not None:
        if plan.shadow.enabled:
            status.begin("shadow", context.current_utc_datetime, percent=plan.shadow.percent)
            applied = yield from set_traffic({live_dep: 100, cand_dep: 0}, {cand_dep: plan.shadow.percent})
            aborted = yield from bake("shadow", plan.shadow.bake_minutes)
            result = yield from analyse("shadow", applied["applied_at"], 0)
            yield from set_traffic({live_dep: 100, cand_dep: 0}, {})
            if aborted:
                raise (yield from restore_and_fail("shadow", f"aborted: {aborted}"))
            if not result["passed"]:
                raise (yield from restore_and_fail("shadow", f"shadow analysis failed: {result['reason']}",
                                                   analysis=result))
            status.end("shadow", context.current_utc_datetime, analysis=result)
        for step in plan.steps:
            stage = f"canary {step.traffic_percent}%"
            status.begin(stage, context.current_utc_datetime, percent=step.traffic_percent)
            applied = yield from set_traffic(_split(live_dep, cand_dep, step.traffic_percent))
            aborted = yield from bake(stage, step.bake_minutes)
            if aborted:
                raise (yield from restore_and_fail(stage, f"aborted: {aborted}"))
            if step.traffic_percent < 100:
                result = yield from analyse(stage, applied["applied_at"], step.traffic_percent)
                if not result["passed"]:
                    raise (yield from restore_and_fail(stage, f"canary at {step.traffic_percent}% failed: "
                                                              f"{result['reason']}", analysis=result))
                status.end(stage, context.current_utc_datetime, analysis=result)
            else:
                status.end(stage, context.current_utc_datetime)
    else:
        for name in status.stages:
            if name.name.startswith(("canary", "shadow")):
                status.skip(name.name, "no live deployment to compare with: first release")

    # 5. promote
    status.begin("promote", context.current_utc_datetime)
    yield from set_traffic({cand_dep: 100, **({live_dep: 0} if live_dep else {})})
    yield context.call_activity(SET_ALIAS, {"model": model, "alias": "champion", "version": version})
    if champion and champion["version"] != version:
        yield context.call_activity(SET_ALIAS, {"model": model, "alias": "previous", "version": champion["version"]})
        retire_after = (context.current_utc_datetime + timedelta(hours=plan.rollback_window_hours)).isoformat()
        yield context.call_activity(TAG_VERSION, {"model": model, "version": champion["version"],
                                                  "tags": {"release": "retired", "retired.keep_until": retire_after}})
    yield context.call_activity(TAG_VERSION, {"model": model, "version": version, "tags": {"release": "promoted"}})
    status.end("promote", context.current_utc_datetime)
    status.finish("promoted", f"{model} v{version} promoted to 100 %"
                  + (f"; v{champion['version']} kept as previous" if champion else ""))
    publish()
    return {"model": model, "version": version, "verdict": "promoted", "deployment": cand_dep,
            "previous": champion["version"] if champion else None, "traffic": status.traffic}
