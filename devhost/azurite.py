"""Start and stop Azurite's blob service (and, when asked, its queue service) for tests and the command line.

Azurite is the real Azure Storage API, run locally (npm package ``azurite``, a
devDependency in ``package.json``). ``Azurite`` starts ``azurite-blob`` on 127.0.0.1 in its
own process group, so stopping it never leaves an orphan (``queue=True`` starts ``azurite-queue``
next to it, for queue triggers and the blob trigger's poison queue); it uses a temporary folder (or
``--inMemoryPersistence``) unless given a location. ``python -m devhost.azurite`` runs one in
the foreground and prints its connection string.

The account and key are Azurite's documented development account, not secrets:
https://learn.microsoft.com/azure/storage/common/storage-use-azurite#http-connection-strings
"""

from __future__ import annotations

import argparse
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType

from .process import ProcessError, ServerProcess, free_port, port_open, spawn, wait_ready

ACCOUNT = "devstoreaccount1"
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
DEFAULT_PORT = 10000  # what `UseDevelopmentStorage=true` points at
_ROOT = Path(__file__).resolve().parents[1]


class AzuriteError(ProcessError):
    """Azurite is missing or did not start; the message says what to do."""


DEFAULT_QUEUE_PORT = 10001


def connection_string(port: int = DEFAULT_PORT, host: str = "127.0.0.1", queue_port: int | None = None) -> str:
    """The connection string of a local Azurite blob service (the development account), with its queue
    endpoint when ``queue_port`` is given."""
    queue = f"QueueEndpoint=http://{host}:{queue_port}/{ACCOUNT};" if queue_port else ""
    return (f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
            f"BlobEndpoint=http://{host}:{port}/{ACCOUNT};{queue}")


def find_executable(name: str = "azurite-blob") -> Path:
    """``azurite-blob`` (or ``azurite-queue``) from the project's node_modules, else from PATH."""
    local = _ROOT / "node_modules" / ".bin" / name
    if local.exists():
        return local
    found = shutil.which(name)
    if found:
        return Path(found)
    raise AzuriteError(f"{name} not found: run `npm install --no-audit --no-fund` in {_ROOT}")


def blob_command(port: int, location: Path | None, silent: bool = True) -> list[str]:
    """The ``azurite-blob`` command line: 127.0.0.1 only, telemetry off (with it on, Azurite tries to reach
    the internet and ignores SIGTERM), data in ``location`` (None: in memory)."""
    cmd = [str(find_executable()), "--blobHost", "127.0.0.1", "--blobPort", str(port), "--skipApiVersionCheck",
           "--loose", "--disableTelemetry"]
    cmd += ["--inMemoryPersistence"] if location is None else ["--location", str(location)]
    return cmd + (["--silent"] if silent else [])


def queue_command(port: int, location: Path | None, silent: bool = True) -> list[str]:
    """The ``azurite-queue`` command line, with the same options as ``blob_command``."""
    cmd = [str(find_executable("azurite-queue")), "--queueHost", "127.0.0.1", "--queuePort", str(port),
           "--skipApiVersionCheck", "--loose", "--disableTelemetry"]
    cmd += ["--inMemoryPersistence"] if location is None else ["--location", str(location)]
    return cmd + (["--silent"] if silent else [])


class Azurite:
    """One ``azurite-blob`` process (and one ``azurite-queue`` with ``queue=True``); use as a context manager
    or call start/stop."""

    def __init__(self, port: int | None = None, location: Path | None = None, in_memory: bool = False,
                 log_path: Path | None = None, queue: bool = False, queue_port: int | None = None) -> None:
        self.port = port or free_port()
        self.queue_port = (queue_port or free_port()) if queue else None
        self.in_memory = in_memory
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if location is None and not in_memory:
            self._tmp = tempfile.TemporaryDirectory(prefix="azurite-")
            location = Path(self._tmp.name)
        self.location = location
        self.log_path = log_path
        self._server = ServerProcess(log_path)
        self._server.name = "azurite-blob"
        self._queue_server: ServerProcess | None = None
        if queue:
            self._queue_server = ServerProcess(log_path.with_suffix(".queue.log") if log_path else None)
            self._queue_server.name = "azurite-queue"

    @property
    def connection_string(self) -> str:
        """Connection string for this instance."""
        return connection_string(self.port, queue_port=self.queue_port)

    @property
    def blob_endpoint(self) -> str:
        """http://127.0.0.1:<port>/devstoreaccount1"""
        return f"http://127.0.0.1:{self.port}/{ACCOUNT}"

    def start(self, timeout: float = 60) -> Azurite:
        """Start the process and wait until the port accepts connections."""
        if not self.in_memory:
            assert self.location is not None
            self.location.mkdir(parents=True, exist_ok=True)
        cmd = blob_command(self.port, None if self.in_memory else self.location, silent=self.log_path is None)
        queue = self._queue_server
        if queue is not None and self.queue_port is not None:  # started first, so both get ready at once
            qcmd = queue_command(self.queue_port, None if self.in_memory else self.location,
                                 silent=self.log_path is None)
            queue.proc = spawn(qcmd, queue.log_path, None, None, die_with_parent=queue.die_with_parent)
        try:
            self._server.launch(cmd, None, None, lambda: port_open(self.port), timeout)
        except ProcessError as exc:
            if queue is not None:
                queue.stop()
            raise AzuriteError(f"{exc} (is port {self.port} in use?)") from exc
        if queue is not None and queue.proc is not None and self.queue_port is not None:
            qport, qproc = self.queue_port, queue.proc
            try:
                wait_ready("azurite-queue", qproc.poll, lambda: port_open(qport), timeout, queue.log_path)
            except ProcessError as exc:
                self.stop()
                raise AzuriteError(f"{exc} (is port {qport} in use?)") from exc
        return self

    @property
    def proc(self) -> subprocess.Popen[bytes] | None:
        """The running azurite-blob process (None when stopped)."""
        return self._server.proc

    def stop(self) -> None:
        """SIGTERM the process groups, SIGKILL after 10 s; remove the temporary folder."""
        if self._queue_server is not None:
            self._queue_server.stop()
        self._server.stop()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> Azurite:
        return self.start() if self.proc is None else self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    """``python -m devhost.azurite``: run Azurite's blob service until Ctrl-C."""
    parser = argparse.ArgumentParser(prog="python -m devhost.azurite", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="blob port (default 10000; 0 picks one)")
    parser.add_argument("--location", type=Path, default=None, help="data folder (default: in memory)")
    parser.add_argument("--queue", action="store_true", help="also run the queue service (queue triggers)")
    parser.add_argument("--queue-port", type=int, default=DEFAULT_QUEUE_PORT,
                        help="queue port with --queue (default 10001; 0 picks one)")
    args = parser.parse_args(argv)
    azurite = Azurite(port=args.port or None, location=args.location, in_memory=args.location is None,
                      queue=args.queue, queue_port=args.queue_port or None)
    try:
        azurite.start()
    except AzuriteError as exc:
        print(f"devhost.azurite: {exc}", file=sys.stderr)
        return 2
    print(f"Azurite blob service on {azurite.blob_endpoint}")
    if azurite.queue_port:
        print(f"Azurite queue service on http://127.0.0.1:{azurite.queue_port}/{ACCOUNT}")
    print(f"AzureWebJobsStorage={azurite.connection_string}", flush=True)
    stop = False

    def _stop(signum: int, frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    while not stop and azurite.proc is not None and azurite.proc.poll() is None:
        time.sleep(0.2)
    azurite.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
