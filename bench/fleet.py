"""Fleet: N models landing data at once, on the whole local stack; what the control plane costs as N grows.

For each N (``--models 10,50``): start the local stack (cli/stack.py, virtual clock) with N
generated policies (one endpoint each; a first release has no live deployment, so it goes
deploy -> smoke -> promote), land sample data (cli/sampledata.py) for all N at once, and wait
until every model's retrain and release finished. Then seed the run index with ``--history``
synthetic finished runs and time the operator API. Prints, per N:

  * control-plane overhead per lifecycle: retrain + release wall time, minus the stages spent in
    the platform (train and evaluate jobs, registration, deployment, smoke requests), and the
    median duration of each stage;
  * p50/p95 stage-to-stage latency: from one stage's end to the next one's start, and from a
    retrain's end to its release's start (the ModelRegistered event chain);
  * operator API p95 over 30 calls each: runs list, run detail, model overview;
  * the monitor tick's work (drift checks + reconciler over N models, run in this process
    against the stack, the second of two ticks; the purge is left out: it runs at most hourly);
  * RSS of each process (devhost with its children, the gateway, Azurite);

and at the end the growth from the smallest to the largest N against linear. No thresholds:
a bench prints figures. Every wait is bounded (``--timeout`` per N).

    python bench/fleet.py [--models 10,50] [--history 10000] [--timeout 1800]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil
import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cli.sampledata import generate, to_csv_bytes  # noqa: E402
from cli.stack import Stack, StackInfo, call  # noqa: E402

POLICY = """model: {name}
label: label
data:
  required_columns: {{f0: float, f1: float, f2: float, f3: float, f4: float, f5: float, segment: str, label: int}}
  min_rows: 200
training: {{algorithm: logistic_regression, timeout_minutes: 60, poll_seconds: 1}}
gates:
  metrics:
    - {{name: accuracy_score, threshold: 0.6, max_regression: 0.1}}
release:
  endpoint: {name}
  smoke_requests: 5
  steps:
    - {{traffic_percent: 100, bake_minutes: 1}}
  health: {{max_error_rate: 0.05, max_p95_latency_ratio: 5.0, max_prediction_shift: 0.5, min_requests: 3}}
"""
# time in the platform (jobs, registry, endpoint), not in the control plane
JOB_STAGES = {"train", "evaluate", "register", "deploy", "smoke"}
FINISHED = {"Completed", "Failed", "Terminated"}


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (0 for no values)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))]


def _t(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None


def _instances(info: StackInfo, prefix: str) -> list[dict[str, Any]]:
    resp = requests.get(f"{info.devhost_url}/runtime/webhooks/durabletask/instances", timeout=60,
                        params={"code": info.system_key, "instanceIdPrefix": prefix})
    resp.raise_for_status()
    return list(resp.json())


def _wait(what: str, done: Callable[[], tuple[bool, str]], timeout: float) -> str:
    """Poll ``done`` until it holds or ``timeout`` passes; the last progress line (the figures cover what finished)."""
    deadline = time.monotonic() + timeout
    last = 0.0
    progress = ""
    while time.monotonic() < deadline:
        ok, progress = done()
        if ok:
            return progress
        if time.monotonic() - last > 10:
            print(f"    waiting for {what}: {progress}", flush=True)
            last = time.monotonic()
        time.sleep(1)
    print(f"    TIMEOUT: {what} not reached in {timeout:.0f} s ({progress}); measuring what finished", flush=True)
    return progress


def _rss(info: StackInfo) -> dict[str, float]:
    """MiB resident per stack process, each with its children (devhost's include running training jobs)."""
    out = {}
    for name, pid in info.pids.items():
        try:
            proc = psutil.Process(pid)
            procs = [proc, *proc.children(recursive=True)]
            out[name] = sum(p.memory_info().rss for p in procs if p.is_running()) / 2 ** 20
        except psutil.NoSuchProcess:
            out[name] = 0.0
    return out


def _lifecycle_figures(info: StackInfo) -> tuple[list[float], list[float], dict[str, list[float]]]:
    """(control-plane seconds per lifecycle, stage-to-stage gaps, seconds per stage) from the runs' custom status."""
    details: dict[str, dict[str, Any]] = {}
    for kind in ("retrain", "release"):
        for inst in _instances(info, f"{kind}-"):
            details[inst["instanceId"]] = inst
    per_model: dict[str, float] = {}
    gaps: list[float] = []
    ends: dict[str, datetime] = {}
    starts: dict[str, datetime] = {}
    per_stage: dict[str, list[float]] = {}
    for iid, inst in details.items():
        custom = inst.get("customStatus") or {}
        stages = [s for s in custom.get("stages", []) if s.get("started") and s.get("ended")]
        created, updated = _t(inst.get("createdTime")), _t(inst.get("lastUpdatedTime"))
        if not stages or created is None or updated is None:
            continue
        in_jobs = sum(((_t(s["ended"]) - _t(s["started"])).total_seconds()  # type: ignore[operator]
                       for s in stages if s["name"] in JOB_STAGES), 0.0)
        model = str(custom.get("model"))
        for stage in stages:
            per_stage.setdefault(stage["name"], []).append(
                (_t(stage["ended"]) - _t(stage["started"])).total_seconds())  # type: ignore[operator]
        per_model[model] = per_model.get(model, 0.0) + (updated - created).total_seconds() - in_jobs
        ordered = sorted(stages, key=lambda s: s["started"])
        gaps += [max(0.0, (_t(b["started"]) - _t(a["ended"])).total_seconds())  # type: ignore[operator]
                 for a, b in zip(ordered, ordered[1:], strict=False)]
        (ends if iid.startswith("retrain-") else starts)[model] = updated if iid.startswith("retrain-") else created
    gaps += [(starts[m] - ends[m]).total_seconds() for m in starts if m in ends]
    return list(per_model.values()), gaps, per_stage


def _seed_history(info: StackInfo, count: int) -> None:
    """``count`` synthetic finished runs in the run index, spread over the last 90 days."""
    from azure.storage.blob import BlobServiceClient

    from adapters.control_store import BlobControlStore
    from adapters.runtime import CONTROL_CONTAINER
    from mlops.run_index import RunEntry

    store = BlobControlStore(BlobServiceClient.from_connection_string(info.storage)
                             .get_container_client(CONTROL_CONTAINER))
    now = datetime.now(UTC)

    def write(i: int) -> None:
        created = now - timedelta(days=90) + timedelta(seconds=i * 90 * 86400 / max(count, 1))
        kind = ("retrain", "release", "rollback")[i % 3]
        store.record_run(RunEntry(f"{kind}-hist{i % 97}-{i:012x}", kind, f"hist{i % 97}", created.isoformat(),
                                  "Completed", "registered", message="synthetic",
                                  ended=(created + timedelta(minutes=9)).isoformat()))

    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(write, range(count)))


def _api_p95(info: StackInfo, path: str, calls: int = 30) -> float:
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        resp = call(info, "GET", path, timeout=120)
        times.append(time.perf_counter() - start)
        resp.raise_for_status()
    return percentile(times, 95) * 1000


def _listing_p95(info: StackInfo, calls: int = 30) -> float:
    """Milliseconds (p95) for the storage service alone to list one page of 50 index entries with their metadata:
    what the runs list costs below the API."""
    from azure.storage.blob import BlobServiceClient

    from adapters.runtime import CONTROL_CONTAINER

    container = BlobServiceClient.from_connection_string(info.storage).get_container_client(CONTROL_CONTAINER)
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        next(iter(container.list_blobs(name_starts_with="runs/all/", include=["metadata"],
                                       results_per_page=50).by_page()))
        times.append(time.perf_counter() - start)
    return percentile(times, 95) * 1000


def _monitor_tick(info: StackInfo, settings: dict[str, str]) -> float:
    """Seconds for the monitor's drift checks and reconciler over every model, run here against the stack."""
    os.environ.update(settings)
    from adapters import runtime
    from triggers.monitor import models_to_reconcile, scan_and_publish

    for name in dir(runtime):  # the composition root caches per process: this stack's, not the last one's
        getattr(getattr(runtime, name), "cache_clear", lambda: None)()
    seconds = []
    for _ in range(2):  # the first tick also pays this process's imports and the platform's set-up
        now = datetime.now(UTC)
        start = time.perf_counter()
        scan_and_publish(now)
        models_to_reconcile(now)
        seconds.append(time.perf_counter() - start)
    return seconds[-1]


def run_fleet(n: int, history: int, timeout: float) -> dict[str, Any]:
    """One fleet of ``n`` models, start to finish; its figures."""
    with tempfile.TemporaryDirectory(prefix=f"fleet-{n}-") as tmp:
        work = Path(tmp)
        policies = work / "policies"
        policies.mkdir()
        models = [f"fleet{i:03d}" for i in range(n)]
        for name in models:
            (policies / f"{name}.yaml").write_text(POLICY.format(name=name))
        stack = Stack(work / "stack", virtual_clock=True, policy_dir=policies, die_with_parent=True)
        print(f"  N={n}: starting the stack", flush=True)
        info = stack.up()
        try:
            from azure.storage.blob import BlobServiceClient

            landing = BlobServiceClient.from_connection_string(info.storage).get_container_client("landing")
            blobs = [(m, to_csv_bytes(generate(400, seed=i))) for i, m in enumerate(models)]
            started = time.monotonic()
            with ThreadPoolExecutor(max_workers=16) as pool:
                list(pool.map(lambda mb: landing.upload_blob(f"{mb[0]}/data.csv", mb[1], overwrite=True), blobs))
            print(f"  N={n}: landed data for {n} models", flush=True)

            def all_released() -> tuple[bool, str]:
                releases = [i for i in _instances(info, "release-") if i["runtimeStatus"] in FINISHED]
                retrains = [i for i in _instances(info, "retrain-") if i["runtimeStatus"] in FINISHED]
                failed = [i["instanceId"] for i in retrains if i["runtimeStatus"] != "Completed"]
                return (len(releases) + len(failed) >= n,
                        f"{len(retrains)}/{n} retrains, {len(releases)}/{n} releases finished")

            finished = _wait(f"{n} retrain -> release", all_released, timeout)
            wall = time.monotonic() - started
            rss = _rss(info)
            overhead, gaps, stages = _lifecycle_figures(info)
            print(f"  N={n}: seeding the run index with {history} finished runs", flush=True)
            _seed_history(info, history)
            run_id = _instances(info, "release-")[0]["instanceId"]
            api = {"runs list": _api_p95(info, "runs?top=50"), "run detail": _api_p95(info, f"runs/{run_id}"),
                   "model overview": _api_p95(info, f"models/{models[0]}")}
            api["storage listing of one page (no API)"] = _listing_p95(info)
            tick = _monitor_tick(info, stack.app_settings(info))
            return {"n": n, "wall": wall, "overhead": overhead, "gaps": gaps, "api": api, "tick": tick, "rss": rss,
                    "stages": stages, "finished": finished}
        finally:
            stack.down()


def main() -> None:
    """Run each fleet size and print its figures, then the growth from the smallest to the largest."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="10,50", help="comma-separated fleet sizes")
    parser.add_argument("--history", type=int, default=10000, help="synthetic finished runs in the index")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds to wait per fleet size")
    args = parser.parse_args()
    sizes = sorted({int(s) for s in args.models.split(",") if s.strip()})
    results = []
    for n in sizes:
        r = run_fleet(n, args.history, args.timeout)
        results.append(r)
        print(f"N={n}: {r['finished']} after {r['wall']:.1f} s wall")
        print(f"  control-plane overhead per lifecycle: median {statistics.median(r['overhead'] or [0]):.2f} s, "
              f"p95 {percentile(r['overhead'], 95):.2f} s ({len(r['overhead'])} models)")
        print("  stage medians: " + ", ".join(f"{k} {statistics.median(v):.1f} s" for k, v in r["stages"].items()))
        print(f"  stage-to-stage latency: p50 {percentile(r['gaps'], 50) * 1000:.0f} ms, "
              f"p95 {percentile(r['gaps'], 95) * 1000:.0f} ms ({len(r['gaps'])} gaps)")
        print("  operator API p95 with " + f"{args.history} runs indexed: "
              + ", ".join(f"{k} {v:.0f} ms" for k, v in r["api"].items()))
        print(f"  monitor tick (drift + reconciler, {n} models): {r['tick'] * 1000:.0f} ms")
        print("  RSS: " + ", ".join(f"{k} {v:.0f} MiB" for k, v in r["rss"].items()))
    if len(results) > 1:
        small, large = results[0], results[-1]
        linear = large["n"] / small["n"]

        def growth(key: Callable[[dict[str, Any]], float]) -> str:
            a, b = key(small), key(large)
            return f"{b / a:.2f}x" if a else "n/a"

        print(f"growth N={small['n']} -> N={large['n']} (linear would be {linear:.1f}x):")
        print(f"  wall {growth(lambda r: r['wall'])}, overhead per lifecycle "
              f"{growth(lambda r: statistics.median(r['overhead'] or [0]))}, stage gap p95 "
              f"{growth(lambda r: percentile(r['gaps'], 95))}, runs list p95 "
              f"{growth(lambda r: r['api']['runs list'])}, monitor tick {growth(lambda r: r['tick'])}, devhost RSS "
              f"{growth(lambda r: r['rss'].get('devhost', 0))}")


if __name__ == "__main__":
    main()
