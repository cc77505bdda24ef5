"""The app's orchestrators, run in-process by devhost's runner against a small in-memory ML platform.

``World`` answers every activity the way the platform port would, from plain Python state a
test sets up (versions, aliases, traffic, how a deployment goes, each deployment's health
figures, the training job, the metrics each model scores). It records what the activities were
asked to change, so a test asserts what an operator would see: the verdict, the stages, live
traffic, aliases and tags.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from devhost.testing import ExternalEvent, OrchestrationRunner, RunResult
from mlops import contracts as c
from mlops.abtest import judge
from mlops.errors import TransientError
from mlops.gates import DataReport
from mlops.policy import AbTest, Policy
from mlops.ports import DataRef, DeploymentMetrics, JobStatus, ModelVersion, Operation
from mlops.run_index import RECORD_RUN
from mlops.runs import Request, deployment_name

ROOT = Path(__file__).resolve().parents[3]
MODEL = "credit"
ENDPOINT = "scoring"
DATA_URL = "http://127.0.0.1:10000/devstoreaccount1/landing/credit/d2.csv"

BASE_POLICY: dict[str, Any] = {
    "model": MODEL, "label": "label",
    "training": {"timeout_minutes": 30, "poll_seconds": 10},
    "gates": {"metrics": [{"name": "accuracy_score", "threshold": 0.7, "max_regression": 0.02}]},
    "release": {"endpoint": ENDPOINT, "smoke_requests": 3,
                "shadow": {"enabled": True, "percent": 20, "bake_minutes": 5},
                "steps": [{"traffic_percent": 10, "bake_minutes": 5}, {"traffic_percent": 50, "bake_minutes": 5},
                          {"traffic_percent": 100, "bake_minutes": 1}],
                "health": {"min_requests": 10}},
}


def healthy(deployment: str, requests: int = 100) -> DeploymentMetrics:
    """Figures that pass every health check against an equally healthy live deployment."""
    return DeploymentMetrics(deployment, requests, 0, 10.0, 20.0, 30.0, {"0": requests // 2, "1": requests // 2})


def failing(deployment: str, requests: int = 100) -> DeploymentMetrics:
    """A deployment answering half its requests with errors."""
    return DeploymentMetrics(deployment, requests, requests // 2, 10.0, 20.0, 30.0, {"0": requests // 2})


@dataclass
class World:
    """The platform, the control store and the landing zone of one test, in memory."""

    policy: dict[str, Any] = field(default_factory=lambda: dict(BASE_POLICY))
    versions: dict[str, ModelVersion] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)
    traffic: dict[str, int] = field(default_factory=dict)
    mirror: dict[str, int] = field(default_factory=dict)
    deployments: set[str] = field(default_factory=set)
    deploy_states: list[str] = field(default_factory=lambda: ["running", "succeeded"])
    update_polls: int = 0  # reads of the endpoint that still show "updating" after each traffic change (Azure ML)
    reads: int = 0  # endpoint reads so far: the n-th is stamped n seconds past midnight
    metrics_since: list[str] = field(default_factory=list)  # the windows DEPLOYMENT_METRICS was asked for
    applied_at: list[str] = field(default_factory=list)  # when each traffic change was first read back applied
    _updating: int = 0
    _awaiting: bool = False  # a change was asked and has not been read back applied yet
    metrics: dict[str, Callable[[str], DeploymentMetrics]] = field(default_factory=dict)
    smoke_passes: bool = True
    data_problems: list[str] = field(default_factory=list)
    job_states: list[str] = field(default_factory=lambda: ["running", "running", "succeeded"])
    scores: dict[str, dict[str, float]] = field(default_factory=dict)  # model uri -> metrics
    skipped: dict[str, str] = field(default_factory=dict)  # metrics the evaluation job skipped, with the reason
    pending: list[Request] = field(default_factory=list)
    landed: DataRef | None = None
    incidents: list[dict[str, Any]] = field(default_factory=list)
    notices: list[dict[str, Any]] = field(default_factory=list)  # what the notify activity was asked to send
    queued: list[Request] = field(default_factory=list)
    indexed: list[dict[str, Any]] = field(default_factory=list)  # the run index entries the lifecycle wrote
    deleted: list[str] = field(default_factory=list)
    evaluated: list[dict[str, Any]] = field(default_factory=list)  # evaluation jobs submitted
    canceled: list[dict[str, Any]] = field(default_factory=list)  # jobs canceled, with the reason
    traffic_history: list[dict[str, int]] = field(default_factory=list)
    # A/B phase: each look brings ``ab_units_per_look`` more labelled requests, split as the policy says; an
    # answer is right with the arm's chance (champion, challenger); a share of each arm's labels may be lost
    ab_right: tuple[float, float] = (0.7, 0.7)
    ab_units_per_look: int = 200
    ab_labelled: tuple[float, float] = (1.0, 1.0)
    ab_looks: list[dict[str, Any]] = field(default_factory=list)  # what each AB_LOOK was asked
    sticky_history: list[dict[str, str] | None] = field(default_factory=list)  # each SET_TRAFFIC's sticky setting
    _ab_seen: tuple[dict[str, Any], dict[str, Any], dict[str, Any]] = field(default_factory=lambda: ({}, {}, {}))
    # activity -> how many more calls fail: transiently (a platform outage), or with a plain error
    outages: dict[str, int] = field(default_factory=dict)
    faults: dict[str, int] = field(default_factory=dict)

    # -- set-up ------------------------------------------------------------------------------
    def with_policy(self, **sections: dict[str, Any]) -> World:
        """Override sections of the policy (merged one level deep)."""
        for name, values in sections.items():
            base = self.policy.get(name, {})
            self.policy[name] = {**base, **values} if isinstance(base, dict) else values
        return self

    def register(self, version: str, **tags: str) -> ModelVersion:
        """A registered version with a deployment of its own."""
        mv = ModelVersion(MODEL, version, f"models:/{MODEL}/{version}", {"data_url": DATA_URL, **tags})
        self.versions[version] = mv
        return mv

    def serving(self, version: str, previous: str | None = None) -> None:
        """``version`` is the champion at 100 %; ``previous`` is registered and aliased, its deployment kept."""
        self.register(version)
        self.aliases["champion"] = version
        self.deployments.add(deployment_name(MODEL, version))
        self.traffic = {deployment_name(MODEL, version): 100}
        if previous:
            self.register(previous)
            self.aliases["previous"] = previous
            self.deployments.add(deployment_name(MODEL, previous))
            self.traffic[deployment_name(MODEL, previous)] = 0

    # -- the activities ------------------------------------------------------------------------
    def stubs(self) -> dict[str, Callable[[Any], Any]]:
        """Activity name -> its in-memory answer, failing first as ``outages`` and ``faults`` say."""
        return {name: self._failing(name, stub) for name, stub in self._answers().items()}

    def _failing(self, name: str, stub: Callable[[Any], Any]) -> Callable[[Any], Any]:
        def call(request: Any) -> Any:
            if self.outages.get(name, 0) > 0:
                self.outages[name] -= 1
                raise TransientError(f"scoring gateway: unreachable (test outage of {name})")
            if self.faults.get(name, 0) > 0:
                self.faults[name] -= 1
                raise KeyError(f"test fault in {name}")
            return stub(request)

        return call

    def _answers(self) -> dict[str, Callable[[Any], Any]]:
        return {
            c.LOAD_POLICY: lambda req: Policy.from_dict(self.policy).to_dict(),
            c.GET_ALIAS: self._get_alias,
            c.GET_TRAFFIC: lambda req: self._traffic_state(),
            c.SET_TRAFFIC: self._set_traffic,
            c.BEGIN_DEPLOYMENT: self._begin_deployment,
            c.GET_OPERATION: lambda req: self._operation(req["operation_id"]),
            c.SAMPLE_ROWS: lambda req: c.Sample([{"f0": 1.0}] * req["rows"]).to_dict(),
            c.SMOKE_TEST: lambda req: c.SmokeResult(self.smoke_passes, "" if self.smoke_passes else
                                                    "HTTPError: 500", len(req["rows"])).to_dict(),
            c.DEPLOYMENT_METRICS: lambda req: self.metrics_since.append(req["start"]) or
            self.metrics.get(req["deployment"], healthy)(req["deployment"]).to_dict(),
            c.SET_ALIAS: self._set_alias,
            c.TAG_VERSION: self._tag,
            c.VALIDATE_DATA: self._validate,
            c.SUBMIT_TRAINING: lambda req: self._job(),
            c.GET_JOB: lambda req: self._evaluation() if req["job_id"].endswith("-eval") else self._job(),
            c.SUBMIT_EVALUATION: self._submit_evaluation,
            c.CANCEL_JOB: lambda req: self.canceled.append(req) or JobStatus(req["job_id"], "canceled").to_dict(),
            c.REGISTER_MODEL: self._register,
            c.RECORD_INCIDENT: lambda req: self.incidents.append(req),
            c.NOTIFY: lambda req: self.notices.append(req) or c.Notified("sent", "off").to_dict(),
            c.TAKE_PENDING: lambda req: c.PendingRequest(self.pending.pop(0).to_dict() if self.pending
                                                         else None).to_dict(),
            c.QUEUE_REQUEST: lambda req: self.queued.append(Request.from_dict(req)) or c.Queued(True).to_dict(),
            c.NEWEST_DATA: lambda req: c.NewestData(self.landed).to_dict(),
            RECORD_RUN: lambda req: self.indexed.append(req) or req,
            c.PLAN_CLEAN_UP: lambda req: c.CleanUpPlan(MODEL, ENDPOINT, [
                c.Removal(d, d.rsplit("-v", 1)[1], "test") for d in sorted(self.deployments)
                if not self.traffic.get(d)]).to_dict(),
            c.DELETE_DEPLOYMENT: lambda req: self.deleted.append(req["removal"]["deployment"]),
            c.AB_LOOK: self._ab_look,
        }

    def _ab_look(self, req: dict[str, Any]) -> dict[str, Any]:
        """Simulated outcomes (seeded by the look), judged by the app's own statistics (``mlops.abtest``)."""
        self.ab_looks.append(req)
        ab = AbTest.model_validate(req["plan"])
        rng = random.Random(len(self.ab_looks))
        champion, challenger, labels = self._ab_seen
        for i in range(self.ab_units_per_look):
            request_id, arm_b = f"look{len(self.ab_looks)}-{i}", rng.random() < ab.percent / 100
            label = rng.choice("01")
            answer = label if rng.random() < self.ab_right[arm_b] else str(1 - int(label))
            (challenger if arm_b else champion)[request_id] = answer
            if rng.random() < self.ab_labelled[arm_b]:
                labels[request_id] = label
        return judge(ab, champion, challenger, labels, req["guardrails"])

    def _get_alias(self, req: dict[str, Any]) -> dict[str, Any]:
        version = req.get("version") or self.aliases.get(req.get("alias") or "")
        return c.FoundVersion(self.versions.get(version) if version else None).to_dict()

    def _traffic_state(self) -> dict[str, Any]:
        self.reads += 1
        updating = self._updating > 0
        self._updating = max(0, self._updating - 1)
        at = f"2024-01-01T00:{self.reads // 60:02d}:{self.reads % 60:02d}+00:00"
        if self._awaiting and not updating:
            self.applied_at.append(at)
            self._awaiting = False
        return c.TrafficState(dict(self.traffic), dict(self.mirror), at, updating).to_dict()

    def _set_traffic(self, req: dict[str, Any]) -> dict[str, Any]:
        self.traffic, self.mirror = dict(req["traffic"]), dict(req["mirror_traffic"])
        self.sticky_history.append(req.get("sticky"))
        self.traffic_history.append({**self.traffic, **{f"mirror:{k}": v for k, v in self.mirror.items()}})
        self._updating = self.update_polls + 1 if self.update_polls else 0  # this answer, then the polls
        self._awaiting = True
        return self._traffic_state()

    def _begin_deployment(self, req: dict[str, Any]) -> dict[str, Any]:
        self._states = iter(self.deploy_states)
        self.deployments.add(req["deployment"])
        return self._operation("op-1")

    def _operation(self, operation_id: str) -> dict[str, Any]:
        state = next(self._states, self.deploy_states[-1])
        return Operation(operation_id, state, "" if state != "failed" else "image pull failed").to_dict()  # type: ignore[arg-type]

    def _set_alias(self, req: dict[str, Any]) -> None:
        self.aliases[req["alias"]] = req["version"]

    def _tag(self, req: dict[str, Any]) -> None:
        mv = self.versions[req["version"]]
        self.versions[req["version"]] = ModelVersion(mv.name, mv.version, mv.model_uri, {**mv.tags, **req["tags"]})

    def _validate(self, req: dict[str, Any]) -> dict[str, Any]:
        report = DataReport(not self.data_problems, 400, ["f0", "label"], {}, list(self.data_problems))
        return c.ValidationResult(report, "ab" * 32).to_dict()

    def _job(self) -> dict[str, Any]:
        if not hasattr(self, "_job_states"):
            self._job_states = iter(self.job_states)
        state = next(self._job_states, self.job_states[-1])
        return JobStatus("job-1", state, "" if state != "failed" else "exit code 1",  # type: ignore[arg-type]
                         model_uri="runs:/job-1/model" if state == "succeeded" else "").to_dict()

    def _submit_evaluation(self, req: dict[str, Any]) -> dict[str, Any]:
        self.evaluated.append(req)
        return JobStatus(f"{req['training_job']}-eval", "running").to_dict()

    def _evaluation(self) -> dict[str, Any]:
        """The evaluation job: candidate and (when asked) champion scored as ``scores`` says."""
        req = self.evaluated[-1]
        scores = {"candidate": self.scores[req["candidate_uri"]]}
        if req["champion_uri"]:
            scores["champion"] = self.scores.get(req["champion_uri"], {})
        return JobStatus(f"{req['training_job']}-eval", "succeeded", scores=scores, skipped=self.skipped).to_dict()

    def _register(self, req: dict[str, Any]) -> dict[str, Any]:
        version = str(len(self.versions) + 1)
        return self.register(version, **req["tags"]).to_dict()

    # -- what a test reads ---------------------------------------------------------------------
    def tags(self, version: str) -> dict[str, str]:
        """The tags on a version now."""
        return self.versions[version].tags

    def live(self) -> dict[str, int]:
        """The deployments that serve live traffic, with their share."""
        return {d: p for d, p in self.traffic.items() if p > 0}


class Lab:
    """Runs one orchestration of the app on a World."""

    def __init__(self, runner: OrchestrationRunner, world: World) -> None:
        self.runner = runner
        self.world = world

    def run(self, name: str, payload: Any, events: list[ExternalEvent] | None = None) -> RunResult:
        """Run ``name`` with ``payload`` (a contract dataclass or a dict) to its end."""
        for activity, stub in self.world.stubs().items():
            self.runner.activity(activity, stub)
        body = payload.to_dict() if hasattr(payload, "to_dict") else payload
        return self.runner.run(name, body, events=events or [], instance_id=f"{name}-{MODEL}-test")


@pytest.fixture(scope="session")
def app_runner() -> OrchestrationRunner:
    """The app's function_app.py, indexed once per session."""
    return OrchestrationRunner(ROOT / "function_app.py")


@pytest.fixture
def world() -> World:
    """A fresh in-memory platform."""
    return World()


@pytest.fixture
def lab(app_runner: OrchestrationRunner, world: World) -> Iterator[Lab]:
    """The runner bound to this test's world."""
    yield Lab(app_runner, world)
