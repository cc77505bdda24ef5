"""Rollback: restore the last known good model after a drift or health alert.

The runbook:
  1. find the champion the alert was about and the previous champion;
  2. if the champion has already changed since the alert, stop: nothing to do (idempotent);
  3. if there is no previous champion, stop with that reason and change nothing;
  4. make sure the previous deployment exists (recreate it if it was cleaned up);
  5. send it 100 % of traffic, move the ``champion`` alias back, tag the bad version;
  6. record the incident (why, which numbers, when) and, per policy, ask for a retrain.
"""

from __future__ import annotations

from datetime import timedelta

import azure.durable_functions as df

from mlops.policy import Policy
from mlops.runs import (
    BEGIN_DEPLOYMENT,
    GET_ALIAS,
    GET_OPERATION,
    GET_TRAFFIC,
    LOAD_POLICY,
    RECORD_INCIDENT,
    ROLLBACK,
    SET_ALIAS,
    SET_TRAFFIC,
    TAG_VERSION,
    RunStatus,
    deployment_name,
    event_data,
)
from orchestrators.status import StatusReporter

bp = df.Blueprint()


@bp.orchestration_trigger(context_name="context", orchestration=ROLLBACK)
def rollback(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
    request = event_data(context.get_input())
    model = request["model"]
    reason = request.get("reason", "rollback requested")
    status = RunStatus.new(ROLLBACK, model, ["assess", "restore", "record"])

    publish = StatusReporter(context, status).publish

    status.begin("assess", context.current_utc_datetime)
    publish()
    policy = Policy.from_dict((yield context.call_activity(LOAD_POLICY, model)))
    endpoint = policy.release.endpoint
    champion = yield context.call_activity(GET_ALIAS, {"model": model, "alias": "champion"})
    previous = yield context.call_activity(GET_ALIAS, {"model": model, "alias": "previous"})
    about = request.get("version")
    if (champion is None or previous is None or previous["version"] == champion["version"]
            or (about and champion["version"] != str(about))):
        why = ("no champion is deployed" if champion is None else
               f"v{about} is no longer the champion (now v{champion['version']}): already rolled back"
               if about and champion["version"] != str(about) else
               f"there is no earlier version of {model} to roll back to")
        status.end("assess", context.current_utc_datetime, ok=True, reason=why)
        status.skip("restore", why)
        status.skip("record", why)
        status.finish("nothing to do", why)
        publish()
        return {"model": model, "verdict": "nothing to do", "reason": why}
    status.version = previous["version"]
    status.end("assess", context.current_utc_datetime, bad=champion["version"], target=previous["version"])

    status.begin("restore", context.current_utc_datetime)
    publish()
    good_dep = deployment_name(model, previous["version"])
    bad_dep = deployment_name(model, champion["version"])
    split = yield context.call_activity(GET_TRAFFIC, endpoint)
    if good_dep not in split.get("traffic", {}):
        op = yield context.call_activity(BEGIN_DEPLOYMENT, {"endpoint": endpoint, "deployment": good_dep,
                                                            "model": previous})
        for _ in range(360):  # bounded: 30 minutes of 5-second polls
            if op["state"] != "running":
                break
            yield context.create_timer(context.current_utc_datetime + timedelta(seconds=5))
            op = yield context.call_activity(GET_OPERATION, op["operation_id"])
        if op["state"] != "succeeded":
            status.end("restore", context.current_utc_datetime, ok=False, operation=op)
            status.finish("failed", f"could not redeploy v{previous['version']}: {op.get('message', '')}")
            publish()
            raise RuntimeError(status.message)
    applied = yield context.call_activity(SET_TRAFFIC, {"endpoint": endpoint, "model": model,
                                                        "traffic": {good_dep: 100, bad_dep: 0},
                                                        "mirror_traffic": {}})
    status.traffic = applied
    yield context.call_activity(SET_ALIAS, {"model": model, "alias": "champion", "version": previous["version"]})
    yield context.call_activity(TAG_VERSION, {"model": model, "version": champion["version"],
                                              "tags": {"release": "rolled back", "rollback.reason": reason[:500]}})
    status.end("restore", context.current_utc_datetime, traffic=applied)

    status.begin("record", context.current_utc_datetime)
    incident = {"model": model, "from_version": champion["version"], "to_version": previous["version"],
                "reason": reason, "evidence": request.get("evidence", {}), "source": request.get("source", ""),
                "at": context.current_utc_datetime.isoformat(), "run_id": context.instance_id}
    yield context.call_activity(RECORD_INCIDENT, incident)
    retrain = policy.monitoring.on_drift in ("retrain", "rollback_and_retrain") and request.get("source") != "operator"
    status.end("record", context.current_utc_datetime, incident=incident, retrain_requested=retrain)
    status.finish("rolled back", f"{model} rolled back from v{champion['version']} to v{previous['version']}: {reason}")
    publish()
    return {"model": model, "verdict": "rolled back", "from_version": champion["version"],
            "to_version": previous["version"], "reason": reason, "retrain": retrain}
