"""Runs inside the clean virtualenv (requirements.txt only): imports function_app as Azure would and calls
every activity the app registers against the fake Azure (``fakeazure``, installed by ``sitecustomize``).

Usage: ``python cloud_probe.py <inputs.json> <report.json>``. The inputs name the landed data and the scoring
rows to send (made by the test, which has the sample-data tools this environment must not have). The report
lists the registered activities, each call made with its input and answer (or the error), and the drift
checks; the test asserts on it and on what the fakes recorded. No pytest here: the cloud does not have it.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import traceback
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MODEL, ENDPOINT, LABEL = "credit", "scoring", "label"
MAX_POLLS = 10


class Probe:
    """Calls activities by name as the Functions host would (one JSON-able dict in, one out)."""

    def __init__(self, activities: dict[str, Callable[..., Any]]) -> None:
        self.activities = activities
        self.calls: list[dict[str, Any]] = []
        self.failed = False

    def __call__(self, name: str, payload: dict[str, Any]) -> Any:
        answer = self.activities[name](json.loads(json.dumps(payload)))  # what crosses the host is JSON
        json.dumps(answer)  # and so is what comes back
        self.calls.append({"activity": name, "input": payload, "output": answer})
        return answer

    def refused(self, name: str, payload: dict[str, Any]) -> str:
        """Call an activity that must fail; the text of its error (recorded as the call's answer)."""
        try:
            answer = self.activities[name](json.loads(json.dumps(payload)))
        except Exception as exc:  # the refusal under test
            self.calls.append({"activity": name, "input": payload, "error": str(exc)})
            return str(exc)
        raise AssertionError(f"{name} {payload} answered {answer} where it should have failed")

    def poll(self, name: str, payload: dict[str, Any], done: Callable[[Any], bool]) -> Any:
        answer = None
        for _ in range(MAX_POLLS):
            answer = self(name, payload)
            if done(answer):
                return answer
        raise AssertionError(f"{name} {payload} not done after {MAX_POLLS} polls; the last answer: {answer}")


class Webhook(BaseHTTPRequestHandler):
    """The chat webhook notices go to (MLOPS_NOTIFY_WEBHOOK_URL): keeps what it was sent."""

    received: list[dict[str, Any]] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        length = int(self.headers.get("Content-Length") or 0)
        Webhook.received.append(json.loads(self.rfile.read(length)))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        """Quiet."""


def start_webhook() -> str:
    """A webhook receiver on 127.0.0.1 (a thread of this process); its URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), Webhook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}/hook"


def registered_activities(app: Any) -> dict[str, Callable[..., Any]]:
    """Every function of the app whose trigger is an activity trigger, by activity name."""
    found = {}
    for fn in app.get_functions():
        trigger = fn.get_trigger()
        if trigger is not None and trigger.get_binding_name() == "activityTrigger":
            # the name orchestrators call it by (call_activity), as in the function.json the host reads
            found[trigger.get_dict_repr().get("activity") or fn.get_function_name()] = fn.get_user_function()
    return found


def train(p: Probe, data: dict[str, Any], run_id: str, champion: dict[str, Any] | None) -> dict[str, Any]:
    """Submit training, poll it, evaluate (against the champion), register: the retrain runbook's calls."""
    from mlops.contracts import GET_JOB, REGISTER_MODEL, SUBMIT_EVALUATION, SUBMIT_TRAINING

    job = p(SUBMIT_TRAINING, {"model": MODEL, "data": data, "label": LABEL, "run_id": run_id, "policy_hash": "h1"})
    assert job["state"] == "queued", job
    job = p.poll(GET_JOB, {"job_id": job["job_id"]}, lambda a: a["state"] != "running")
    assert job["state"] == "succeeded" and job["model_uri"].startswith("azureml://jobs/"), job
    evaluation = p(SUBMIT_EVALUATION, {"model": MODEL, "training_job": job["job_id"], "candidate_uri": job["model_uri"],
                                       "candidate_run": job["tracking_run_id"], "label": LABEL,
                                       "champion_uri": champion["model_uri"] if champion else ""})
    scored = p.poll(GET_JOB, {"job_id": evaluation["job_id"]}, lambda a: a["state"] != "running")
    assert scored["state"] == "succeeded" and "accuracy_score" in scored["scores"]["candidate"], scored
    assert ("champion" in scored["scores"]) == bool(champion), scored
    tags = {"run_id": run_id, "training_job": job["job_id"], "tracking_run_id": job["tracking_run_id"],
            "data_url": data["url"]}
    version = p(REGISTER_MODEL, {"model": MODEL, "job": job, "tags": tags})
    retried = p(REGISTER_MODEL, {"model": MODEL, "job": job, "tags": tags})  # a retried activity adds no version
    assert retried["version"] == version["version"], (version, retried)
    return dict(version)


def deploy(p: Probe, version: dict[str, Any]) -> str:
    """Create a deployment at 0 % and poll it until Azure ML says Succeeded."""
    from mlops.contracts import BEGIN_DEPLOYMENT, GET_OPERATION
    from mlops.runs import deployment_name

    name = deployment_name(MODEL, version["version"])
    op = p(BEGIN_DEPLOYMENT, {"endpoint": ENDPOINT, "deployment": name, "version": version})
    done = p.poll(GET_OPERATION, {"operation_id": op["operation_id"]}, lambda a: a["state"] != "running")
    assert done["state"] == "succeeded", done
    return name


def traffic(p: Probe, split: dict[str, int], mirror: dict[str, int] | None = None) -> dict[str, Any]:
    """Ask for a split, then poll until the endpoint has applied it (never assumed at once)."""
    from mlops.contracts import GET_TRAFFIC, SET_TRAFFIC

    asked = p(SET_TRAFFIC, {"endpoint": ENDPOINT, "model": MODEL, "traffic": split, "mirror_traffic": mirror or {}})
    assert asked["updating"], asked
    applied = p.poll(GET_TRAFFIC, {"endpoint": ENDPOINT}, lambda a: not a["updating"])
    assert {k: v for k, v in applied["traffic"].items() if v} == {k: v for k, v in split.items() if v}, applied
    return dict(applied)


def send(rows: list[dict[str, Any]], batch: int = 1) -> list[tuple[int, str]]:
    """Clients scoring through the endpoint's live split, ``batch`` rows a request, each with its own request id."""
    from fakeazure import State
    from fakeazure.scoring import score

    state = State.from_env()
    answers = []
    for i in range(0, len(rows), batch):
        status, _, deployment = score(state, ENDPOINT, {"input_data": rows[i:i + batch]},
                                      request_id=str(uuid.uuid4()))
        answers.append((status, deployment))
    return answers


def scenario(p: Probe, inputs: dict[str, Any], report: dict[str, Any]) -> None:
    """Every activity, in the order a retrain, two releases, a canary failure and a clean-up call them."""
    from fakeazure import State

    from adapters import runtime
    from mlops.contracts import (
        AB_LOOK,
        CANCEL_JOB,
        DELETE_DEPLOYMENT,
        DEPLOYMENT_METRICS,
        GET_ALIAS,
        GET_JOB,
        GET_PROMPT,
        LOAD_POLICY,
        NEWEST_DATA,
        NOTIFY,
        PLAN_CLEAN_UP,
        QUEUE_REQUEST,
        RECORD_INCIDENT,
        SAMPLE_ROWS,
        SET_ALIAS,
        SET_PROMPT_ALIAS,
        SMOKE_TEST,
        SUBMIT_DATA_CHECK,
        SUBMIT_TRAINING,
        TAG_VERSION,
        TAKE_PENDING,
        VALIDATE_DATA,
    )
    from mlops.monitoring import check_drift
    from mlops.policy import Policy
    from mlops.run_index import RECORD_RUN

    policy = p(LOAD_POLICY, {"model": MODEL})
    newest = p(NEWEST_DATA, {"model": MODEL})["data"]
    assert newest and newest["url"].rsplit("/", 1)[1] in ("first.csv", "second.csv"), newest
    first = dict(inputs["first"])
    checked = p(VALIDATE_DATA, {"model": MODEL, "data": first, "policy": policy})
    assert checked["report"]["passed"], checked
    sample = p(SAMPLE_ROWS, {"url": first["url"], "label": LABEL, "rows": 5})["rows"]
    assert len(sample) == 5 and all(LABEL not in r for r in sample), sample
    assert p(GET_ALIAS, {"model": MODEL, "alias": "champion"})["version"] is None

    # a chat model's data check is a command job of its own (submitted only: the fake runs no language model),
    # and prompt versions are refused on Azure ML, saying so (docs/llmops.md)
    check = p(SUBMIT_DATA_CHECK, {"model": MODEL, "data": first, "run_id": "retrain-chat-1", "pii": "mask"})
    assert check["state"] == "queued" and check["job_id"].endswith("-check"), check
    for name, ask in ((GET_PROMPT, {"model": MODEL, "alias": "champion"}),
                      (SET_PROMPT_ALIAS, {"model": MODEL, "alias": "champion", "version": "1"})):
        assert "not supported on Azure ML yet" in p.refused(name, ask)

    v1 = train(p, first, "retrain-credit-first", None)
    assert v1["version"] == "1", v1
    p(SET_ALIAS, {"model": MODEL, "alias": "champion", "version": "1"})
    p(TAG_VERSION, {"model": MODEL, "version": "1", "tags": {"release": "promoted"}})
    v1 = p(GET_ALIAS, {"model": MODEL, "alias": "champion"})["version"]
    assert v1["version"] == "1" and v1["tags"]["release"] == "promoted", v1
    dep1 = deploy(p, v1)
    smoke = p(SMOKE_TEST, {"endpoint": ENDPOINT, "deployment": dep1, "rows": sample})
    assert smoke["passed"], smoke
    traffic(p, {dep1: 100})

    v2 = train(p, inputs["second"], "retrain-credit-second", v1)
    dep2 = deploy(p, v2)
    shadow = traffic(p, {dep1: 100, dep2: 0}, {dep2: 50})
    State.from_env().set_flag(f"fail:{ENDPOINT}/{dep2}", "503")  # the candidate breaks under mirrored traffic
    answered = send(inputs["scoring"][:60])
    assert all(status == 200 for status, _ in answered), answered  # a mirror's failure never reaches a client
    live = p(DEPLOYMENT_METRICS, {"endpoint": ENDPOINT, "deployment": dep1, "start": shadow["at"]})
    shadowed = p(DEPLOYMENT_METRICS, {"endpoint": ENDPOINT, "deployment": dep2, "start": shadow["at"]})
    assert live["request_count"] == 60 and live["error_count"] == 0 and sum(live["predictions"].values()) == 60, live
    assert 0 < shadowed["error_count"] == shadowed["request_count"] < 60, shadowed
    report["metrics"] = {"live": live, "shadow": shadowed}
    # an A/B look over the same window: the answers the data collector logged, by request id (no labels yet)
    look = p(AB_LOOK, {"model": MODEL, "endpoint": ENDPOINT, "champion": dep1, "challenger": dep2,
                       "start": shadow["at"], "plan": {"enabled": True}, "guardrails": {}})
    assert look["answered"] == {"A": 60, "B": 0} and look["units"] == 0 and look["decision"] == "continue", look

    traffic(p, {dep1: 100, dep2: 0})  # the release rolls the candidate back
    p(TAG_VERSION, {"model": MODEL, "version": v2["version"], "tags": {"release": "rejected"}})
    plan = p(PLAN_CLEAN_UP, {"model": MODEL, "now": datetime.now(UTC).isoformat()})
    assert [r["deployment"] for r in plan["removals"]] == [dep2], plan
    p(DELETE_DEPLOYMENT, {"model": MODEL, "endpoint": ENDPOINT, "removal": plan["removals"][0]})

    third = p(SUBMIT_TRAINING, {"model": MODEL, "data": inputs["second"], "label": LABEL, "run_id": "retrain-3"})
    State.from_env().set_flag(f"hold:{third['job_id']}", "1")  # a job that runs longer than its run waits
    assert p(GET_JOB, {"job_id": third["job_id"]})["state"] == "running"
    canceled = p(CANCEL_JOB, {"job_id": third["job_id"], "reason": "timed out"})
    assert canceled["state"] == "canceled", canceled

    request = {"kind": "retrain", "model": MODEL, "dedup_key": "blob:second", "payload": {"data": inputs["second"]}}
    assert p(QUEUE_REQUEST, request)["accepted"] is True
    assert p(QUEUE_REQUEST, request)["accepted"] is False  # the same event twice queues once
    taken = p(TAKE_PENDING, {"model": MODEL})["request"]
    assert taken and taken["dedup_key"] == "blob:second", taken
    started = datetime.now(UTC).isoformat()
    entry = {"id": "release-credit-2", "kind": "release", "model": MODEL, "created": started, "version": "2"}
    assert p(RECORD_RUN, entry)["status"] == "Running"  # the run index, in the app's storage (Azurite here)
    ended = p(RECORD_RUN, {**entry, "status": "Failed", "verdict": "rolled back", "ended": started})
    assert ended["verdict"] == "rolled back", ended
    p(RECORD_INCIDENT, {"model": MODEL, "from_version": "2", "to_version": "1", "reason": "canary failed",
                        "evidence": {"error_rate": 1.0}, "source": "release", "at": datetime.now(UTC).isoformat(),
                        "run_id": "release-credit-2"})
    told = p(NOTIFY, {"kind": "rolled_back", "model": MODEL, "run_id": "release-credit-2", "version": "1",
                      "reason": "the canary of v2 failed: error rate 1.0"})
    assert told == {"event": "off", "webhook": "sent"} and "rolled back" in Webhook.received[-1]["text"], told

    # the drift monitor (a timer, not an activity) over the same port: collected inputs against the baseline
    parsed = Policy.from_dict(policy)
    start = datetime.now(UTC)
    send(inputs["scoring"][60:], batch=5)
    calm = check_drift(runtime.platform(), parsed, datetime.now(UTC) + timedelta(seconds=1))
    send(inputs["drifted"], batch=5)
    drifted = check_drift(runtime.platform(), parsed, datetime.now(UTC) + timedelta(seconds=1))
    report["drift"] = {"calm": calm, "drifted": drifted, "since": start.isoformat()}


def main() -> int:
    with open(sys.argv[1], encoding="utf-8") as handle:
        inputs = json.load(handle)
    report: dict[str, Any] = {"python": sys.executable, "modules": {}}
    try:
        import fakeazure

        report["missing_sdk"] = fakeazure.install()  # sitecustomize did it already; a missing SDK stays missing
        os.environ["MLOPS_NOTIFY_WEBHOOK_URL"] = start_webhook()  # an App Setting: read once, when the app starts
        import function_app

        activities = registered_activities(function_app.app)
        report["registered"] = sorted(activities)
        probe = Probe(activities)
        try:
            scenario(probe, inputs, report)
        finally:
            report["calls"] = probe.calls
        report["ok"] = True
    except BaseException as exc:  # the report carries any failure to the test, with its traceback
        report["ok"] = False
        report["error"] = f"{type(exc).__name__}: {exc}"
        report["traceback"] = traceback.format_exc()
    report["modules"] = {name: getattr(sys.modules[name], "__file__", None) for name in sorted(sys.modules)
                         if name.split(".")[0] in ("azure", "function_app", "adapters", "mlops", "activities")}
    with open(sys.argv[2], "w", encoding="utf-8") as handle:
        json.dump(report, handle, indent=1, default=str)
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
