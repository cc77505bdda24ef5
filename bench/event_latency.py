"""Event latency: a blob lands in Azurite -> the orchestration it starts is Running.

Starts Azurite (``azurite-blob``, in memory) and devhost (a real process, real clock, its
state in SQLite on disk) on the events fixture app, with one blob subscription to
``start_for_blob``; that Event Grid function starts ``await_approval`` through the Durable
client with the instance id ``blob-<ETag>``. Then it uploads N blobs one after another and,
for each, measures from ``upload_blob`` returning to the Durable HTTP API reporting the
instance ``Running``. The path measured: blob watcher poll -> BlobCreated queued in SQLite ->
dispatcher -> function -> Durable client -> engine -> status.

    python bench/event_latency.py [--uploads 200] [--poll 0.25] [--max-poll 0.5] [--jitter | --quiet 3]

``--quiet S`` waits S seconds before each upload, so the watcher has backed off to ``--max-poll``
(DEVHOST_BLOB_POLL_MAX_SECONDS) when the blob lands: the latency after a quiet spell.
Prints p50, p95 and max (target: p95 < 1 s at the default intervals).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

from azure.storage.blob import BlobServiceClient

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from devhost.azurite import Azurite  # noqa: E402
from devhost.testing import DevHostProcess  # noqa: E402

APP = ROOT / "tests" / "integration" / "apps" / "events" / "function_app.py"
CONTAINER = "landing"
TIMEOUT_PER_UPLOAD = 15.0


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))]


def measure(uploads: int, poll: float, jitter: bool, max_poll: float = 0.5, quiet: float = 0.0) -> list[float]:
    """Seconds from each upload to its orchestration Running.

    Uploads follow one another as soon as the previous one is Running, which locks them to the
    watcher's poll cycle (each waits almost a whole interval: the worst case). With ``jitter``
    each upload first waits a random fraction of the interval, as independent arrivals would.
    """
    rng = random.Random(42)
    with tempfile.TemporaryDirectory(prefix="event-latency-") as tmp, Azurite(in_memory=True) as azurite:
        work = Path(tmp)
        subs = work / "eventgrid.subscriptions.json"
        subs.write_text(json.dumps([{"name": "landing", "destination": {"function": "start_for_blob"},
                                     "source": {"type": "blob", "connection": "AzureWebJobsStorage",
                                                "containers": [CONTAINER]},
                                     "filter": {"includedEventTypes": ["Microsoft.Storage.BlobCreated"]}}]))
        host = DevHostProcess(APP, work / "state", env={
            "AzureWebJobsStorage": azurite.connection_string, "DEVHOST_SUBSCRIPTIONS": str(subs),
            "DEVHOST_BLOB_POLL_SECONDS": str(poll), "DEVHOST_BLOB_POLL_MAX_SECONDS": str(max_poll),
            "EVENTS_OUT_DIR": str(work / "out")})
        container = BlobServiceClient.from_connection_string(azurite.connection_string).get_container_client(CONTAINER)
        container.create_container()
        host.start()
        try:
            latencies = []
            for i in range(uploads):
                if jitter:
                    time.sleep(rng.uniform(0, poll))
                if quiet:
                    time.sleep(quiet + rng.uniform(0, max_poll))
                blob = container.get_blob_client(f"model-{i % 7}/part-{i:04d}.csv")
                etag = blob.upload_blob(f"x,y\n{i},{i * 2}\n".encode())["etag"]
                landed = time.perf_counter()
                instance_id = "blob-" + etag.strip('"')
                deadline = landed + TIMEOUT_PER_UPLOAD
                while True:
                    status = host.status(instance_id)
                    if status is not None and status["runtimeStatus"] == "Running":
                        latencies.append(time.perf_counter() - landed)
                        break
                    if time.perf_counter() > deadline:
                        raise TimeoutError(f"{instance_id} not Running {TIMEOUT_PER_UPLOAD}s after upload {i}: "
                                           f"{status}\n{host.log_tail()}")
                    time.sleep(0.005)
            return latencies
        finally:
            host.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uploads", type=int, default=200)
    parser.add_argument("--poll", type=float, default=0.25, help="DEVHOST_BLOB_POLL_SECONDS (default 0.25)")
    parser.add_argument("--max-poll", type=float, default=0.5,
                        help="DEVHOST_BLOB_POLL_MAX_SECONDS, the backed-off interval (default 0.5)")
    parser.add_argument("--jitter", action="store_true", help="random arrival times instead of back-to-back uploads")
    parser.add_argument("--quiet", type=float, default=0.0,
                        help="seconds of quiet before each upload (the watcher backs off meanwhile)")
    args = parser.parse_args()
    latencies = measure(args.uploads, args.poll, args.jitter, args.max_poll, args.quiet)
    p50, p95 = percentile(latencies, 50), percentile(latencies, 95)
    arrivals = (f"each after {args.quiet:g} s of quiet" if args.quiet else "random arrivals" if args.jitter
                else "back-to-back uploads (locked to the poll cycle)")
    print(f"blob upload -> orchestration Running, {len(latencies)} uploads, {arrivals}, "
          f"poll interval {args.poll:.2f} s, backing off to {args.max_poll:.2f} s")
    print(f"  p50 {p50 * 1000:7.1f} ms")
    print(f"  p95 {p95 * 1000:7.1f} ms   (target < 1000 ms: {'met' if p95 < 1.0 else 'NOT met'})")
    print(f"  max {max(latencies) * 1000:7.1f} ms   mean {statistics.fmean(latencies) * 1000:.1f} ms")
    return 0 if p95 < 1.0 else 1


if __name__ == "__main__":
    sys.exit(main())
