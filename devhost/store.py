"""The history store: SQLite in WAL mode.

One writer (the engine thread) commits each batch of episodes in one transaction:
new history, consumed messages, new messages (timers, events, sub-orchestration
starts, entity operations and their responses), new and retired activity work items,
instance rows and entity states. A crash between
two commits loses nothing that was acknowledged: what was not committed is replayed
from the last commit (activities may run again, as in Azure: at least once).

``synchronous=NORMAL`` in WAL mode survives a killed process (the WAL is in the OS
cache); only an operating-system crash could drop the last commits.
"""

from __future__ import annotations

import base64
import json
import sqlite3
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import private_file
from .orchestration import TERMINAL, Activity, Instance, Message

_SCHEMA = """
CREATE TABLE IF NOT EXISTS instances (
    instance_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    execution_id TEXT NOT NULL,
    status TEXT NOT NULL,
    input TEXT,
    output TEXT,
    custom_status TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    parent_id TEXT,
    parent_task_id INTEGER,
    state TEXT
);
CREATE INDEX IF NOT EXISTS instances_created ON instances(created_at, instance_id);
CREATE INDEX IF NOT EXISTS instances_status ON instances(status);
CREATE TABLE IF NOT EXISTS history (
    instance_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (instance_id, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS inbox (
    msg_id INTEGER PRIMARY KEY AUTOINCREMENT,
    instance_id TEXT NOT NULL,
    execution_id TEXT,
    visible_at TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS inbox_instance ON inbox(instance_id);
CREATE TABLE IF NOT EXISTS work (
    work_id INTEGER PRIMARY KEY AUTOINCREMENT,
    instance_id TEXT NOT NULL,
    execution_id TEXT NOT NULL,
    task_id INTEGER NOT NULL,
    name TEXT NOT NULL,
    input TEXT
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS entities (
    entity_id TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    updated_at TEXT NOT NULL
) WITHOUT ROWID;
"""


def connect(path: Path) -> sqlite3.Connection:
    """Open the database with the pragmas devhost relies on."""
    conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False, timeout=30)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


@dataclass
class Batch:
    """Changes committed together."""

    instances: dict[str, Instance] = field(default_factory=dict)
    history_appends: dict[str, list[tuple[str, int, str]]] = field(default_factory=dict)
    history_resets: set[str] = field(default_factory=set)
    messages: list[Message] = field(default_factory=list)
    message_execution: dict[int, str | None] = field(default_factory=dict)
    consumed: list[int] = field(default_factory=list)
    work: list[tuple[Activity, list[int]]] = field(default_factory=list)
    retired_work: list[int] = field(default_factory=list)
    deleted_instances: list[str] = field(default_factory=list)
    meta: dict[str, str] = field(default_factory=dict)
    entity_states: dict[str, tuple[str | None, str]] = field(default_factory=dict)  # id: (state or None, at)

    def add_history(self, inst: Instance, start: int, events: Iterable[dict[str, Any]]) -> None:
        """Append events of ``inst`` from history position ``start``."""
        rows = self.history_appends.setdefault(inst.instance_id, [])
        rows.extend((inst.instance_id, start + offset, json.dumps(ev)) for offset, ev in enumerate(events))

    def reset_history(self, instance_id: str) -> None:
        """Drop the instance's stored history (a new execution starts); pending appends too."""
        self.history_resets.add(instance_id)
        self.history_appends.pop(instance_id, None)

    @property
    def empty(self) -> bool:
        """True when there is nothing to write."""
        return not (self.instances or self.history_appends or self.history_resets or self.messages
                    or self.consumed or self.work or self.retired_work or self.deleted_instances or self.meta
                    or self.entity_states)


class Store:
    """All SQLite access. ``commit`` is called from the engine thread only."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = connect(private_file(path))
        self._writer.executescript(_SCHEMA)
        self._local = threading.local()

    def _reader(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = connect(self.path)
            self._local.conn = conn
        return conn

    def close(self) -> None:
        """Close the writer connection."""
        self._writer.close()

    # -- writes ----------------------------------------------------------------------------
    def commit(self, batch: Batch) -> None:
        """Write a batch atomically; fills in ids of new messages and work items."""
        cur = self._writer.cursor()
        cur.execute("BEGIN IMMEDIATE")
        try:
            for instance_id in batch.deleted_instances:
                for table in ("instances", "history", "inbox", "work"):
                    cur.execute(f"DELETE FROM {table} WHERE instance_id=?", (instance_id,))
            for instance_id in batch.history_resets:
                cur.execute("DELETE FROM history WHERE instance_id=?", (instance_id,))
            for rows in batch.history_appends.values():
                cur.executemany("INSERT OR REPLACE INTO history VALUES (?,?,?)", rows)
            if batch.consumed:
                cur.executemany("DELETE FROM inbox WHERE msg_id=?", [(m,) for m in batch.consumed])
            if batch.retired_work:
                cur.executemany("DELETE FROM work WHERE work_id=?", [(w,) for w in batch.retired_work])
            for msg in batch.messages:
                cur.execute(
                    "INSERT INTO inbox (instance_id, execution_id, visible_at, body) VALUES (?,?,?,?)",
                    (msg.instance_id, msg.body.get("ExecutionId"), msg.visible_at, json.dumps(msg.body)),
                )
                msg.msg_id = cur.lastrowid
            for activity, ids in batch.work:
                cur.execute(
                    "INSERT INTO work (instance_id, execution_id, task_id, name, input) VALUES (?,?,?,?,?)",
                    (activity.instance_id, activity.execution_id, activity.task_id, activity.name, activity.input),
                )
                ids.append(int(cur.lastrowid or 0))
            if batch.instances:
                cur.executemany(
                    "INSERT OR REPLACE INTO instances VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                    [
                        (i.instance_id, i.name, i.execution_id, i.status, i.input, i.output, i.custom_status,
                         i.created_at, i.updated_at, i.parent_id, i.parent_task_id, i.state_json())
                        for i in batch.instances.values()
                    ],
                )
            for key, value in batch.meta.items():
                cur.execute("INSERT OR REPLACE INTO meta VALUES (?,?)", (key, value))
            for entity, (state, at) in batch.entity_states.items():
                if state is None:  # the entity was deleted (or never came to exist)
                    cur.execute("DELETE FROM entities WHERE entity_id=?", (entity,))
                else:
                    cur.execute("INSERT OR REPLACE INTO entities VALUES (?,?,?)", (entity, state, at))
            cur.execute("COMMIT")
        except BaseException:
            cur.execute("ROLLBACK")
            raise

    # -- recovery --------------------------------------------------------------------------
    def load_active(self) -> tuple[dict[str, Instance], list[Message], list[tuple[int, Activity]]]:
        """Non-terminal instances with their history, pending messages and pending work."""
        conn = self._writer
        instances: dict[str, Instance] = {}
        rows = conn.execute(
            f"SELECT * FROM instances WHERE status NOT IN ({','.join('?' * len(TERMINAL))})", tuple(TERMINAL)
        ).fetchall()
        for row in rows:
            inst = _row_to_instance(row)
            inst.history = [json.loads(b) for (b,) in conn.execute(
                "SELECT body FROM history WHERE instance_id=? ORDER BY seq", (inst.instance_id,))]
            instances[inst.instance_id] = inst
        messages = [
            Message(instance_id, json.loads(body), visible_at=visible_at, msg_id=msg_id)
            for msg_id, instance_id, visible_at, body in conn.execute(
                "SELECT msg_id, instance_id, visible_at, body FROM inbox ORDER BY msg_id")
        ]
        work = [
            (work_id, Activity(instance_id, execution_id, task_id, name, input_))
            for work_id, instance_id, execution_id, task_id, name, input_ in conn.execute(
                "SELECT work_id, instance_id, execution_id, task_id, name, input FROM work ORDER BY work_id")
        ]
        return instances, messages, work

    def get_meta(self, key: str) -> str | None:
        """A value from the meta table."""
        row = self._writer.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return None if row is None else str(row[0])

    # -- reads (any thread) ----------------------------------------------------------------
    def get_instance(self, instance_id: str) -> Instance | None:
        """One instance row (without history)."""
        row = self._reader().execute("SELECT * FROM instances WHERE instance_id=?", (instance_id,)).fetchone()
        return None if row is None else _row_to_instance(row)

    def get_entity(self, entity_id: str) -> str | None:
        """An entity's committed state (its JSON text), or None if the entity does not exist."""
        row = self._reader().execute("SELECT state FROM entities WHERE entity_id=?", (entity_id,)).fetchone()
        return None if row is None else str(row[0])

    def get_history(self, instance_id: str) -> list[dict[str, Any]]:
        """The current execution's history."""
        rows = self._reader().execute(
            "SELECT body FROM history WHERE instance_id=? ORDER BY seq", (instance_id,)).fetchall()
        return [json.loads(b) for (b,) in rows]

    def query(
        self,
        created_from: str | None = None,
        created_to: str | None = None,
        statuses: list[str] | None = None,
        prefix: str | None = None,
        top: int | None = None,
        token: str | None = None,
    ) -> tuple[list[Instance], str | None]:
        """Instances matching the filters, oldest first, with a continuation token for the next page."""
        where: list[str] = ["1=1"]
        args: list[Any] = []
        if created_from:
            where.append("created_at >= ?")
            args.append(created_from)
        if created_to:
            where.append("created_at <= ?")
            args.append(created_to)
        if statuses:
            where.append(f"status IN ({','.join('?' * len(statuses))})")
            args.extend(statuses)
        if prefix:
            where.append("substr(instance_id, 1, ?) = ?")
            args.extend([len(prefix), prefix])
        if token:
            after_created, after_id = decode_token(token)
            where.append("(created_at > ? OR (created_at = ? AND instance_id > ?))")
            args.extend([after_created, after_created, after_id])
        sql = "SELECT * FROM instances WHERE " + " AND ".join(where) + " ORDER BY created_at, instance_id"
        if top:
            sql += " LIMIT ?"
            args.append(top + 1)
        rows = self._reader().execute(sql, args).fetchall()
        items = [_row_to_instance(r) for r in rows]
        next_token = None
        if top and len(items) > top:
            items = items[:top]
            next_token = encode_token(items[-1].created_at, items[-1].instance_id)
        return items, next_token


def encode_token(created_at: str, instance_id: str) -> str:
    """An opaque continuation token: where the last page ended."""
    return base64.urlsafe_b64encode(json.dumps([created_at, instance_id]).encode()).decode()


def decode_token(token: str) -> tuple[str, str]:
    """Read a continuation token; ValueError if it is not one of ours."""
    try:
        created_at, instance_id = json.loads(base64.urlsafe_b64decode(token.encode()))
        return str(created_at), str(instance_id)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"invalid continuation token {token!r}") from exc


def _row_to_instance(row: tuple[Any, ...]) -> Instance:
    inst = Instance(
        instance_id=row[0], name=row[1], execution_id=row[2], status=row[3], input=row[4], output=row[5],
        custom_status=row[6], created_at=row[7], updated_at=row[8], parent_id=row[9], parent_task_id=row[10],
    )
    inst.load_state(row[11])
    return inst
