"""Chaos on the local stack: kill -9 a component at a chosen stage of a retrain or release, recover as a user
would (``mlops up`` restarts what died), and check the invariants. Used by tests/e2e/test_chaos.py (a few
seeded kills, in CI) and bench/chaos_soak.py (many randomised kills, locally).

The invariants, checked after every round and sampled during it:
  * every run ends with a verdict (terminal, with ``verdict`` in its status);
  * live traffic adds up to 100 % whenever the gateway answers, ends on one deployment that answers
    scoring requests, and no mirror is left on;
  * the ``champion`` alias names the version whose deployment serves 100 %;
  * no retrain run registered more than one version;
  * after ``mlops down``, no process of the stack (training jobs included) is left.
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stacklab import TERMINAL, Lab, run_input

from adapters.local import LocalPlatform, running_jobs
from cli.sampledata import generate, scoring_rows, to_csv_bytes
from cli.stack import Stack
from devhost.process import alive
from mlops.runs import deployment_name

MODEL = ENDPOINT = "chaos"
COMPONENTS = ("devhost", "gateway", "azurite", "training job")
# where each component is killed: (run kind, stage); a training job only lives while the model trains
STAGES: dict[str, list[tuple[str, str]]] = {
    "training job": [("retrain", "train")],
    "devhost": [("retrain", "train"), ("retrain", "register"), ("release", "deploy"), ("release", "smoke"),
                ("release", "shadow"), ("release", "canary 50%")],
    "gateway": [("release", "deploy"), ("release", "smoke"), ("release", "shadow"), ("release", "canary 50%")],
    "azurite": [("retrain", "train"), ("release", "shadow"), ("release", "canary 50%")],
}
BAKES = ("shadow", "canary 50%", "canary 100%")
POLICY = """# chaos: a release with shadow and canary steps, bakes on the virtual clock
model: chaos
label: label
data:
  required_columns: {f0: float, f1: float, f2: float, f3: float, f4: float, f5: float, segment: str, label: int}
  min_rows: 200
training: {algorithm: logistic_regression, timeout_minutes: 30, poll_seconds: 1}
gates: {metrics: [{name: accuracy_score, threshold: 0.6, max_regression: 0.2}]}
release:
  endpoint: chaos
  smoke_requests: 3
  shadow: {enabled: true, percent: 20, bake_minutes: 5}
  steps: [{traffic_percent: 50, bake_minutes: 5}, {traffic_percent: 100, bake_minutes: 1}]
  health: {max_error_rate: 0.2, max_p95_latency_ratio: 20.0, max_prediction_shift: 0.9, min_requests: 3}
"""


@dataclass
class Kill:
    """One planned kill: which component, when."""

    component: str
    kind: str
    stage: str


@dataclass
class Record:
    """What a chaos session saw."""

    kills: list[tuple[Kill, bool]] = field(default_factory=list)  # (kill, whether it landed at that stage)
    samples: int = 0
    bad_samples: list[str] = field(default_factory=list)
    verdicts: dict[str, str] = field(default_factory=dict)  # run id -> verdict


def plan(seed: int, count: int) -> list[Kill]:
    """``count`` kills, every component at least once when ``count`` allows, stages drawn from ``seed``."""
    rng = random.Random(seed)
    components = list(COMPONENTS)
    rng.shuffle(components)
    chosen = components[:count] + [rng.choice(COMPONENTS) for _ in range(count - len(components))]
    return [Kill(c, *rng.choice(STAGES[c])) for c in chosen]


class Chaos:
    """Drives rounds of land -> kill -> recover -> finish on one stack, sampling traffic all along."""

    def __init__(self, stack: Stack, lab: Lab) -> None:
        self.stack, self.lab = stack, lab
        self.record = Record()
        self._stop = threading.Event()
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._last_pids: list[int] = []
        self._served = False  # set once the first release promoted: from then on live traffic is 100 %

    # -- the session ---------------------------------------------------------------------------
    def start(self) -> None:
        """First data lands and v1 is released with no kill: later releases have a champion to fall back to."""
        self._sampler.start()
        self.round(None, seed=100)

    def stop(self) -> None:
        """Stop sampling."""
        self._stop.set()
        self._sampler.join(timeout=10)

    def round(self, kill: Kill | None, seed: int) -> None:
        """Land new data; kill at the planned stage; recover; drive the lifecycle until it is idle."""
        lab = self.lab
        known = {i["instanceId"] for i in lab.instances(f"retrain-{MODEL}-")}
        lab.land(MODEL, f"d{seed}.csv", to_csv_bytes(generate(400, seed=seed)))
        landed = False
        if kill is not None:
            landed = self._kill_at(kill, known)
            self.recover()
        retrain = lab.wait(_tolerant(lambda: self._new_run(known)), timeout=120, what="the retrain of the new data")
        self._drive(retrain)
        if kill is not None:
            self.record.kills.append((kill, landed))
        self.check_round()
        self._served = True
        self.remember_pids()

    def recover(self) -> list[str]:
        """What a user does after a crash: ``mlops up`` on the same state dir restarts whatever died."""
        _, restarted = self.stack.restart()
        return restarted

    # -- kills ---------------------------------------------------------------------------------
    def _kill_at(self, kill: Kill, known: set[str]) -> bool:
        """Wait (bounded) for a run of ``kill.kind`` at ``kill.stage``, then SIGKILL the component. True if it
        was caught at that stage; if the run went past it, the kill happens anyway, wherever it is."""
        def at_stage() -> bool:
            running = [i for i in self.lab.instances(f"{kill.kind}-{MODEL}-") if i["runtimeStatus"] == "Running"]
            return any((i.get("customStatus") or {}).get("stage") == kill.stage for i in running)

        deadline = time.monotonic() + 120
        caught = False
        while time.monotonic() < deadline:
            if at_stage() and (kill.component != "training job" or self._job_pids()):
                caught = True
                break
            if self._new_run(known) and self._settled():
                break  # the runs ended before that stage (a retrain refused, a release rolled back): kill now
            self._nudge()
            time.sleep(0.2)
        for pid in self._pids(kill.component):
            os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + 10
            while alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
        return caught

    def _pids(self, component: str) -> list[int]:
        if component == "training job":
            return self._job_pids()
        return [Stack.load(self.stack.state_dir).pids[component]]

    def _job_pids(self) -> list[int]:
        return list(running_jobs(self.stack.platform_dir).values())

    # -- driving -------------------------------------------------------------------------------
    def _nudge(self) -> None:
        """Move a release through its bakes: a little scoring traffic, then virtual time."""
        try:
            stages = {(i.get("customStatus") or {}).get("stage") for i in self.lab.instances(f"release-{MODEL}-")
                      if i["runtimeStatus"] == "Running"}
            if stages & set(BAKES):
                # enough requests that the shadow's 20 % mirror gets the policy's minimum of 3
                self._score(30)
                self.lab.advance(301)
        except (OSError, ValueError):
            pass  # a component is down: the next nudge tries again

    def _settled(self) -> bool:
        """True when the newest retrain ended and nothing is running for the model."""
        runs = self.lab.instances(f"retrain-{MODEL}-") + self.lab.instances(f"release-{MODEL}-")
        return bool(runs) and all(r["runtimeStatus"] in TERMINAL for r in runs) and \
            self.lab.status(f"lifecycle-{MODEL}")["runtimeStatus"] in (None, "Completed", "Failed")

    def _new_run(self, known: set[str]) -> str | None:
        return next((i["instanceId"] for i in self.lab.instances(f"retrain-{MODEL}-") if i["instanceId"] not in known),
                    None)

    def _drive(self, retrain: str, timeout: float = 300) -> None:
        """Until the retrain has ended, the release of what it registered too, and the lifecycle is idle."""
        def done() -> bool:
            self._nudge()
            run = self.lab.status(retrain)
            if run["runtimeStatus"] not in TERMINAL:
                return False
            version = (run.get("output") or {}).get("version") if run["runtimeStatus"] == "Completed" else None
            releases = self.lab.instances(f"release-{MODEL}-")
            if version and not any(str(run_input(r).get("version")) == str(version) for r in releases):
                return False  # ModelRegistered is on its way
            lifecycle = self.lab.status(f"lifecycle-{MODEL}")["runtimeStatus"]
            return lifecycle in (None, "Completed", "Failed") and all(r["runtimeStatus"] in TERMINAL for r in releases)

        self.lab.wait(_tolerant(done), timeout=timeout, what="the chaos lifecycle to settle")

    def _score(self, n: int) -> list[str]:
        answered = []
        for row in scoring_rows(n, seed=random.randrange(10_000)):
            _, deployment = self.lab.gateway.score_via_endpoint(ENDPOINT, [row])
            answered.append(deployment)
        return answered

    # -- invariants ------------------------------------------------------------------------------
    def _sample(self) -> None:
        """Every 0.5 s while the gateway answers: the live split adds up to 100 %."""
        while not self._stop.wait(0.5):
            try:
                split = self.lab.gateway.get_traffic(ENDPOINT)
            except Exception:  # gateway down or endpoint not created yet: nothing to sample
                continue
            total = sum(split.traffic.values())
            if total == 0 and not self._served:
                continue  # the first release deploys at 0 % before it promotes: nothing is live yet
            self.record.samples += 1
            if total != 100:
                self.record.bad_samples.append(f"traffic {split.traffic} does not add up to 100")

    def check_round(self) -> None:
        """The invariants once the lifecycle is idle."""
        runs = self.lab.instances(f"retrain-{MODEL}-") + self.lab.instances(f"release-{MODEL}-")
        for run in runs:
            verdict = (run.get("customStatus") or {}).get("verdict")
            assert run["runtimeStatus"] in TERMINAL and verdict, f"{run['instanceId']} ended without a verdict: {run}"
            self.record.verdicts[run["instanceId"]] = verdict
        split = self.lab.gateway.get_traffic(ENDPOINT)
        live = {d: p for d, p in split.traffic.items() if p > 0}
        assert len(live) == 1 and sum(live.values()) == 100, f"live traffic is {split.traffic}"
        assert not any(split.mirror_traffic.values()), f"a mirror is left on: {split.mirror_traffic}"
        platform = LocalPlatform(self.stack.platform_dir, self.lab.blobs)  # type: ignore[arg-type]
        champion = platform.get_alias(MODEL, "champion")
        assert champion is not None and live == {deployment_name(MODEL, champion.version): 100}, \
            f"champion v{champion and champion.version} but live traffic is {live}"
        assert set(self._score(3)) == set(live), "the live deployment does not answer"
        by_run: dict[str, list[str]] = {}
        for version in platform.list_model_versions(MODEL):
            by_run.setdefault(version.tags.get("run_id", ""), []).append(version.version)
        twice = {run: versions for run, versions in by_run.items() if len(versions) > 1}
        assert not twice, f"runs registered more than one version: {twice}"
        assert not self.record.bad_samples, self.record.bad_samples[:5]

    def processes_after_down(self, state_dir: Path) -> list[int]:
        """Every pid the stack recorded or started that still runs (call after ``down``; they must be none)."""
        return [p for p in [*self._last_pids, *self._job_pids()] if alive(p)]

    def remember_pids(self) -> None:
        """Note the stack's current pids (``down`` forgets them)."""
        self._last_pids = list(Stack.load(self.stack.state_dir).pids.values())


def _tolerant(predicate: Callable[[], bool]) -> Callable[[], bool]:
    """``predicate``, False while a component is still coming back."""
    def call() -> bool:
        try:
            return predicate()
        except (OSError, ValueError, KeyError):
            return False
    return call


def write_policy(folder: Path) -> Path:
    """A policy folder holding only the chaos model's policy."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{MODEL}.yaml").write_text(POLICY)
    return folder


def summary(record: Record) -> dict[str, Any]:
    """Figures for a closing note: kills by component and stage, runs by verdict, traffic samples."""
    verdicts: dict[str, int] = {}
    for verdict in record.verdicts.values():
        verdicts[verdict] = verdicts.get(verdict, 0) + 1
    return {"kills": [f"{k.component}@{k.kind}/{k.stage}{'' if landed else ' (late)'}" for k, landed in record.kills],
            "runs": len(record.verdicts), "verdicts": verdicts, "traffic_samples": record.samples,
            "bad_samples": len(record.bad_samples)}
