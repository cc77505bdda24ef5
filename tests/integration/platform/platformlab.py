"""Test support for the platform tests: devhost's custom topic that records what it receives, and training
jobs run by the local platform as real processes on MLflow (SQLite)."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adapters.eventgrid import TopicPublisher
from adapters.local import LocalPlatform
from devhost.testing import DevHostProcess
from mlops.ports import DataRef, EvaluationRequest, JobStatus, TrainRequest

EVENTS_APP = Path(__file__).parents[1] / "apps" / "events" / "function_app.py"
TOPIC = "mlops"


@dataclass
class Topic:
    """devhost's custom topic ``mlops``, routed to the events app's ``sink_a``, which records every event."""

    host: DevHostProcess
    out: Path
    key: str

    @property
    def endpoint(self) -> str:
        """Where TopicPublisher sends."""
        return f"{self.host.base_url}/runtime/webhooks/eventgrid/topics/{TOPIC}/api/events"

    def publisher(self, key: str | None = None) -> TopicPublisher:
        """The project's publisher on this topic (with another key, to make it fail)."""
        return TopicPublisher(self.endpoint, key or self.key)

    def received(self, where: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
        """The events sink_a recorded that match."""
        folder = self.out / "sink_a"
        found = [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))] if folder.exists() else []
        return [e for e in found if where(e)]

    def wait_received(self, where: Callable[[dict[str, Any]], bool], timeout: float = 30) -> list[dict[str, Any]]:
        """Poll (bounded) until at least one matching event arrived."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if found := self.received(where):
                return found
            time.sleep(0.05)
        raise AssertionError(f"no matching event on topic {TOPIC} after {timeout}s\n{self.host.log_tail()}")

    def wait_idle(self, timeout: float = 30) -> None:
        """Poll (bounded) until devhost has no delivery pending or running."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = self.host.session.get(self.host.base_url + "/admin/devhost/eventgrid", timeout=10,
                                           headers={"x-functions-key": self.host.master_key}).json()
            if not status["pending"] and not status["inFlight"]:
                return
            time.sleep(0.05)
        raise AssertionError(f"deliveries still pending after {timeout}s")


def _until_done(platform: LocalPlatform, job: JobStatus, timeout: float) -> JobStatus:
    deadline = time.monotonic() + timeout
    while not job.done and time.monotonic() < deadline:
        time.sleep(0.25)
        job = platform.get_job(job.job_id)
    assert job.done, f"job {job.job_id} still {job.state} after {timeout}s"
    return job


def train(platform: LocalPlatform, model: str, csv: Path, timeout: float = 180, job: str = "",
          inputs: dict[str, Any] | None = None, label: str = "label") -> JobStatus:
    """Run a training job on ``csv`` (the example job unless ``job`` names a YAML) to its end, as real processes."""
    request = TrainRequest(model=model, data=DataRef(url=csv.as_uri()), label=label, job=job, inputs=inputs or {},
                           algorithm="logistic_regression", params={} if job else {"max_iter": 500},
                           run_id=f"retrain-{model}-{secrets.token_hex(4)}")
    return _until_done(platform, platform.submit_training(request), timeout)


def evaluate(platform: LocalPlatform, job: JobStatus, champion_uri: str = "", model_type: str = "classifier",
             timeout: float = 180) -> JobStatus:
    """Run the evaluation job for a trained candidate (and a champion) to its end."""
    request = EvaluationRequest(model="m", training_job=job.job_id, candidate_uri=job.model_uri,
                                candidate_run=job.tracking_run_id, label="label", champion_uri=champion_uri,
                                model_type=model_type)
    return _until_done(platform, platform.submit_evaluation(request), timeout)


def job_log(platform: LocalPlatform, job: JobStatus) -> str:
    """The end of a job's log (for failure messages)."""
    return (platform.jobs_dir / job.job_id / "job.log").read_text(errors="replace")[-3000:]
