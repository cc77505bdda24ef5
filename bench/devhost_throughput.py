"""devhost throughput, measured in one run against durabletask-python's in-memory backend.

Workloads:
  (a) HelloSequence5: N orchestrations, each calling 5 activities in sequence.
  (b) Fan-out/fan-in: one orchestration fanning out 1,000 activities.

For each: orchestrations/s and activities/s for devhost (a real process, state in SQLite on
disk, driven over its HTTP API) and for durabletask's in-memory backend (gRPC, in this
process). For (a) also the replay ceiling: the SDK's own orchestrator handle replaying the
same orchestrations with no store and no I/O. The last line prints the ratios.

    python bench/devhost_throughput.py [--n 200] [--fan 1000]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from devhost.history import EventType, event  # noqa: E402
from devhost.orchestration import flatten  # noqa: E402
from devhost.testing import DevHostProcess  # noqa: E402

APP = ROOT / "tests" / "integration" / "apps" / "patterns" / "function_app.py"
CITIES = ["Tokyo", "Seattle", "London", "Paris", "Lima"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _say(msg: str) -> None:
    print(msg, flush=True)


# -- devhost --------------------------------------------------------------------------------
def bench_devhost(n: int, fan: int) -> dict[str, float]:
    """Both workloads on a devhost process with its state on disk."""
    with tempfile.TemporaryDirectory() as tmp:
        host = DevHostProcess(APP, Path(tmp) / "state", env={"PATTERNS_COUNTER_DIR": tmp})
        host.start()
        try:
            host.start_orchestration("sequence5", instance_id="warmup")
            host.wait_for("warmup")
            _say(f"  devhost (a): starting {n} HelloSequence5 orchestrations")
            t0 = time.perf_counter()
            with ThreadPoolExecutor(8) as pool:
                list(pool.map(lambda i: host.start_orchestration("sequence5", instance_id=f"seq-{i:05d}"), range(n)))
            done = 0
            for _ in range(100_000):  # bounded
                resp = host.durable("GET", "instances", params={"instanceIdPrefix": "seq-",
                                                                 "runtimeStatus": "Completed"})
                done = len(resp.json())
                if done >= n:
                    break
                time.sleep(0.02)
            seq_s = time.perf_counter() - t0
            _say(f"  devhost (a): {done} completed in {seq_s:.2f}s")
            _say(f"  devhost (b): one orchestration fanning out {fan} activities")
            t0 = time.perf_counter()
            iid = host.start_orchestration("fan_out", fan, instance_id="fan")
            status = host.wait_for(iid, timeout=600)
            fan_s = time.perf_counter() - t0
            assert status["output"] == sum(i * i for i in range(fan)), status
            _say(f"  devhost (b): completed in {fan_s:.2f}s")
        finally:
            host.stop()
    return {"seq_orch_s": n / seq_s, "seq_act_s": 5 * n / seq_s, "fan_s": fan_s, "fan_act_s": fan / fan_s}


# -- durabletask in-memory backend ------------------------------------------------------------
def bench_durabletask(n: int, fan: int) -> dict[str, float]:
    """Both workloads on durabletask's in-memory backend (the named peer)."""
    from durabletask import client as dt_client
    from durabletask import worker as dt_worker
    from durabletask.testing import create_test_backend

    for name in ("durabletask-worker", "durabletask-client", "durabletask-backend", "durabletask"):
        logging.getLogger(name).setLevel(logging.ERROR)
    port = _free_port()
    backend = create_test_backend(port=port)
    w = dt_worker.TaskHubGrpcWorker(host_address=f"localhost:{port}")

    def say_hello(ctx, city: str) -> str:  # type: ignore[no-untyped-def]
        return f"Hello {city}!"

    def square(ctx, i: int) -> int:  # type: ignore[no-untyped-def]
        return i * i

    def sequence5(ctx, _):  # type: ignore[no-untyped-def]
        out = []
        for city in CITIES:
            out.append((yield ctx.call_activity(say_hello, input=city)))
        return out

    def fan_out(ctx, count: int):  # type: ignore[no-untyped-def]
        results = yield dt_task.when_all([ctx.call_activity(square, input=i) for i in range(count)])
        return sum(results)

    from durabletask import task as dt_task

    w.add_orchestrator(sequence5)
    w.add_orchestrator(fan_out)
    w.add_activity(say_hello)
    w.add_activity(square)
    w.start()
    c = dt_client.TaskHubGrpcClient(host_address=f"localhost:{port}")
    try:
        wid = c.schedule_new_orchestration(sequence5, instance_id="warmup")
        c.wait_for_orchestration_completion(wid, timeout=60)
        _say(f"  durabletask (a): starting {n} HelloSequence5 orchestrations")
        t0 = time.perf_counter()
        ids = [c.schedule_new_orchestration(sequence5, instance_id=f"seq-{i:05d}") for i in range(n)]
        for iid in ids:
            state = c.wait_for_orchestration_completion(iid, timeout=600)
            assert state is not None and state.runtime_status.name == "COMPLETED", state
        seq_s = time.perf_counter() - t0
        _say(f"  durabletask (a): completed in {seq_s:.2f}s")
        _say(f"  durabletask (b): one orchestration fanning out {fan} activities")
        t0 = time.perf_counter()
        fid = c.schedule_new_orchestration(fan_out, input=fan, instance_id="fan")
        state = c.wait_for_orchestration_completion(fid, timeout=600)
        fan_s = time.perf_counter() - t0
        assert state is not None and json.loads(state.serialized_output or "0") == sum(i * i for i in range(fan))
        _say(f"  durabletask (b): completed in {fan_s:.2f}s")
    finally:
        w.stop()
        backend.stop()
    return {"seq_orch_s": n / seq_s, "seq_act_s": 5 * n / seq_s, "fan_s": fan_s, "fan_act_s": fan / fan_s}


# -- the replay ceiling -------------------------------------------------------------------------
def bench_replay_ceiling(n: int) -> dict[str, float]:
    """HelloSequence5 driven by the SDK's handle alone: every episode replays the whole history."""
    sys.path.insert(0, str(APP.parent))
    import importlib

    app_module = importlib.import_module("function_app")
    handle = next(f.get_user_function() for f in app_module.app.get_functions()
                  if f.get_function_name() == "sequence5")
    now = datetime.now(UTC)
    t0 = time.perf_counter()
    for i in range(n):
        history = [event(EventType.ORCHESTRATOR_STARTED, -1, now),
                   event(EventType.EXECUTION_STARTED, -1, now, Name="sequence5", Input=None, Version="")]
        seen = 0
        for _ in range(10):  # at most 6 episodes
            state = json.loads(handle(json.dumps({"history": history, "input": None, "instanceId": f"r{i}",
                                                   "isReplaying": False, "parentInstanceId": None,
                                                   "upperSchemaVersion": 1})))
            if state["isDone"]:
                break
            actions = list(flatten(state["actions"]))
            new, seen = actions[seen:], len(actions)
            history.append(event(EventType.ORCHESTRATOR_COMPLETED, -1, now))
            history.append(event(EventType.ORCHESTRATOR_STARTED, -1, now))
            for action in new:
                seq = len([e for e in history if e["EventType"] == EventType.TASK_SCHEDULED])
                history.append(event(EventType.TASK_SCHEDULED, seq, now, Name=action["functionName"]))
                result = json.dumps(f"Hello {json.loads(action['input'])}!")
                history.append(event(EventType.TASK_COMPLETED, -1, now, TaskScheduledId=seq, Result=result))
        assert state["output"] == [f"Hello {c}!" for c in CITIES], state
    elapsed = time.perf_counter() - t0
    return {"seq_orch_s": n / elapsed, "seq_act_s": 5 * n / elapsed}


def main() -> None:
    """Run all three and print the table and the ratios."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=200, help="HelloSequence5 orchestrations (default 200)")
    parser.add_argument("--fan", type=int, default=1000, help="activities in the fan-out (default 1000)")
    args = parser.parse_args()
    _say("replay ceiling (SDK handle, no store, no I/O)")
    ceiling = bench_replay_ceiling(args.n)
    _say("devhost (real process, SQLite on disk, HTTP API)")
    dh = bench_devhost(args.n, args.fan)
    _say("durabletask in-memory backend (gRPC, in process)")
    dt = bench_durabletask(args.n, args.fan)
    _say("")
    _say(f"{'workload':<34}{'devhost':>12}{'durabletask':>14}{'ceiling':>10}")
    _say(f"{'(a) HelloSequence5 orchestrations/s':<34}{dh['seq_orch_s']:>12.1f}{dt['seq_orch_s']:>14.1f}"
         f"{ceiling['seq_orch_s']:>10.1f}")
    _say(f"{'(a) HelloSequence5 activities/s':<34}{dh['seq_act_s']:>12.1f}{dt['seq_act_s']:>14.1f}"
         f"{ceiling['seq_act_s']:>10.1f}")
    _say(f"{'(b) fan-out 1 orchestration in s':<34}{dh['fan_s']:>12.2f}{dt['fan_s']:>14.2f}{'':>10}")
    _say(f"{'(b) fan-out activities/s':<34}{dh['fan_act_s']:>12.1f}{dt['fan_act_s']:>14.1f}{'':>10}")
    _say(f"ratios: (a) devhost/durabletask = {dh['seq_orch_s'] / dt['seq_orch_s']:.2f}x, "
         f"(b) devhost/durabletask = {dh['fan_act_s'] / dt['fan_act_s']:.2f}x, "
         f"(a) devhost/replay ceiling = {dh['seq_orch_s'] / ceiling['seq_orch_s']:.2f}")


if __name__ == "__main__":
    main()
