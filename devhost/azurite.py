"""Start and stop Azurite's blob service for tests and the command line.

Azurite is the real Azure Storage API, run locally (npm package ``azurite``, a
devDependency in ``package.json``). ``Azurite`` starts ``azurite-blob`` on 127.0.0.1 in its
own process group, so stopping it never leaves an orphan; it uses a temporary folder (or
``--inMemoryPersistence``) unless given a location. ``python -m devhost.azurite`` runs one in
the foreground and prints its connection string.

The account and key are Azurite's documented development account, not secrets:
https://learn.microsoft.com/azure/storage/common/storage-use-azurite#http-connection-strings
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType

ACCOUNT = "devstoreaccount1"
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
DEFAULT_PORT = 10000  # what `UseDevelopmentStorage=true` points at
_ROOT = Path(__file__).resolve().parents[1]


class AzuriteError(Exception):
    """Azurite is missing or did not start; the message says what to do."""


def connection_string(port: int = DEFAULT_PORT, host: str = "127.0.0.1") -> str:
    """The connection string of a local Azurite blob service (the development account)."""
    return (f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
            f"BlobEndpoint=http://{host}:{port}/{ACCOUNT};")


def find_executable() -> Path:
    """``azurite-blob`` from the project's node_modules, else from PATH."""
    local = _ROOT / "node_modules" / ".bin" / "azurite-blob"
    if local.exists():
        return local
    found = shutil.which("azurite-blob")
    if found:
        return Path(found)
    raise AzuriteError(f"azurite-blob not found: run `npm install --no-audit --no-fund` in {_ROOT}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Azurite:
    """One ``azurite-blob`` process; use as a context manager or call start/stop."""

    def __init__(self, port: int | None = None, location: Path | None = None, in_memory: bool = False,
                 log_path: Path | None = None) -> None:
        self.port = port or _free_port()
        self.in_memory = in_memory
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if location is None and not in_memory:
            self._tmp = tempfile.TemporaryDirectory(prefix="azurite-")
            location = Path(self._tmp.name)
        self.location = location
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def connection_string(self) -> str:
        """Connection string for this instance."""
        return connection_string(self.port)

    @property
    def blob_endpoint(self) -> str:
        """http://127.0.0.1:<port>/devstoreaccount1"""
        return f"http://127.0.0.1:{self.port}/{ACCOUNT}"

    def start(self, timeout: float = 60) -> Azurite:
        """Start the process and wait until the port accepts connections."""
        cmd = [str(find_executable()), "--blobHost", "127.0.0.1", "--blobPort", str(self.port),
               "--skipApiVersionCheck", "--loose", "--disableTelemetry"]
        if self.in_memory:
            cmd.append("--inMemoryPersistence")
        else:
            assert self.location is not None
            self.location.mkdir(parents=True, exist_ok=True)
            cmd += ["--location", str(self.location)]
        if self.log_path is None:
            cmd.append("--silent")
        log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115 - child's stdout
        try:
            # Its own session (process group): stop() signals the whole group, node children included.
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        finally:
            if log is not subprocess.DEVNULL:
                log.close()  # type: ignore[union-attr]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AzuriteError(f"azurite-blob exited with {self.proc.returncode} (port {self.port} in use?)")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise AzuriteError(f"azurite-blob did not listen on port {self.port} within {timeout}s")

    def stop(self) -> None:
        """SIGTERM the process group, SIGKILL after 10 s; remove the temporary folder."""
        if self.proc is not None:
            _signal_group(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                _signal_group(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
            self.proc = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> Azurite:
        return self.start() if self.proc is None else self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def _signal_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, sig)


def main(argv: list[str] | None = None) -> int:
    """``python -m devhost.azurite``: run Azurite's blob service until Ctrl-C."""
    parser = argparse.ArgumentParser(prog="python -m devhost.azurite", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="blob port (default 10000; 0 picks one)")
    parser.add_argument("--location", type=Path, default=None, help="data folder (default: in memory)")
    args = parser.parse_args(argv)
    azurite = Azurite(port=args.port or None, location=args.location, in_memory=args.location is None)
    try:
        azurite.start()
    except AzuriteError as exc:
        print(f"devhost.azurite: {exc}", file=sys.stderr)
        return 2
    print(f"Azurite blob service on {azurite.blob_endpoint}")
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
