"""``mlops demo``: the whole lifecycle on sample data, in real time, on the local stack.

  1. first data lands: v1 is trained, gated, registered, released and promoted;
  2. better data lands: v2 goes through shadow and the canary steps under live scoring
     traffic, and is promoted;
  3. the traffic drifts: the monitor raises drift, and the model is rolled back to v1;
  4. labels arrive for v1's answers and contradict them: its accuracy on ground truth decays, the monitor raises
     ModelPerformanceDegraded, and a retrain on the newest data follows, released through the canary steps;
  5. a broken dataset lands and is rejected by validation;
  6. a regression model someone else wrote (examples/house-prices: its own job YAML and train.py) lands
     its first data: trained by its job, gated on RMSE and R², registered and released.

Short bake times come from the demo policy (policies/credit.yaml), not a virtual clock.
Each stage is printed as it happens; a summary table closes. Returns False if any step of
the story did not happen as expected.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from .sampledata import generate, scoring_rows, to_csv_bytes
from .stack import LANDING_CONTAINER, LOCAL_OPERATOR, Stack, StackInfo, call

MODEL = "credit"
LABELLED = 80  # answers labelled in step 4 (the policy's performance check needs 50)
REGRESSOR = "house-prices"  # examples/house-prices, through policies/house-prices.yaml
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@dataclass
class Step:
    """One expectation of the story and how it ended."""

    title: str
    model: str = MODEL
    run: str = ""
    version: str = ""
    verdict: str = ""
    seconds: float = 0.0
    ok: bool = False


class Traffic:
    """Live scoring traffic in a background thread (bounded; stops by itself)."""

    def __init__(self, info: StackInfo, endpoint: str, max_requests: int = 20_000) -> None:
        from adapters.gateway_client import GatewayClient

        self.client = GatewayClient(info.gateway_url, info.gateway_key)
        self.endpoint = endpoint
        self.drift = 0.0
        self.sent = 0
        self.max_requests = max_requests
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        """Start sending."""
        self._thread.start()

    def stop(self) -> None:
        """Stop sending."""
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        seed = 1000
        while not self._stop.is_set() and self.sent < self.max_requests:
            seed += 1
            for row in scoring_rows(10, seed=seed, drift=self.drift):
                try:
                    self.client.score_via_endpoint(self.endpoint, [row])
                    self.sent += 1
                except Exception:  # the endpoint may not be deployed yet; keep trying, slowly
                    time.sleep(0.5)
            time.sleep(0.05)


class Story:
    """Drives the demo and prints what happens."""

    def __init__(self, info: StackInfo, console: Console) -> None:
        self.info = info
        self.console = console
        self.printed: set[tuple[str, str, str]] = set()
        self.steps: list[Step] = []
        self.before: dict[str, set[str]] = {}

    def runs(self, kind: str, model: str = MODEL) -> list[dict[str, Any]]:
        """A model's runs of one kind, newest first."""
        resp = call(self.info, "GET", "runs", params={"model": model, "kind": kind, "top": 50})
        resp.raise_for_status()
        return list(resp.json()["runs"])

    def detail(self, run_id: str) -> dict[str, Any]:
        """One run, with its stages."""
        return dict(call(self.info, "GET", f"runs/{run_id}").json())

    def _report(self, run: dict[str, Any]) -> None:
        for stage in run.get("stages", []):
            key = (run["id"], stage["name"], stage["state"])
            if stage["state"] in ("running", "succeeded", "failed", "skipped") and key not in self.printed:
                self.printed.add(key)
                colour = {"succeeded": "green", "failed": "red", "running": "cyan", "skipped": "dim"}[stage["state"]]
                extra = ""
                if stage["name"].startswith(("canary", "shadow")) and stage["state"] == "running":
                    extra = f"  traffic {run.get('traffic', {}).get('traffic')}"
                if stage["state"] == "failed":
                    extra = f"  {run.get('message') or ''}"
                self.console.print(f"  [{colour}]{run['kind']:>8} {stage['name']:<14} {stage['state']}[/]{extra}")

    def wait_for(self, kind: str, known: set[str], timeout: float,
                 on_tick: Callable[[], None] | None = None, model: str = MODEL) -> dict[str, Any] | None:
        """Wait for a new run of ``kind`` to finish, printing its stages as they happen."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            fresh = [r for r in self.runs(kind, model) if r["id"] not in known]
            if fresh:
                run = self.detail(fresh[-1]["id"])
                self._report(run)
                if run["status"] in ("Completed", "Failed", "Terminated"):
                    return run
            if on_tick:
                on_tick()
            time.sleep(0.5)
        return None

    def step(self, title: str, kind: str, expect: Callable[[dict[str, Any]], bool], timeout: float,
             action: Callable[[], None] | None, on_tick: Callable[[], None] | None = None,
             model: str = MODEL) -> dict[str, Any] | None:
        """Do an action, wait for the run it causes, and check it ended as the story says.

        A step without an action waits for a run the previous action caused (a release after a
        retrain), so it compares with what existed before that action.
        """
        self.console.rule(title)
        if action is not None:
            self.before = {k: {r["id"] for r in self.runs(k, model)} for k in ("retrain", "release", "rollback")}
        known = self.before[kind]
        started = time.monotonic()
        if action is not None:
            action()
        run = self.wait_for(kind, known, timeout, on_tick, model)
        step = Step(title, model=model, seconds=time.monotonic() - started)
        if run is not None:
            step.run, step.version = run["id"], str(run.get("version") or "")
            step.verdict = run.get("verdict") or run["status"]
            step.ok = expect(run)
        else:
            step.verdict = f"no {kind} run finished within {timeout:.0f} s"
        self.steps.append(step)
        self.console.print(("[green]✔ " if step.ok else "[red]✘ ") + f"{title}: {step.verdict}[/]")
        return run


def run_demo(state: Path, console: Console, keep: bool = False) -> bool:
    """Run the story on a fresh stack in ``state``; True if every step happened as expected."""
    if state.exists():
        console.print(f"removing the previous demo's state in {state}")
        Stack(state).down()
        shutil.rmtree(state)
    with console.status("starting the local stack (Azurite, scoring gateway, devhost)…"):
        stack = Stack(state, extra_env=LOCAL_OPERATOR)
        info = stack.up()
    console.print(f"dashboard: {info.devhost_url}/api/dashboard?code={info.function_key}")
    blobs = _blobs(info)
    story = Story(info, console)
    traffic = Traffic(info, "scoring")
    try:
        def land(name: str, content: bytes, model: str = MODEL) -> Callable[[], None]:
            blob = blobs.get_blob_client(LANDING_CONTAINER, f"{model}/{name}")
            return lambda: blob.upload_blob(content, overwrite=True)

        story.step("1. first data lands: train, gate, register v1", "retrain",
                   lambda r: r["status"] == "Completed", 180,
                   land("day1.csv", to_csv_bytes(generate(800, seed=1, label_noise=0.1))))
        story.step("   v1 is released (first release: straight to 100 %)", "release",
                   lambda r: r.get("verdict") == "promoted", 180, None)
        traffic.start()
        story.step("2. better data lands: train v2", "retrain", lambda r: r["status"] == "Completed", 180,
                   land("day2.csv", to_csv_bytes(generate(1500, seed=2))))
        story.step("   v2 goes through shadow and the canary steps under live traffic", "release",
                   lambda r: r.get("verdict") == "promoted", 240, None)

        def drift() -> None:
            traffic.drift = 3.0

        story.step("3. the traffic drifts: the monitor raises drift and rolls back to v1", "rollback",
                   lambda r: r.get("verdict") == "rolled back", 180, drift)
        traffic.drift = 0.0

        def wrong_labels() -> None:
            """Answers a client got, each with its request id, and labels that contradict every one of them."""
            from adapters.gateway_client import GatewayClient

            client, lines = GatewayClient(info.gateway_url, info.gateway_key), ["request_id,label"]
            for i, row in enumerate(scoring_rows(LABELLED, seed=7)):
                request_id = f"demo-label-{i}"
                (answer,), _ = client.score_via_endpoint("scoring", [row], request_id)
                lines.append(f"{request_id},{1 - int(answer)}")
            blobs.get_blob_client(LANDING_CONTAINER, f"feedback/{MODEL}/labels.csv").upload_blob(
                ("\n".join(lines) + "\n").encode(), overwrite=True)

        story.step("4. labels contradict v1's answers: its accuracy on ground truth decays and a retrain follows",
                   "retrain", lambda r: r["status"] == "Completed", 240, wrong_labels)
        story.step("   the retrained version goes through shadow and the canary steps", "release",
                   lambda r: r.get("verdict") == "promoted", 240, None)
        story.step("5. a broken dataset lands: rejected by validation", "retrain",
                   lambda r: r["status"] == "Failed" and "missing columns" in str(r.get("output")), 120,
                   land("broken.csv", to_csv_bytes(generate(500, seed=3, schema_break=True))))
        houses = _house_prices()
        story.step("6. a regression model from its own job (house prices): train, gate on RMSE and R², register",
                   "retrain", lambda r: r["status"] == "Completed", 240,
                   land("houses.csv", houses.to_csv(houses.rows(800, 1)).encode(), REGRESSOR), model=REGRESSOR)
        story.step("   house-prices v1 is released", "release", lambda r: r.get("verdict") == "promoted", 180, None,
                   model=REGRESSOR)
    finally:
        traffic.stop()
        table = Table("step", title="summary")
        table.add_column("run", no_wrap=True)  # whole, so it can be pasted into `mlops run <id>`
        for name in ("model", "version", "verdict", "duration"):
            table.add_column(name, no_wrap=True)
        for s in story.steps:
            table.add_row(("[green]✔ " if s.ok else "[red]✘ ") + s.title.strip(), s.run, s.model, s.version,
                          s.verdict, f"{s.seconds:.0f} s")
        console.print(table)
        console.print(f"scoring requests sent: {traffic.sent}")
        console.print(f"dashboard: {info.devhost_url}/api/dashboard?code={info.function_key}")
        if not keep:
            stack.down()
    return len(story.steps) == 10 and all(s.ok for s in story.steps)


def _house_prices() -> Any:
    """The example's own data generator (examples/house-prices/make_data.py)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("house_prices_data", EXAMPLES / "house-prices" / "make_data.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _blobs(info: StackInfo) -> Any:
    from azure.core.exceptions import ResourceExistsError
    from azure.storage.blob import BlobServiceClient

    service = BlobServiceClient.from_connection_string(info.storage)
    try:
        service.create_container(LANDING_CONTAINER)
    except ResourceExistsError:
        pass
    return service
