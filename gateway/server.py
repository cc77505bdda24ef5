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

This module is the HTTP surface (docs/gateway.md); the parts behind it are ``state`` (endpoints,
operations, models, the request log), ``scoring`` (routing, running, mirroring) and ``traffic``
(Azure ML's split rules).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from aiohttp import web

from .chat import CHAT_SHAPE, is_chat, parse_chat
from .scoring import Scorer, spawn
from .state import (
    DEPLOYMENT_DEFAULTS,
    DEPLOYMENT_FIELDS,
    MAX_MIRRORED_IN_FLIGHT,
    Gateway,
    GatewayError,
    normalize,
    timestamp,
)
from .sticky import StickyError
from .traffic import SplitError

__all__ = ["DEPLOYMENT_HEADER", "MAX_MIRRORED_IN_FLIGHT", "REQUEST_ID_HEADER", "Gateway", "GatewayApi", "GatewayError",
           "build_app"]

log = logging.getLogger("gateway")

DEPLOYMENT_HEADER = "azureml-model-deployment"
# The request id: a caller's own (kept, as Azure ML's data collector correlates by it) or a new one, returned on
# every scoring answer and logged with the request, so a label arriving later can be joined to its prediction.
REQUEST_ID_HEADER = "x-request-id"
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
FLUSH_SECONDS = 0.2  # how often queued request-log rows are written

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class GatewayApi:
    """The routes of docs/gateway.md over one gateway's state: one method per route."""

    def __init__(self, gw: Gateway) -> None:
        self.gw = gw
        self.scorer = Scorer(gw)
        self._tasks: set[asyncio.Task[Any]] = set()  # deployments loading in the background

    # -- around every request ----------------------------------------------------------------
    def authorized(self, request: web.Request) -> bool:
        """The request carries the gateway's key (or the gateway has none)."""
        if not self.gw.key:
            return True
        # constant time, on bytes: compare_digest refuses non-ASCII str, and aiohttp hands such header
        # bytes over as surrogate escapes
        given = request.headers.get("x-gateway-key", "").encode("utf-8", "surrogateescape")
        return hmac.compare_digest(given, self.gw.key.encode("utf-8", "surrogateescape"))

    @web.middleware
    async def auth_and_errors(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """401 without the key; a refused request becomes its status with the reason."""
        if request.path != "/health" and not self.authorized(request):
            return web.json_response({"error": "a valid x-gateway-key header is required"}, status=401)
        try:
            return await handler(request)
        except GatewayError as exc:
            return web.json_response({"error": str(exc)}, status=exc.status)
        except (SplitError, StickyError) as exc:  # a split Azure ML would refuse, a sticky setting the gateway would
            return web.json_response({"error": str(exc)}, status=400)
        # AttributeError: a body of the wrong JSON shape, e.g. a list where an object belongs
        except (json.JSONDecodeError, AttributeError, KeyError, TypeError, ValueError) as exc:
            return web.json_response({"error": f"bad request: {exc}"}, status=400)

    async def lifespan(self, app: web.Application) -> AsyncIterator[None]:
        """At start, load the persisted models and resume cut-short deployments; flush the log until the end."""
        await self.gw.reload()
        for op in self.gw.interrupted():
            log.info("resuming deployment operation %s after a restart", op["operation_id"])
            spawn(self.gw.finish_deployment(op), self._tasks)
        flusher = asyncio.create_task(self._flush_forever())
        yield
        flusher.cancel()
        self.gw.flush()

    async def _flush_forever(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_SECONDS)
            self.gw.flush()

    # -- deployments -------------------------------------------------------------------------
    async def health(self, _: web.Request) -> web.Response:
        """``GET /health``: no key needed."""
        return web.json_response({"status": "ok"})

    async def put_deployment(self, request: web.Request) -> web.Response:
        """``PUT /endpoints/{e}/deployments/{d}``: 202 with an operation; the model loads in the background."""
        name, dep = request.match_info["endpoint"], request.match_info["deployment"]
        op = self.gw.begin_deployment(name, dep, await request.json())  # a bad body: 400, nothing recorded
        if op["state"] == "running":
            spawn(self.gw.finish_deployment(op), self._tasks)
        return web.json_response({"operation_id": op["operation_id"]}, status=202)

    async def get_operation(self, request: web.Request) -> web.Response:
        """``GET /operations/{id}``: running, succeeded or failed, with a message."""
        op = self.gw.operations.get(request.match_info["operation_id"])
        if op is None:
            raise GatewayError(404, f"operation {request.match_info['operation_id']!r} not found")
        return web.json_response({k: v for k, v in op.items() if k != "request"})

    async def list_deployments(self, request: web.Request) -> web.Response:
        """``GET /endpoints/{e}/deployments``: deployment -> model URI; with ``?detail=true``, deployment -> its
        model, default params and prompt."""
        ep = self.gw.endpoint(request.match_info["endpoint"])
        if request.query.get("detail", "").lower() in ("true", "1"):
            return web.json_response({d: {k: v.get(k, DEPLOYMENT_DEFAULTS.get(k)) for k in DEPLOYMENT_FIELDS}
                                      for d, v in ep["deployments"].items()})
        return web.json_response({d: v["model_uri"] for d, v in ep["deployments"].items()})

    async def delete_deployment(self, request: web.Request) -> web.Response:
        """``DELETE /endpoints/{e}/deployments/{d}``: 409 while it carries live or mirrored traffic."""
        dep = request.match_info["deployment"]
        await self.gw.delete_deployment(request.match_info["endpoint"], dep)
        return web.json_response({"deleted": dep})

    async def put_faults(self, request: web.Request) -> web.Response:
        """``PUT /endpoints/{e}/deployments/{d}/faults``: inject errors or latency (a local testing aid)."""
        name, dep = request.match_info["endpoint"], request.match_info["deployment"]
        self.gw.deployment(name, dep)  # 404 before the body is read
        body = await request.json()
        faults = {"error_rate": float(body.get("error_rate", 0)), "latency_ms": float(body.get("latency_ms", 0))}
        self.gw.set_faults(name, dep, faults)
        return web.json_response(faults)

    # -- traffic -----------------------------------------------------------------------------
    async def get_traffic(self, request: web.Request) -> web.Response:
        """``GET /endpoints/{e}/traffic``: the live split and the mirrored share."""
        ep = self.gw.endpoint(request.match_info["endpoint"])
        # Azure ML's shape; "sticky" (the gateway's own) only while a split is sticky
        sticky = {"sticky": ep["sticky"]} if ep.get("sticky") else {}
        return web.json_response({"traffic": ep["traffic"], "mirror_traffic": ep["mirror_traffic"], **sticky})

    async def put_traffic(self, request: web.Request) -> web.Response:
        """``PUT /endpoints/{e}/traffic``: a split Azure ML would refuse is a 400 and changes nothing."""
        body = await request.json()
        # no coercion: Azure ML takes whole percents only, and 99.9 must be refused, not rounded
        traffic, mirror = dict(body.get("traffic") or {}), dict(body.get("mirror_traffic") or {})
        await self.gw.set_traffic(request.match_info["endpoint"], traffic, mirror, body.get("sticky"))
        return await self.get_traffic(request)

    # -- scoring and what it logged ----------------------------------------------------------
    async def score(self, request: web.Request) -> web.Response:
        """``POST /endpoints/{e}/score``: predictions for rows, or the reply to a chat request (``gateway.chat``),
        with the deployment that answered in a header."""
        name = request.match_info["endpoint"]
        if name not in self.gw.endpoints:
            raise GatewayError(404, f"endpoint {name!r} not found")
        body = await request.json()
        params: dict[str, Any] | None = None
        rows: Any
        if is_chat(body):
            chat = parse_chat(body)
            rows, params = [chat.row], chat.parameters
        else:
            rows = body.get("input_data", body.get("data")) if isinstance(body, dict) else None
            if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
                raise GatewayError(400, "body must be {\"input_data\": [ {column: value}, ... ]} or a chat request "
                                        + CHAT_SHAPE)
        request_id = request_id_of(request.headers.get(REQUEST_ID_HEADER))
        sticky = self.gw.endpoints[name].get("sticky")
        unit = request.headers.get(sticky["header"], "") if sticky else ""
        dep, status, out = await self.scorer.score(name, rows, request.headers.get(DEPLOYMENT_HEADER) or None,
                                                   request_id, params, unit)
        # a chat request is answered in Azure ML's chat shape: the one reply as "output"
        payload = out if status != 200 else {"predictions": out} if params is None else {"output": out[0]}
        return web.json_response(payload, status=status, headers={DEPLOYMENT_HEADER: dep,
                                                                  REQUEST_ID_HEADER: request_id})

    async def metrics(self, request: web.Request) -> web.Response:
        """``GET /endpoints/{e}/metrics?deployment&start&end``: one deployment's health numbers."""
        name, dep = request.match_info["endpoint"], request.query["deployment"]
        start, end = _window(request)
        return web.json_response(self.gw.metrics(name, dep, start, end))

    async def requests_log(self, request: web.Request) -> web.Response:
        """``GET /endpoints/{e}/requests?start&end&limit``: logged inputs with ``__prediction__``."""
        start, end = _window(request)
        limit = int(request.query.get("limit", 1000))
        return web.json_response(self.gw.answered_rows(request.match_info["endpoint"], start, end, limit))


def request_id_of(given: str | None) -> str:
    """The caller's request id if it is a plain token (letters, digits, ``._:-``, up to 128), else a new UUID:
    an id is logged and echoed in a header, so nothing else is taken from the caller."""
    given = (given or "").strip()
    return given if _REQUEST_ID.fullmatch(given) else str(uuid.uuid4())


def _window(request: web.Request) -> tuple[str, str]:
    """The ``start`` (required) and ``end`` (default: now) query parameters, as the request log writes times."""
    start = normalize(request.query["start"])
    end = normalize(request.query["end"]) if request.query.get("end") else timestamp()
    return start, end


def build_app(gw: Gateway) -> web.Application:
    """The aiohttp application: the routes of docs/gateway.md over ``gw``."""
    api = GatewayApi(gw)
    app = web.Application(middlewares=[api.auth_and_errors], client_max_size=20 * 1024 * 1024)
    r = app.router
    r.add_get("/health", api.health)
    r.add_put("/endpoints/{endpoint}/deployments/{deployment}", api.put_deployment)
    r.add_delete("/endpoints/{endpoint}/deployments/{deployment}", api.delete_deployment)
    r.add_get("/endpoints/{endpoint}/deployments", api.list_deployments)
    r.add_put("/endpoints/{endpoint}/deployments/{deployment}/faults", api.put_faults)
    r.add_get("/operations/{operation_id}", api.get_operation)
    r.add_route("GET", "/endpoints/{endpoint}/traffic", api.get_traffic)
    r.add_route("PUT", "/endpoints/{endpoint}/traffic", api.put_traffic)
    r.add_post("/endpoints/{endpoint}/score", api.score)
    r.add_get("/endpoints/{endpoint}/metrics", api.metrics)
    r.add_get("/endpoints/{endpoint}/requests", api.requests_log)
    app.cleanup_ctx.append(api.lifespan)
    return app
