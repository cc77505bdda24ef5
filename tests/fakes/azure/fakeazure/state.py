"""The fake cloud's state, shared by every process that loads the fakes: one SQLite file in a directory.

``FAKE_AZURE_STATE`` names the directory. It holds ``azure.db`` (the workspace, its resources as the REST
bodies Azure ML would store, the record of every call the app made, scoring requests for the metrics) and
``artifacts/<job>/`` (what each fake job wrote). The test process opens the same directory to send traffic,
break a deployment or read what the app sent.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ENV = "FAKE_AZURE_STATE"

_SCHEMA = """
create table if not exists workspace (id integer primary key check (id = 1), body text not null);
create table if not exists resources (kind text not null, key text not null, body text not null,
                                      primary key (kind, key));
create table if not exists calls (seq integer primary key autoincrement, at text not null, pid integer not null,
                                  api text not null, body text not null);
create table if not exists requests (seq integer primary key autoincrement, at text not null, endpoint text not null,
                                     deployment text not null, status integer not null, latency_ms real not null,
                                     mirrored integer not null);
create table if not exists flags (key text primary key, value text not null);
"""


@dataclass(frozen=True)
class Workspace:
    """The Azure ML workspace the fake cloud has, and where its storage really lives (Azurite)."""

    subscription_id: str
    resource_group: str
    workspace: str
    region: str
    storage: str  # Azurite's connection string: every blob the app reads or writes goes there
    datastore_account: str = "mlopsworkspace"
    datastore_container: str = "azureml-blobstore-5f1c2e2a-0000-4000-8000-000000000001"
    events_url: str = ""  # where the workspace's Event Grid system topic delivers (devhost's topic endpoint)
    events_key: str = ""
    job_polls: int = 2  # a job completes after this many polls
    deployment_polls: int = 2  # a deployment or endpoint update is done after this many polls

    @property
    def arm_id(self) -> str:
        """The workspace's resource id."""
        return (f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}/providers/"
                f"Microsoft.MachineLearningServices/workspaces/{self.workspace}")


def now() -> str:
    """UTC now, ISO 8601."""
    return datetime.now(UTC).isoformat()


class State:
    """Opens the shared SQLite file; every method is one short transaction (processes and threads share it)."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.path = self.dir / "azure.db"
        self._local = threading.local()
        self._db().executescript(_SCHEMA)

    @classmethod
    def from_env(cls) -> State:
        """The state named by FAKE_AZURE_STATE."""
        directory = os.environ.get(ENV)
        if not directory:
            raise RuntimeError(f"{ENV} is not set: the fake cloud has no state directory")
        return cls(directory)

    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            db.execute("pragma journal_mode=wal")
            self._local.db = db
        return db

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (BEGIN IMMEDIATE: read-modify-write is atomic across processes)."""
        db = self._db()
        db.execute("begin immediate")
        try:
            yield db
        except BaseException:
            db.execute("rollback")
            raise
        db.execute("commit")

    # -- the workspace -----------------------------------------------------------------------
    def create_workspace(self, ws: Workspace, endpoints: tuple[str, ...] = ()) -> None:
        """What `azd up` and docs/deploy.md leave: the workspace, its default datastore, the online endpoints."""
        with self.tx() as db:
            db.execute("insert or replace into workspace values (1, ?)", (json.dumps(asdict(ws)),))
        from .ml import create_endpoint

        for name in endpoints:
            create_endpoint(self, ws, name)

    def workspace(self) -> Workspace:
        """The workspace (the test created it)."""
        row = self._db().execute("select body from workspace").fetchone()
        if row is None:
            raise RuntimeError(f"the fake cloud in {self.dir} has no workspace: create_workspace first")
        return Workspace(**json.loads(row[0]))

    # -- resources ---------------------------------------------------------------------------
    def get(self, kind: str, key: str) -> dict[str, Any] | None:
        """A stored resource body, or None."""
        row = self._db().execute("select body from resources where kind=? and key=?", (kind, key)).fetchone()
        return None if row is None else dict(json.loads(row[0]))

    def put(self, kind: str, key: str, body: dict[str, Any], db: sqlite3.Connection | None = None) -> None:
        """Store a resource body."""
        if db is not None:
            db.execute("insert or replace into resources values (?, ?, ?)", (kind, key, json.dumps(body)))
            return
        with self.tx() as conn:
            conn.execute("insert or replace into resources values (?, ?, ?)", (kind, key, json.dumps(body)))

    def delete(self, kind: str, key: str) -> None:
        """Remove a resource."""
        with self.tx() as db:
            db.execute("delete from resources where kind=? and key=?", (kind, key))

    def resources(self, kind: str, prefix: str = "") -> list[tuple[str, dict[str, Any]]]:
        """(key, body) of every resource of a kind whose key starts with ``prefix``, by key."""
        rows = self._db().execute("select key, body from resources where kind=? and substr(key, 1, ?)=? order by key",
                                  (kind, len(prefix), prefix)).fetchall()
        return [(k, dict(json.loads(b))) for k, b in rows]

    # -- what the app sent -------------------------------------------------------------------
    def record(self, api: str, body: Any) -> None:
        """Append one call the app made (what would have gone to Azure)."""
        with self.tx() as db:
            db.execute("insert into calls (at, pid, api, body) values (?, ?, ?, ?)",
                       (now(), os.getpid(), api, json.dumps(body, default=str)))

    def calls(self, api: str | None = None) -> list[dict[str, Any]]:
        """The recorded calls, in order (``api``: only those)."""
        rows = self._db().execute("select seq, at, api, body from calls order by seq").fetchall()
        return [{"seq": s, "at": at, "api": a, "body": json.loads(b)} for s, at, a, b in rows
                if api is None or a == api]

    # -- scoring requests (what Azure Monitor aggregates) --------------------------------------
    def add_request(self, endpoint: str, deployment: str, status: int, latency_ms: float, mirrored: bool,
                    at: str | None = None) -> None:
        """One request a deployment answered."""
        with self.tx() as db:
            db.execute("insert into requests (at, endpoint, deployment, status, latency_ms, mirrored) "
                       "values (?, ?, ?, ?, ?, ?)", (at or now(), endpoint, deployment, status, latency_ms,
                                                     int(mirrored)))

    def requests(self, endpoint: str, deployment: str, start: str, end: str) -> list[tuple[str, int, float]]:
        """(at, status, latency) of the deployment's requests in [start, end)."""
        rows = self._db().execute("select at, status, latency_ms from requests where endpoint=? and deployment=? "
                                  "order by seq", (endpoint, deployment)).fetchall()
        lo, hi = datetime.fromisoformat(start), datetime.fromisoformat(end)
        return [(at, st, lat) for at, st, lat in rows if lo <= datetime.fromisoformat(at) < hi]

    # -- flags the test sets ------------------------------------------------------------------
    def set_flag(self, key: str, value: str | None) -> None:
        """Set (or clear, with None) a flag such as ``fail:<endpoint>/<deployment>``."""
        with self.tx() as db:
            if value is None:
                db.execute("delete from flags where key=?", (key,))
            else:
                db.execute("insert or replace into flags values (?, ?)", (key, value))

    def flag(self, key: str) -> str | None:
        """A flag's value, or None."""
        row = self._db().execute("select value from flags where key=?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def artifacts(self, job: str) -> Path:
        """The folder a job's artifacts and outputs live in (``artifacts/`` and ``named-outputs/<name>/``)."""
        return self.dir / "artifacts" / job
