"""The local scoring gateway: an Azure ML managed online endpoint on one machine.

Emulates what the release needs from a managed online endpoint
(https://learn.microsoft.com/azure/machine-learning/concept-endpoints-online and
https://learn.microsoft.com/azure/machine-learning/how-to-safely-rollout-online-endpoints):
deployments that serve MLflow models, ``traffic`` (deployment -> percent) and
``mirror_traffic`` (a shadow deployment whose answers are logged, never returned), the
``azureml-model-deployment`` header (response: who answered; request: route to one
deployment), a request log, and metrics over a window. Traffic changes swap one immutable
mapping, so a request in flight finishes on the deployment it was routed to.

Fault injection (error rate, added latency per deployment) is a local testing aid.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import random
import sqlite3
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from aiohttp import web

log = logging.getLogger("gateway")

DEPLOYMENT_HEADER = "azureml-model-deployment"
MAX_MIRROR_PERCENT = 50  # Azure ML: mirror traffic may not exceed 50 %
MAX_MIRRORED_IN_FLIGHT = 64  # default bound on mirrored requests running or queued; beyond it they are skipped


def _ts(moment: datetime | None = None) -> str:
    return (moment or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")


def _norm(value: str) -> str:
    text = value.strip().replace("Z", "+00:00")
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return _ts(moment)


class GatewayError(Exception):
    """A request the gateway refuses; ``status`` is the HTTP status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def validate_split(deployments: set[str], traffic: dict[str, int], mirror: dict[str, int]) -> None:
    """Azure ML's rules for ``traffic`` and ``mirror_traffic``."""
    for name in list(traffic) + list(mirror):
        if name not in deployments:
            raise GatewayError(400, f"deployment {name!r} does not exist on this endpoint")
    for name, pct in {**traffic, **mirror}.items():
        if not isinstance(pct, int) or isinstance(pct, bool) or not 0 <= pct <= 100:
            raise GatewayError(400, f"percent for {name!r} must be an integer 0..100, got {pct!r}")
    total = sum(traffic.values())
    if traffic and total not in (0, 100):
        raise GatewayError(400, f"traffic must add up to 100, got {total}")
    live_mirror = {k: v for k, v in mirror.items() if v > 0}
    if len(live_mirror) > 1:
        raise GatewayError(400, "mirror_traffic may name at most one deployment")
    for name, pct in live_mirror.items():
        if pct > MAX_MIRROR_PERCENT:
            raise GatewayError(400, f"mirror_traffic may not exceed {MAX_MIRROR_PERCENT} %, got {pct} for {name!r}")
        if traffic.get(name, 0) > 0:
            raise GatewayError(400, f"deployment {name!r} cannot take live and mirrored traffic at once")


class Gateway:
    """State, models and the request log."""

    def __init__(self, state_dir: Path, key: str | None, seed: int | None = None,
                 max_mirrored: int = MAX_MIRRORED_IN_FLIGHT) -> None:
        self.state_dir = Path(state_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.key = key
        self.rng = random.Random(seed)
        self.db = sqlite3.connect(str(self.state_dir / "gateway.sqlite"), check_same_thread=False,
                                  isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("CREATE TABLE IF NOT EXISTS endpoints (name TEXT PRIMARY KEY, state TEXT NOT NULL)")
        self.db.execute("""CREATE TABLE IF NOT EXISTS requests (ts TEXT, endpoint TEXT, deployment TEXT,
            latency_ms REAL, status INTEGER, mirrored INTEGER, inputs TEXT, outputs TEXT)""")
        self.db.execute("CREATE INDEX IF NOT EXISTS requests_window ON requests(endpoint, deployment, ts)")
        # operations are kept like Azure ML keeps them: a client polling across a restart still finds its own
        self.db.execute("CREATE TABLE IF NOT EXISTS operations (id TEXT PRIMARY KEY, state TEXT NOT NULL)")
        self.endpoints: dict[str, dict[str, Any]] = {
            name: json.loads(state) for name, state in self.db.execute("SELECT name, state FROM endpoints")}
        self.models: dict[str, Any] = {}
        self.operations: dict[str, dict[str, Any]] = {
            op_id: json.loads(state) for op_id, state in self.db.execute("SELECT id, state FROM operations")}
        self.pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="score")
        # mirrored requests get threads of their own: a slow shadow must never make live requests wait
        self.mirror_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="mirror")
        self.loader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="load")
        self.log_queue: list[tuple[Any, ...]] = []
        self.max_mirrored = max_mirrored
        self.mirror_skipped: dict[tuple[str, str], int] = {}  # (endpoint, deployment) -> count since start
        self._lock = asyncio.Lock()

    # -- state -------------------------------------------------------------------------------
    def endpoint(self, name: str) -> dict[str, Any]:
        """An endpoint's state (created empty on first use)."""
        return self.endpoints.setdefault(name, {"deployments": {}, "traffic": {}, "mirror_traffic": {}})

    def save(self, name: str) -> None:
        """Persist one endpoint."""
        self.db.execute("INSERT OR REPLACE INTO endpoints VALUES (?, ?)", (name, json.dumps(self.endpoints[name])))

    def set_operation(self, op: dict[str, Any]) -> None:
        """Record an operation's state (persisted)."""
        self.operations[op["operation_id"]] = op
        self.db.execute("INSERT OR REPLACE INTO operations VALUES (?, ?)", (op["operation_id"], json.dumps(op)))

    def begin_deployment(self, endpoint: str, deployment: str, body: dict[str, Any]) -> dict[str, Any]:
        """Record a deployment request as a running operation (``finish_deployment`` carries it out)."""
        op = {"operation_id": uuid.uuid4().hex, "state": "running", "message": f"loading {body['model_uri']}",
              "request": {"endpoint": endpoint, "deployment": deployment, "model_uri": body["model_uri"],
                          "model_name": body.get("model_name", ""),
                          "model_version": str(body.get("model_version", ""))}}
        self.set_operation(op)
        return op

    async def finish_deployment(self, op: dict[str, Any]) -> None:
        """Load the model and put the deployment in place; the outcome goes to the operation, as in Azure ML."""
        req = op["request"]
        try:
            await asyncio.get_running_loop().run_in_executor(self.loader, self.load_model, req["model_uri"])
            ep = self.endpoint(req["endpoint"])
            existing = ep["deployments"].get(req["deployment"]) or {}
            ep["deployments"][req["deployment"]] = {
                "model_uri": req["model_uri"], "model_name": req["model_name"],
                "model_version": req["model_version"], "faults": existing.get("faults", {})}
            ep["traffic"].setdefault(req["deployment"], 0)
            self.save(req["endpoint"])
            self.set_operation({**op, "state": "succeeded", "message": "deployed"})
        except Exception as exc:  # reported through the operation, as Azure ML does
            self.set_operation({**op, "state": "failed", "message": str(exc)})

    def interrupted(self) -> list[dict[str, Any]]:
        """Operations a restart cut short: they are carried out again."""
        return [op for op in self.operations.values() if op["state"] == "running" and "request" in op]

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

    def record(self, endpoint: str, deployment: str, latency_ms: float, status: int, mirrored: bool,
               inputs: Any, outputs: Any) -> None:
        """Queue a request-log row (written in batches off the request path)."""
        self.log_queue.append((_ts(), endpoint, deployment, latency_ms, status, int(mirrored), json.dumps(inputs),
                               json.dumps(outputs)))

    def flush(self) -> None:
        """Write queued log rows."""
        rows, self.log_queue = self.log_queue, []
        if rows:
            self.db.executemany("INSERT INTO requests VALUES (?,?,?,?,?,?,?,?)", rows)

    # -- scoring -----------------------------------------------------------------------------
    def predict(self, deployment: str, dep: dict[str, Any], rows: list[dict[str, Any]]) -> list[Any]:
        """Run one deployment's model (in a worker thread), with injected faults."""
        import pandas as pd

        # ``dep`` is the deployment as routed, not looked up again by name: it may have been deleted or
        # redeployed while the request waited for a thread, and the request must still be answered by it
        faults = dep.get("faults", {})
        if faults.get("latency_ms"):
            time.sleep(float(faults["latency_ms"]) / 1000)
        if faults.get("error_rate") and self.rng.random() < float(faults["error_rate"]):
            raise GatewayError(500, f"injected fault in deployment {deployment!r}")
        model = self.load_model(dep["model_uri"])
        result = model.predict(pd.DataFrame(rows))
        return [v.item() if hasattr(v, "item") else v for v in np.asarray(result).tolist()]

    def choose(self, traffic: dict[str, int]) -> str | None:
        """Weighted random choice over the live split."""
        live = [(d, p) for d, p in traffic.items() if p > 0]
        if not live:
            return None
        pick = self.rng.uniform(0, sum(p for _, p in live))
        for dep, pct in live:
            pick -= pct
            if pick <= 0:
                return dep
        return live[-1][0]


def build_app(gw: Gateway) -> web.Application:
    """The aiohttp application."""

    def authorized(request: web.Request) -> bool:
        if not gw.key:
            return True
        # constant time, on bytes: compare_digest refuses non-ASCII str, and aiohttp hands such header
        # bytes over as surrogate escapes
        given = request.headers.get("x-gateway-key", "").encode("utf-8", "surrogateescape")
        return hmac.compare_digest(given, gw.key.encode("utf-8", "surrogateescape"))

    @web.middleware
    async def auth_and_errors(request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path != "/health" and not authorized(request):
            return web.json_response({"error": "a valid x-gateway-key header is required"}, status=401)
        try:
            return await handler(request)
        except GatewayError as exc:
            return web.json_response({"error": str(exc)}, status=exc.status)
        # AttributeError: a body of the wrong JSON shape, e.g. a list where an object belongs
        except (json.JSONDecodeError, AttributeError, KeyError, TypeError, ValueError) as exc:
            return web.json_response({"error": f"bad request: {exc}"}, status=400)

    app = web.Application(middlewares=[auth_and_errors], client_max_size=20 * 1024 * 1024)
    loop_tasks: set[asyncio.Task[Any]] = set()
    mirroring: set[asyncio.Task[Any]] = set()  # mirrored requests running or queued

    async def health(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    def background(job: Any, *also: set[asyncio.Task[Any]]) -> None:
        # the event loop keeps only weak references to tasks: hold them until they end
        task = asyncio.create_task(job)
        for held in (loop_tasks, *also):
            held.add(task)
            task.add_done_callback(held.discard)

    async def put_deployment(request: web.Request) -> web.Response:
        name, dep = request.match_info["endpoint"], request.match_info["deployment"]
        body = await request.json()
        if not isinstance(body, dict) or not isinstance(body.get("model_uri"), str):
            raise GatewayError(400, "body must be {\"model_uri\": \"...\", \"model_name\", \"model_version\"}")
        existing = gw.endpoint(name)["deployments"].get(dep)
        if existing and existing["model_uri"] == body["model_uri"] and body["model_uri"] in gw.models:
            op = {"operation_id": uuid.uuid4().hex, "state": "succeeded", "message": "already deployed"}
            gw.set_operation(op)
            return web.json_response({"operation_id": op["operation_id"]}, status=202)
        op = gw.begin_deployment(name, dep, body)
        background(gw.finish_deployment(op))
        return web.json_response({"operation_id": op["operation_id"]}, status=202)

    async def get_operation(request: web.Request) -> web.Response:
        op = gw.operations.get(request.match_info["operation_id"])
        if op is None:
            raise GatewayError(404, f"operation {request.match_info['operation_id']!r} not found")
        return web.json_response({k: v for k, v in op.items() if k != "request"})

    async def list_deployments(request: web.Request) -> web.Response:
        ep = gw.endpoint(request.match_info["endpoint"])
        return web.json_response({d: v["model_uri"] for d, v in ep["deployments"].items()})

    async def delete_deployment(request: web.Request) -> web.Response:
        name, dep = request.match_info["endpoint"], request.match_info["deployment"]
        ep = gw.endpoint(name)
        if dep not in ep["deployments"]:
            raise GatewayError(404, f"deployment {dep!r} not found")
        if ep["traffic"].get(dep, 0) > 0 or ep["mirror_traffic"].get(dep, 0) > 0:
            raise GatewayError(409, f"deployment {dep!r} still carries traffic; move it away first")
        async with gw._lock:
            ep["deployments"].pop(dep)
            ep["traffic"] = {k: v for k, v in ep["traffic"].items() if k != dep}
            ep["mirror_traffic"] = {k: v for k, v in ep["mirror_traffic"].items() if k != dep}
            gw.save(name)
        return web.json_response({"deleted": dep})

    async def traffic(request: web.Request) -> web.Response:
        name = request.match_info["endpoint"]
        ep = gw.endpoint(name)
        if request.method == "PUT":
            body = await request.json()
            # no coercion: Azure ML takes whole percents only, and 99.9 must be refused, not rounded
            new_traffic = dict(body.get("traffic") or {})
            new_mirror = dict(body.get("mirror_traffic") or {})
            full = {**{d: 0 for d in ep["deployments"]}, **new_traffic}
            validate_split(set(ep["deployments"]), full, new_mirror)
            new_mirror = {k: v for k, v in new_mirror.items() if v > 0}
            async with gw._lock:
                ep["traffic"], ep["mirror_traffic"] = full, new_mirror  # one swap: atomic for readers
                gw.save(name)
            log.info("traffic set", extra={"endpoint": name, "traffic": full, "mirror": new_mirror})
        return web.json_response({"traffic": ep["traffic"], "mirror_traffic": ep["mirror_traffic"]})

    async def faults(request: web.Request) -> web.Response:
        name, dep = request.match_info["endpoint"], request.match_info["deployment"]
        ep = gw.endpoint(name)
        if dep not in ep["deployments"]:
            raise GatewayError(404, f"deployment {dep!r} not found")
        body = await request.json()
        ep["deployments"][dep]["faults"] = {"error_rate": float(body.get("error_rate", 0)),
                                            "latency_ms": float(body.get("latency_ms", 0))}
        gw.save(name)
        return web.json_response(ep["deployments"][dep]["faults"])

    async def run(name: str, dep: str, spec: dict[str, Any], rows: list[dict[str, Any]],
                  mirrored: bool) -> tuple[int, Any]:
        started = time.perf_counter()
        loop = asyncio.get_running_loop()
        try:
            out: Any = await loop.run_in_executor(gw.mirror_pool if mirrored else gw.pool, gw.predict, dep, spec,
                                                  rows)
            status = 200
        except GatewayError as exc:
            out, status = {"error": str(exc)}, exc.status
        except Exception as exc:  # the model failed on this input: a 500 for the client, logged
            out, status = {"error": f"{type(exc).__name__}: {exc}"}, 500
        gw.record(name, dep, (time.perf_counter() - started) * 1000, status, mirrored, rows,
                  out if status == 200 else None)
        return status, out

    async def score(request: web.Request) -> web.Response:
        name = request.match_info["endpoint"]
        if name not in gw.endpoints:
            raise GatewayError(404, f"endpoint {name!r} not found")
        ep = gw.endpoints[name]
        body = await request.json()
        rows = body.get("input_data", body.get("data")) if isinstance(body, dict) else None
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise GatewayError(400, "body must be {\"input_data\": [ {column: value}, ... ]}")
        traffic, mirror = ep["traffic"], ep["mirror_traffic"]  # one consistent snapshot for this request
        dep = request.headers.get(DEPLOYMENT_HEADER) or gw.choose(traffic)
        if dep is None or dep not in ep["deployments"]:
            raise GatewayError(404 if dep else 503, f"no deployment to serve: {dep or 'traffic is 0 everywhere'}")
        for shadow, pct in mirror.items():
            if not request.headers.get(DEPLOYMENT_HEADER) and gw.rng.uniform(0, 100) < pct:
                if len(mirroring) >= gw.max_mirrored:
                    # mirroring is best effort: a shadow slower than the traffic must not pile up work
                    skipped = gw.mirror_skipped.get((name, shadow), 0)
                    if skipped % 100 == 0:
                        log.warning("shadow %s/%s is behind: %d mirrored requests in flight, not mirroring "
                                    "(%d skipped so far)", name, shadow, len(mirroring), skipped + 1)
                    gw.mirror_skipped[(name, shadow)] = skipped + 1
                    continue
                background(run(name, shadow, ep["deployments"][shadow], rows, True), mirroring)
        status, out = await run(name, dep, ep["deployments"][dep], rows, False)
        payload = {"predictions": out} if status == 200 else out
        return web.json_response(payload, status=status, headers={DEPLOYMENT_HEADER: dep})

    def _window(request: web.Request) -> tuple[str, str]:
        start = _norm(request.query["start"])
        end = _norm(request.query["end"]) if request.query.get("end") else _ts()
        gw.flush()
        return start, end

    async def metrics(request: web.Request) -> web.Response:
        name, dep = request.match_info["endpoint"], request.query["deployment"]
        start, end = _window(request)
        rows = gw.db.execute("SELECT latency_ms, status, outputs FROM requests WHERE endpoint=? AND deployment=? "
                             "AND ts>=? AND ts<=?", (name, dep, start, end)).fetchall()
        latencies = np.array([r[0] for r in rows], dtype=float)
        predictions: dict[str, int] = {}
        for _, status, outputs in rows:
            if status == 200 and outputs:
                for value in json.loads(outputs) or []:
                    predictions[str(value)] = predictions.get(str(value), 0) + 1
        pct = (lambda q: float(np.percentile(latencies, q))) if len(latencies) else (lambda q: 0.0)
        return web.json_response({"deployment": dep, "request_count": len(rows),
                                  "error_count": sum(1 for r in rows if r[1] >= 500),
                                  "latency_p50_ms": pct(50), "latency_p95_ms": pct(95), "latency_p99_ms": pct(99),
                                  "predictions": predictions,
                                  "mirror_skipped": gw.mirror_skipped.get((name, dep), 0)})

    async def requests_log(request: web.Request) -> web.Response:
        name = request.match_info["endpoint"]
        start, end = _window(request)
        limit = int(request.query.get("limit", 1000))
        rows = gw.db.execute("SELECT deployment, inputs, outputs FROM requests WHERE endpoint=? AND ts>=? AND ts<=? "
                             "AND status=200 AND mirrored=0 ORDER BY ts DESC LIMIT ?",
                             (name, start, end, limit)).fetchall()
        out = []
        for dep, inputs, outputs in rows:
            preds = json.loads(outputs) or []
            for i, row in enumerate(json.loads(inputs)):
                out.append({**row, "__prediction__": preds[i] if i < len(preds) else None, "__deployment__": dep})
        return web.json_response(out[:limit])

    r = app.router
    r.add_get("/health", health)
    r.add_put("/endpoints/{endpoint}/deployments/{deployment}", put_deployment)
    r.add_delete("/endpoints/{endpoint}/deployments/{deployment}", delete_deployment)
    r.add_get("/endpoints/{endpoint}/deployments", list_deployments)
    r.add_put("/endpoints/{endpoint}/deployments/{deployment}/faults", faults)
    r.add_get("/operations/{operation_id}", get_operation)
    r.add_route("GET", "/endpoints/{endpoint}/traffic", traffic)
    r.add_route("PUT", "/endpoints/{endpoint}/traffic", traffic)
    r.add_post("/endpoints/{endpoint}/score", score)
    r.add_get("/endpoints/{endpoint}/metrics", metrics)
    r.add_get("/endpoints/{endpoint}/requests", requests_log)

    async def flusher(app: web.Application) -> Any:
        async def loop() -> None:
            while True:
                await asyncio.sleep(0.2)
                gw.flush()

        await gw.reload()
        for op in gw.interrupted():
            log.info("resuming deployment operation %s after a restart", op["operation_id"])
            background(gw.finish_deployment(op))
        task = asyncio.create_task(loop())
        yield
        task.cancel()
        gw.flush()

    app.cleanup_ctx.append(flusher)
    return app
