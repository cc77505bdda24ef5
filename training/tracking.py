"""Shared by the local platform and the jobs it runs: one MLflow store on one machine, created once."""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def tracking_lock(state_dir: Path) -> Iterator[None]:
    """An exclusive lock around MLflow schema creation and experiment lookup.

    MLflow migrates a SQLite store on first use; the host and a job doing it at once would race.
    """
    with open(Path(state_dir) / "mlflow.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
