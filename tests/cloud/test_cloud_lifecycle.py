"""The whole lifecycle on devhost with MLOPS_PLATFORM=azureml, over the fake Azure, once, end to end.

devhost, Azurite and the app are the real processes; only Azure ML, Azure Monitor and the app's identity are
faked, at the SDK boundary, by tests/fakes/azure/sitecustomize.py on devhost's PYTHONPATH (no test hook in the
app). Data lands in Azurite -> retrain (training job, evaluation job, gates, register) -> the fake registry
publishes ModelRegistered to devhost's Event Grid topic, as Azure ML's system topic would -> release with
shadow and canary under client traffic to the fake endpoint -> drifted traffic, collected by the fake data
collector, makes the monitor raise drift -> rollback.
"""

from __future__ import annotations

import os
import random
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from cloudlab import AZUREML_SETTINGS, FAKES, POLICIES, ROOT, State, create_cloud

from cli.sampledata import generate, scoring_rows, to_csv_bytes
from cli.stack import Stack

sys.path.insert(0, str(ROOT / "tests" / "e2e"))
from fakeazure.scoring import score  # noqa: E402
from stacklab import Lab, run_input  # noqa: E402

MODEL, ENDPOINT = "credit", "scoring"
APP_DIR = ROOT  # what devhost serves: this project's function_app.py
BAKES = ("shadow", "canary 10%", "canary 50%", "canary 100%")
TERMINAL = ("Completed", "Failed", "Terminated")


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Lab, State]]:
    """The local stack with the app on the Azure ML platform, and the fake Azure it talks to."""
    root = tmp_path_factory.mktemp("cloud-stack")
    fake_dir = root / "azure"
    paths = list(dict.fromkeys([str(APP_DIR), str(FAKES), str(ROOT)]))
    env = {**AZUREML_SETTINGS, "FAKE_AZURE_STATE": str(fake_dir), "PYTHONPATH": os.pathsep.join(paths)}
    stack = Stack(root / "stack", app_dir=APP_DIR, virtual_clock=True, policy_dir=POLICIES, extra_env=env,
                  die_with_parent=True)
    info = stack.up()
    try:
        # the workspace's system topic delivers to devhost's topic; updates apply on the first poll after them
        state = create_cloud(fake_dir, info.storage, events_url=info.topic_endpoint, events_key=info.topic_key,
                             deployment_polls=1)
        yield Lab(info), state
    finally:
        stack.down()


def send(state: State, rows: list[dict[str, Any]], batch: int = 1, seed: int | None = None) -> list[tuple[int, str]]:
    """Clients POSTing to the endpoint's scoring URI, ``batch`` rows a request, each with its own request id.

    With ``seed``, the request ids come from it: the endpoint routes by request id, so the same seed sends the
    same requests to the same deployments on every run (a canary step's sample is then the same each time,
    not 80 coin flips that leave a 10 % step with too few requests once in a hundred runs)."""
    ids = random.Random(seed) if seed is not None else None
    return [score(state, ENDPOINT, {"input_data": rows[i:i + batch]},
                  request_id=str(uuid.UUID(int=ids.getrandbits(128), version=4) if ids else uuid.uuid4()))[::2]
            for i in range(0, len(rows), batch)]


def drive(lab: Lab, state: State, version: str) -> dict[str, Any]:
    """Walk the release of ``version`` to its end: client traffic in each bake, then its time on the virtual
    clock; between bakes the clock moves the orchestrator's polls along (the fake answers per poll, not per
    second, so moving time cannot outrun it)."""
    driven: set[tuple[str, str]] = set()
    seed = 100
    for _ in range(600):  # bounded
        release = next((i for i in lab.instances(f"release-{MODEL}-") if str(run_input(i).get("version")) == version),
                       None)
        if release is not None and release["runtimeStatus"] in TERMINAL:
            return release
        custom = (release or {}).get("customStatus") or {}
        stage = custom.get("stage")
        until = next((s.get("detail", {}).get("bake_until") for s in custom.get("stages", [])
                      if s.get("name") == stage), None)
        if release is not None and stage in BAKES and until:
            if (stage, until) not in driven:
                driven.add((stage, until))
                seed += 1
                answered = send(state, scoring_rows(80, seed=seed), seed=seed)
                assert all(status == 200 for status, _ in answered), answered
                lab.advance(5 * 60 + 1)
        else:
            lab.advance(10)
        time.sleep(0.3)
    raise AssertionError(f"the release of v{version} did not end\n{lab.log_tail()}")


def _why(run: dict[str, Any]) -> str:
    """A run's end as an operator would read it: status, output, and each stage with its analysis."""
    custom = run.get("customStatus") or {}
    stages = "\n".join(f"  {s.get('name')}: {s.get('state')} {s.get('detail')}" for s in custom.get("stages", []))
    return f"{run['instanceId']} {run['runtimeStatus']}: {run.get('output')}\n{custom.get('message')}\n{stages}"


def _endpoint(state: State) -> tuple[dict[str, int], dict[str, int]]:
    """The endpoint's applied traffic and mirror traffic, as Azure ML holds them."""
    props = (state.get("endpoint", ENDPOINT) or {})["rest"]["properties"]
    return dict(props.get("traffic") or {}), dict(props.get("mirrorTraffic") or {})


def _bodies(state: State, api: str) -> list[Any]:
    return [c["body"] for c in state.calls(api)]


def test_the_lifecycle_runs_end_to_end_on_the_azure_ml_platform(cloud: tuple[Lab, State]) -> None:
    lab, state = cloud

    # 1. data lands in Azurite: retrain (training job, evaluation job, gates, register), then Azure ML's
    #    ModelRegistered starts the first release, which goes straight to 100 %
    lab.land(MODEL, "first.csv", to_csv_bytes(generate(400, seed=1)))
    first = drive(lab, state, "1")
    assert first["runtimeStatus"] == "Completed" and first["output"]["verdict"] == "promoted", _why(first)
    assert _endpoint(state) == ({"credit-v1": 100}, {})

    # 2. better data lands: v2 is trained against the champion and released through shadow and canary
    lab.land(MODEL, "second.csv", to_csv_bytes(generate(400, seed=2)))
    second = drive(lab, state, "2")
    assert second["runtimeStatus"] == "Completed" and second["output"]["verdict"] == "promoted", _why(second)
    stages = [s["name"] for s in second["customStatus"]["stages"]]
    assert [s for s in stages if s in BAKES] == list(BAKES), stages
    assert _endpoint(state) == ({"credit-v1": 0, "credit-v2": 100}, {})

    retrains = [i for i in lab.instances(f"retrain-{MODEL}-") if i["runtimeStatus"] == "Completed"]
    assert sorted(i["output"]["version"] for i in retrains) == ["1", "2"]
    assert all(i["output"]["verdict"] == "registered" for i in retrains)
    delivered = _bodies(state, "eventgrid.delivery")
    assert [(d["subject"], d["status"]) for d in delivered] == [("models/credit:1", 200), ("models/credit:2", 200)]

    # 3. the traffic drifts: the monitor reads the collected inputs against v2's baseline and raises drift,
    #    and the model is rolled back to v1
    def drifted() -> None:
        send(state, scoring_rows(50, seed=uuid.uuid4().int % 10_000, drift=1.5), batch=5)

    rollback = lab.wait(lambda: next((i for i in lab.instances(f"rollback-{MODEL}-")
                                      if i["runtimeStatus"] in TERMINAL), None),
                        timeout=180, what="the drift rollback", tick=drifted)
    assert rollback["runtimeStatus"] == "Completed", rollback
    assert (rollback["output"]["from_version"], rollback["output"]["to_version"]) == ("2", "1"), rollback
    asked = run_input(rollback)
    # which features cross their threshold depends on the sampled rows; the evidence names at least one
    assert asked["source"] == "monitor" and any(f["drifted"] for f in asked["evidence"]["features"].values()), asked
    lab.wait(lambda: _endpoint(state)[0].get("credit-v1") == 100, timeout=60, what="v1 live again",
             tick=lambda: lab.advance(10))

    # what the app asked of Azure on the way: the user's job YAML and ours, MLflow models, collecting deployments,
    # metrics by deployment, the data collector's blobs, the baseline from the training job's artifacts
    jobs = [b["body"]["properties"] for b in _bodies(state, "ml.jobs.create_or_update") if "body" in b]
    assert sum("training_data" in p["inputs"] for p in jobs) == 2 and sum("heldout" in p["inputs"] for p in jobs) == 2
    created = _bodies(state, "ml.online_deployments.begin_create_or_update")
    assert [b["key"] for b in created][:2] == ["scoring/credit-v1", "scoring/credit-v2"]
    assert all(b["body"]["properties"]["dataCollector"]["collections"]["model_outputs"]["dataCollectionMode"]
               .lower() == "enabled" for b in created)
    assert {q["filter"] for q in _bodies(state, "metrics.query_resources")} >= {
        "deployment eq 'credit-v2'", "deployment eq 'credit-v2' and statusCodeClass eq '*'"}
    assert _bodies(state, "storage.ContainerClient.from_container_url")
    assert any(d["output_name"] is None for d in _bodies(state, "ml.jobs.download"))  # the baseline
