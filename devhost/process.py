"""Local server processes: start one in its own process group, wait until it answers, stop the whole group.

One supervisor for everything the local tooling starts: devhost and the gateway in tests
(``ServerProcess``), Azurite (``devhost.azurite``) and the local stack (``cli.stack``), which
records pids and stops them from another process (``stop_groups``). Each child gets its own
session, so a signal to its group reaches its children too (node's workers, a model's threads),
and stopping never leaves an orphan.

A child can also be tied to its parent (``die_with_parent``): on Linux the kernel sends it SIGTERM
when the thread that started it ends, even by SIGKILL, so a killed test runner leaves nothing
behind. ``ServerProcess`` (the test fixtures, ``python -m devhost.azurite``) ties its child; the
local stack does not, since it must outlive ``mlops up``.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path

STOP_GRACE_SECONDS = 10.0
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


class ProcessError(RuntimeError):
    """A server process exited or did not get ready; the message carries the end of its log."""


def free_port() -> int:
    """A TCP port that was free a moment ago on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    """True if something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def spawn(cmd: list[str], log_path: Path | None, env: dict[str, str] | None = None,
          cwd: Path | None = None, die_with_parent: bool = False) -> subprocess.Popen[bytes]:
    """Start ``cmd`` in a session of its own, stdout and stderr appended to ``log_path`` (None: discarded).

    The log is created readable by its owner only: it carries what the server saw. ``die_with_parent``
    ties the child to the calling thread (see the module docstring).
    """
    log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600) if log_path else subprocess.DEVNULL
    try:
        return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=cwd, start_new_session=True,
                                preexec_fn=_tie_to_parent() if die_with_parent else None)
    finally:
        if log is not subprocess.DEVNULL:
            os.close(log)


def _tie_to_parent() -> Callable[[], None] | None:
    """A preexec_fn asking the kernel for SIGTERM when the parent goes (None where there is no prctl)."""
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    parent = os.getpid()

    def tie() -> None:  # runs in the child between fork and exec: only async-signal-safe calls
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the tie was made
            os.kill(os.getpid(), signal.SIGTERM)

    return tie


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie, reaped here if it is our child, counts as gone)."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: it exists
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def signal_group(pid: int, sig: int) -> None:
    """Send ``sig`` to the process group led by ``pid`` (nothing if it is gone)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def stop_groups(pids: Iterable[int], grace: float = STOP_GRACE_SECONDS) -> list[int]:
    """SIGTERM each group, SIGKILL what still runs after ``grace`` seconds; the pids that were running."""
    running = [pid for pid in pids if pid and alive(pid)]
    for pid in running:
        signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for pid in running:
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if alive(pid):
            signal_group(pid, signal.SIGKILL)
    return running


def log_tail(log_path: Path | None, lines: int = 40) -> str:
    """The end of a process log ("" when there is none)."""
    if log_path is None:
        return ""
    try:
        return "\n".join(log_path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def wait_ready(name: str, exit_code: Callable[[], int | str | None], ready: Callable[[], bool], timeout: float,
               log_path: Path | None) -> None:
    """Poll ``ready()`` until it holds; ProcessError if the process exits first (``exit_code()`` is not None)
    or ``timeout`` passes.

    ``ready`` may raise OSError (connection refused and the like, ``requests``' errors included) while
    the server is still starting.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        code = exit_code()
        if code is not None:
            raise ProcessError(f"{name} exited with {code}:\n{log_tail(log_path)}")
        try:
            if ready():
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise ProcessError(f"{name} did not start within {timeout}s:\n{log_tail(log_path)}")


class ServerProcess:
    """A server child process writing to a log file: start it, wait until it answers, stop or kill it.

    The child is tied to this process (``die_with_parent``): a killed test runner takes its servers along.
    """

    name = "the server"
    die_with_parent = True

    def __init__(self, log_path: Path | None) -> None:
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def launch(self, cmd: list[str], env: dict[str, str] | None, cwd: Path | None, ready: Callable[[], bool],
               timeout: float) -> None:
        """Start ``cmd`` and wait until ``ready()`` holds; a child that exits or never gets ready is an error."""
        proc = self.proc = spawn(cmd, self.log_path, env, cwd, die_with_parent=self.die_with_parent)
        try:
            wait_ready(self.name, proc.poll, ready, timeout, self.log_path)
        except ProcessError:
            self.stop()
            raise

    def log_tail(self, lines: int = 40) -> str:
        """The end of the process log."""
        return log_tail(self.log_path, lines)

    def stop(self, grace: float = STOP_GRACE_SECONDS) -> int | None:
        """SIGTERM the group and wait (SIGKILL after ``grace`` s); the exit code (None if it was not running)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            # Popen.wait, not stop_groups: it keeps the exit code, which a reap by pid would lose
            signal_group(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                signal_group(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        code = self.proc.returncode
        self.proc = None
        return code

    def kill(self) -> None:
        """SIGKILL the group: no shutdown code runs."""
        if self.proc is not None:
            signal_group(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.proc = None
