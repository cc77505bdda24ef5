"""The gateway's state: endpoints (deployments, traffic, mirror traffic), deployment operations,
the loaded models and the request log, persisted in one SQLite database (WAL) in the state directory.

Endpoints and operations survive a restart, and a deployment a crash cut short is carried out
again (``interrupted``). Request-log rows are queued and written in batches off the request path.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import sqlite3
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from .sticky import validate_sticky
from .traffic import validate_split

log = logging.getLogger("gateway")

MAX_MIRRORED_IN_FLIGHT = 64  # default bound on mirrored requests running or queued; beyond it they are skipped


def timestamp(moment: datetime | None = None) -> str:
    """A moment (default: now) as the request log writes it: UTC, to the microsecond."""
    return (moment or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")


def normalize(value: str) -> str:
    """An ISO 8601 time as the request log writes it; one without an offset is UTC."""
    text = value.strip().replace("Z", "+00:00")
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return timestamp(moment)


class GatewayError(Exception):
    """A request the gateway refuses; ``status`` is the HTTP status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


# What a deployment is made of (PUT's body, checked by ``deployment_request``), with the defaults of a deployment
# persisted before params and prompts existed.
DEPLOYMENT_FIELDS = ("model_uri", "model_name", "model_version", "params", "prompt_name", "prompt_version")
DEPLOYMENT_DEFAULTS: dict[str, Any] = {"model_name": "", "model_version": "", "params": {}, "prompt_name": "",
                                       "prompt_version": ""}


def deployment_request(body: Any) -> dict[str, Any]:
    """The deployment a PUT body asks for; GatewayError 400 naming the field that is wrong, before anything changes.

    ``params`` are default predict params for chat requests (an object of strings, numbers or booleans);
    ``prompt_name`` and ``prompt_version`` only label the deployment in its listing."""
    if not isinstance(body, dict) or not isinstance(body.get("model_uri"), str):
        raise GatewayError(400, "body must be {\"model_uri\": \"...\", \"model_name\", \"model_version\", "
                                "\"params\"?: {...}}")
    params = body.get("params", {})
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise GatewayError(400, f"params must be an object, got {type(params).__name__}")
    for key, value in params.items():
        if not isinstance(value, (str, int, float, bool)):  # bool is an int: allowed either way
            raise GatewayError(400, f"params.{key} must be a string, a number or a boolean, "
                                    f"got {type(value).__name__}")
    labels = {k: body.get(k, "") for k in ("prompt_name", "prompt_version")}
    for key, value in labels.items():
        if not isinstance(value, (str, int)) or isinstance(value, bool):
            raise GatewayError(400, f"{key} must be a string, got {type(value).__name__}")
    return {"model_uri": body["model_uri"], "model_name": str(body.get("model_name", "")),
            "model_version": str(body.get("model_version", "")), "params": dict(params),
            **{k: str(v) for k, v in labels.items()}}


class Gateway:
    """State, models and the request log."""

    def __init__(self, state_dir: Path, key: str | None, seed: int | None = None,
                 max_mirrored: int = MAX_MIRRORED_IN_FLIGHT) -> None:
        self.state_dir = Path(state_dir)
        # the request log holds every scoring input and output: no other local user reads the state
        self.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.state_dir, 0o700)
        db_path = self.state_dir / "gateway.sqlite"
        os.close(os.open(db_path, os.O_WRONLY | os.O_CREAT, 0o600))  # SQLite's -wal/-shm get the same mode
        os.chmod(db_path, 0o600)
        self.key = key
        self.rng = random.Random(seed)
        self.db = sqlite3.connect(str(db_path), check_same_thread=False, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("CREATE TABLE IF NOT EXISTS endpoints (name TEXT PRIMARY KEY, state TEXT NOT NULL)")
        self.db.execute("""CREATE TABLE IF NOT EXISTS requests (ts TEXT, endpoint TEXT, deployment TEXT,
            latency_ms REAL, status INTEGER, mirrored INTEGER, inputs TEXT, outputs TEXT)""")
        self.db.execute("CREATE INDEX IF NOT EXISTS requests_window ON requests(endpoint, deployment, ts)")
        columns = {row[1] for row in self.db.execute("PRAGMA table_info(requests)")}
        if "request_id" not in columns:  # a state folder from before request ids keeps its log; old rows have none
            self.db.execute("ALTER TABLE requests ADD COLUMN request_id TEXT")
        if "unit" not in columns:  # the sticky unit id (gateway.sticky); old rows have none
            self.db.execute("ALTER TABLE requests ADD COLUMN unit TEXT")
        self.db.execute("CREATE INDEX IF NOT EXISTS requests_by_id ON requests(request_id)")
        # operations are kept like Azure ML keeps them: a client polling across a restart still finds its own
        self.db.execute("CREATE TABLE IF NOT EXISTS operations (id TEXT PRIMARY KEY, state TEXT NOT NULL)")
        self.endpoints: dict[str, dict[str, Any]] = {
            name: json.loads(state) for name, state in self.db.execute("SELECT name, state FROM endpoints")}
        self.models: dict[str, Any] = {}
        self.operations: dict[str, dict[str, Any]] = {
            op_id: json.loads(state) for op_id, state in self.db.execute("SELECT id, state FROM operations")}
        self.loader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="load")
        self.log_queue: list[tuple[Any, ...]] = []
        self.max_mirrored = max_mirrored
        self.mirror_skipped: dict[tuple[str, str], int] = {}  # (endpoint, deployment) -> count since start
        self._lock = asyncio.Lock()

    # -- endpoints ---------------------------------------------------------------------------
    def endpoint(self, name: str) -> dict[str, Any]:
        """An endpoint's state (created empty on first use)."""
        return self.endpoints.setdefault(name, {"deployments": {}, "traffic": {}, "mirror_traffic": {}})

    def save(self, name: str) -> None:
        """Persist one endpoint."""
        self.db.execute("INSERT OR REPLACE INTO endpoints VALUES (?, ?)", (name, json.dumps(self.endpoints[name])))

    def deployment(self, name: str, deployment: str) -> dict[str, Any]:
        """One deployment's state; GatewayError 404 if the endpoint has none by that name."""
        ep = self.endpoint(name)
        if deployment not in ep["deployments"]:
            raise GatewayError(404, f"deployment {deployment!r} not found")
        return ep["deployments"][deployment]

    async def delete_deployment(self, name: str, deployment: str) -> None:
        """Remove a deployment that carries no traffic (GatewayError 404 or 409 otherwise)."""
        self.deployment(name, deployment)
        ep = self.endpoint(name)
        if ep["traffic"].get(deployment, 0) > 0 or ep["mirror_traffic"].get(deployment, 0) > 0:
            raise GatewayError(409, f"deployment {deployment!r} still carries traffic; move it away first")
        async with self._lock:
            ep["deployments"].pop(deployment)
            ep["traffic"] = {k: v for k, v in ep["traffic"].items() if k != deployment}
            ep["mirror_traffic"] = {k: v for k, v in ep["mirror_traffic"].items() if k != deployment}
            self.save(name)

    async def set_traffic(self, name: str, traffic: dict[str, Any], mirror_traffic: dict[str, Any],
                          sticky: Any = None) -> None:
        """Check a split with Azure ML's rules (SplitError) and the sticky setting (StickyError: the gateway's
        own, ``gateway.sticky``), then put them in place in one swap; a split without ``sticky`` ends it."""
        ep = self.endpoint(name)
        full = {**{d: 0 for d in ep["deployments"]}, **traffic}
        validate_split(set(ep["deployments"]), full, mirror_traffic)
        checked = validate_sticky(sticky)
        mirror = {k: v for k, v in mirror_traffic.items() if v > 0}
        async with self._lock:
            ep["traffic"], ep["mirror_traffic"], ep["sticky"] = full, mirror, checked  # one swap each: atomic
            self.save(name)
        log.info("traffic set", extra={"endpoint": name, "traffic": full, "mirror": mirror, "sticky": checked})

    def set_faults(self, name: str, deployment: str, faults: dict[str, float]) -> None:
        """Inject errors or latency into one deployment (a local testing aid)."""
        self.endpoint(name)["deployments"][deployment]["faults"] = faults
        self.save(name)

    # -- deployment operations ---------------------------------------------------------------
    def set_operation(self, op: dict[str, Any]) -> None:
        """Record an operation's state (persisted)."""
        self.operations[op["operation_id"]] = op
        self.db.execute("INSERT OR REPLACE INTO operations VALUES (?, ?)", (op["operation_id"], json.dumps(op)))

    def begin_deployment(self, endpoint: str, deployment: str, body: dict[str, Any]) -> dict[str, Any]:
        """Record a deployment request as an operation: running (``finish_deployment`` carries it out), or
        succeeded at once when the deployment already serves that model with those params and prompt.

        ``body`` has been checked by ``deployment_request``."""
        request = {"endpoint": endpoint, "deployment": deployment, **deployment_request(body)}
        existing = self.endpoint(endpoint)["deployments"].get(deployment)
        same = existing is not None and all(existing.get(k, DEPLOYMENT_DEFAULTS.get(k)) == request[k]
                                            for k in DEPLOYMENT_FIELDS)
        if same and body["model_uri"] in self.models:
            op: dict[str, Any] = {"operation_id": uuid.uuid4().hex, "state": "succeeded", "message": "already deployed"}
        else:
            op = {"operation_id": uuid.uuid4().hex, "state": "running", "message": f"loading {body['model_uri']}",
                  "request": request}
        self.set_operation(op)
        return op

    async def finish_deployment(self, op: dict[str, Any]) -> None:
        """Load the model and put the deployment in place; the outcome goes to the operation, as in Azure ML.

        A deployment whose default params its model does not declare fails: every chat request would be refused."""
        req = op["request"]
        try:
            model = await asyncio.get_running_loop().run_in_executor(self.loader, self.load_model, req["model_uri"])
            params = req.get("params") or {}
            if params:
                from .chat import declared_params

                undeclared = sorted(set(params) - declared_params(model))
                if undeclared:
                    raise GatewayError(400, f"the deployment's params {', '.join(undeclared)} are not declared by "
                                            f"its model {req['model_uri']} (it declares: "
                                            f"{', '.join(sorted(declared_params(model))) or 'none'})")
            ep = self.endpoint(req["endpoint"])
            existing = ep["deployments"].get(req["deployment"]) or {}
            ep["deployments"][req["deployment"]] = {
                **{k: req.get(k, DEPLOYMENT_DEFAULTS.get(k)) for k in DEPLOYMENT_FIELDS},
                "faults": existing.get("faults", {})}
            ep["traffic"].setdefault(req["deployment"], 0)
            self.save(req["endpoint"])
            self.set_operation({**op, "state": "succeeded", "message": "deployed"})
        except Exception as exc:  # reported through the operation, as Azure ML does
            self.set_operation({**op, "state": "failed", "message": str(exc)})

    def interrupted(self) -> list[dict[str, Any]]:
        """Operations a restart cut short: they are carried out again."""
        return [op for op in self.operations.values() if op["state"] == "running" and "request" in op]

    # -- models ------------------------------------------------------------------------------
    def load_model(self, model_uri: str) -> Any:
        """Load (once) an MLflow model."""
        if model_uri not in self.models:
            import mlflow.pyfunc

            self.models[model_uri] = mlflow.pyfunc.load_model(model_uri)
        return self.models[model_uri]

    async def reload(self) -> None:
        """Load every persisted deployment's model at start-up."""
        loop = asyncio.get_running_loop()
        for ep in self.endpoints.values():
            for dep in ep["deployments"].values():
                try:
                    await loop.run_in_executor(self.loader, self.load_model, dep["model_uri"])
                except Exception:  # keep serving the others; scoring this one will fail and say so
                    log.exception("could not reload %s", dep["model_uri"])

    # -- the request log ---------------------------------------------------------------------
    def record(self, endpoint: str, deployment: str, latency_ms: float, status: int, mirrored: bool,
               inputs: Any, outputs: Any, request_id: str = "", unit: str = "") -> None:
        """Queue a request-log row (written in batches off the request path)."""
        self.log_queue.append((timestamp(), endpoint, deployment, latency_ms, status, int(mirrored),
                               json.dumps(inputs), json.dumps(outputs), request_id or None, unit or None))

    def flush(self) -> None:
        """Write queued log rows."""
        rows, self.log_queue = self.log_queue, []
        if rows:
            self.db.executemany("INSERT INTO requests (ts, endpoint, deployment, latency_ms, status, mirrored, "
                                "inputs, outputs, request_id, unit) VALUES (?,?,?,?,?,?,?,?,?,?)", rows)

    def metrics(self, endpoint: str, deployment: str, start: str, end: str) -> dict[str, Any]:
        """One deployment's request count, errors, latency percentiles and prediction counts in [start, end]."""
        self.flush()
        rows = self.db.execute("SELECT latency_ms, status, outputs FROM requests WHERE endpoint=? AND deployment=? "
                               "AND ts>=? AND ts<=?", (endpoint, deployment, start, end)).fetchall()
        latencies = np.array([r[0] for r in rows], dtype=float)
        predictions: dict[str, int] = {}
        for _, status, outputs in rows:
            if status == 200 and outputs:
                for value in json.loads(outputs) or []:
                    predictions[str(value)] = predictions.get(str(value), 0) + 1
        pct = (lambda q: float(np.percentile(latencies, q))) if len(latencies) else (lambda q: 0.0)
        return {"deployment": deployment, "request_count": len(rows),
                "error_count": sum(1 for r in rows if r[1] >= 500),
                "client_error_count": sum(1 for r in rows if 400 <= r[1] < 500),
                "latency_p50_ms": pct(50), "latency_p95_ms": pct(95), "latency_p99_ms": pct(99),
                "predictions": predictions,
                "mirror_skipped": self.mirror_skipped.get((endpoint, deployment), 0)}

    def answered_rows(self, endpoint: str, start: str, end: str, limit: int) -> list[dict[str, Any]]:
        """The newest input rows clients were answered in [start, end] (never mirrored ones), each with
        ``__prediction__``, ``__deployment__``, ``__request_id__`` and, for a request routed by its sticky unit,
        ``__unit__``: the drift monitor's and the A/B look's view."""
        self.flush()
        rows = self.db.execute("SELECT deployment, inputs, outputs, request_id, unit FROM requests WHERE endpoint=? "
                               "AND ts>=? AND ts<=? AND status=200 AND mirrored=0 ORDER BY ts DESC LIMIT ?",
                               (endpoint, start, end, limit)).fetchall()
        out = []
        for dep, inputs, outputs, request_id, unit in rows:
            preds = json.loads(outputs) or []
            for i, row in enumerate(json.loads(inputs)):
                out.append({**row, "__prediction__": preds[i] if i < len(preds) else None, "__deployment__": dep,
                            "__request_id__": request_id, **({"__unit__": unit} if unit else {})})
        return out[:limit]
