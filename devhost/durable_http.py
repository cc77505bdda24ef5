"""The Durable Functions HTTP API: instance management over HTTP.

Served twice, like the extension does: under ``/runtime/webhooks/durabletask/`` on the
public port, and under ``/durabletask/`` on a loopback-only RPC port that the SDK's
``DurableOrchestrationClient`` calls (its ``rpcBaseUrl``, no key). The public API needs the
system key (or the master key) only when devhost runs with ``--enable-auth``; by default, as
Core Tools without ``func start --enableAuth``, it needs none
(https://learn.microsoft.com/azure/azure-functions/functions-run-local#considerations-when-running-locally).
Management URLs carry ``code=<system key>`` in both modes, so they work in either.

Status codes and payloads follow
https://learn.microsoft.com/azure/azure-functions/durable/durable-functions-http-api
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

from aiohttp import web

from .engine import Engine, EngineError
from .entities import EntityRequestError, entity_id, input_text
from .history import EVENT_NAMES, EventType, parse_iso
from .orchestration import PENDING, RUNNING, SUSPENDED, TERMINAL, Instance
from .store import Store

PUBLIC_PREFIX = "/runtime/webhooks/durabletask"
RPC_PREFIX = "/durabletask"
_IN_PROGRESS = {PENDING, RUNNING, SUSPENDED, "ContinuedAsNew"}
_VALID_STATUSES = {PENDING, RUNNING, SUSPENDED, "Completed", "Failed", "Terminated", "ContinuedAsNew", "Canceled"}


def _token(raw: str | None) -> Any:
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


def _time(value: str) -> str:
    return value[:19] + "Z" if value else value


def status_payload(inst: Instance, history: list[dict[str, Any]] | None = None, show_input: bool = True,
                   show_output: bool = False) -> dict[str, Any]:
    """The status document Azure returns for an instance."""
    body: dict[str, Any] = {
        "name": inst.name,
        "instanceId": inst.instance_id,
        "runtimeStatus": inst.status,
        "input": _token(inst.input) if show_input else None,
        "customStatus": _token(inst.custom_status),
        "output": _token(inst.output),
        "createdTime": _time(inst.created_at),
        "lastUpdatedTime": _time(inst.updated_at),
    }
    if history is not None:
        body["historyEvents"] = history_payload(history, show_output)
    return body


def history_payload(history: list[dict[str, Any]], show_output: bool) -> list[dict[str, Any]]:
    """History as ``showHistory=true`` shows it: the user-visible events with function names.

    As the extension's ``DurableClient.GetDurableOrchestrationStatusAsync`` does, a ``TaskScheduled`` or
    ``SubOrchestrationInstanceCreated`` is folded into its completion (``FunctionName``, ``ScheduledTime``)
    and shown on its own only while nothing completed it; ``TimerCreated`` is shown (with ``FireAt``).
    """
    starts = (EventType.TASK_SCHEDULED, EventType.SUB_ORCHESTRATION_INSTANCE_CREATED)
    names = {e["EventId"]: e.get("Name") for e in history if e["EventType"] in starts}
    scheduled = {e["EventId"]: e["Timestamp"] for e in history if e["EventType"] in starts}
    folded = {e["TaskScheduledId"] for e in history if "TaskScheduledId" in e}
    shown = {EventType.EXECUTION_STARTED, EventType.TASK_COMPLETED, EventType.TASK_FAILED,
             EventType.SUB_ORCHESTRATION_INSTANCE_COMPLETED, EventType.SUB_ORCHESTRATION_INSTANCE_FAILED,
             EventType.TIMER_CREATED, EventType.TIMER_FIRED, EventType.EVENT_RAISED, EventType.EXECUTION_COMPLETED,
             EventType.EXECUTION_FAILED, EventType.EXECUTION_TERMINATED, EventType.EXECUTION_SUSPENDED,
             EventType.EXECUTION_RESUMED, *starts}
    out: list[dict[str, Any]] = []
    for e in history:
        etype = e["EventType"]
        if etype not in shown or (etype in starts and e["EventId"] in folded):
            continue
        item: dict[str, Any] = {"EventType": EVENT_NAMES[etype], "Timestamp": e["Timestamp"]}
        if etype in (EventType.EXECUTION_STARTED, *starts):
            item["FunctionName"] = e.get("Name")
        if "TaskScheduledId" in e:
            item["FunctionName"] = names.get(e["TaskScheduledId"])
            if e["TaskScheduledId"] in scheduled:
                item["ScheduledTime"] = scheduled[e["TaskScheduledId"]]
        if etype == EventType.EVENT_RAISED:
            item["Name"] = e.get("Name")
        if etype in (EventType.TIMER_CREATED, EventType.TIMER_FIRED):
            item["FireAt"] = e.get("FireAt")
        if etype in (EventType.TASK_FAILED, EventType.SUB_ORCHESTRATION_INSTANCE_FAILED, EventType.EXECUTION_FAILED):
            item["Reason"] = e.get("Reason")
            item["Details"] = e.get("Details")
        if etype == EventType.EXECUTION_COMPLETED:
            item["OrchestrationStatus"] = e.get("OrchestrationStatus")
        if show_output and "Result" in e:
            item["Result"] = _token(e["Result"])
        out.append(item)
    return out


def _flag(request: web.Request, name: str, default: bool) -> bool:
    raw = request.query.get(name)
    if raw is None:
        return default
    return raw.lower() in ("true", "1", "yes")


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"Message": message, "ExceptionMessage": message}, status=status)


class DurableHttpApi:
    """Route handlers shared by the public webhook and the RPC endpoint."""

    def __init__(self, engine: Engine, store: Store, hub: str, system_key: str, master_key: str,
                 public_base: Callable[[web.Request], str]) -> None:
        self.engine = engine
        self.store = store
        self.hub = hub
        self.system_key = system_key
        self.master_key = master_key
        self.public_base = public_base

    # -- URLs ------------------------------------------------------------------------------
    def query_suffix(self) -> str:
        """The query string every management URL carries (hub, connection, system key)."""
        return f"taskHub={quote(self.hub)}&connection=Storage&code={quote(self.system_key)}"

    def management_urls(self, origin: str, instance_id: str) -> dict[str, str]:
        """The management payload (``create_http_management_payload``) for one instance."""
        base = f"{origin}{PUBLIC_PREFIX}/instances/{quote(instance_id, safe='')}"
        q = self.query_suffix()
        return {
            "id": instance_id,
            "statusQueryGetUri": f"{base}?{q}",
            "sendEventPostUri": f"{base}/raiseEvent/{{eventName}}?{q}",
            "terminatePostUri": f"{base}/terminate?reason={{text}}&{q}",
            "rewindPostUri": f"{base}/rewind?reason={{text}}&{q}",
            "purgeHistoryDeleteUri": f"{base}?{q}",
            "restartPostUri": f"{base}/restart?{q}",
            "suspendPostUri": f"{base}/suspend?reason={{text}}&{q}",
            "resumePostUri": f"{base}/resume?reason={{text}}&{q}",
        }

    # -- routes ----------------------------------------------------------------------------
    def add_routes(self, app: web.Application, prefix: str, authorize: bool) -> None:
        """Mount the API under ``prefix``; with ``authorize`` every call needs the system or master key."""
        def guard(handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> Any:
            async def wrapped(request: web.Request) -> web.StreamResponse:
                if authorize:
                    key = request.query.get("code") or request.headers.get("x-functions-key")
                    if not key or key not in (self.system_key, self.master_key):
                        return _error(401, "a valid system key is required (query 'code' or header x-functions-key)")
                return await handler(request)
            return wrapped

        r = app.router
        r.add_post(f"{prefix}/orchestrators/{{name}}", guard(self.start))
        r.add_post(f"{prefix}/orchestrators/{{name}}/{{instance_id}}", guard(self.start))
        r.add_get(f"{prefix}/instances", guard(self.list_instances))
        r.add_get(f"{prefix}/instances/", guard(self.list_instances))
        r.add_delete(f"{prefix}/instances", guard(self.purge_many))
        r.add_delete(f"{prefix}/instances/", guard(self.purge_many))
        r.add_get(f"{prefix}/instances/{{instance_id}}", guard(self.get_status))
        r.add_delete(f"{prefix}/instances/{{instance_id}}", guard(self.purge_one))
        r.add_post(f"{prefix}/instances/{{instance_id}}/raiseEvent/{{event}}", guard(self.raise_event))
        r.add_post(f"{prefix}/instances/{{instance_id}}/terminate", guard(self.terminate))
        r.add_post(f"{prefix}/instances/{{instance_id}}/suspend", guard(self.suspend))
        r.add_post(f"{prefix}/instances/{{instance_id}}/resume", guard(self.resume))
        r.add_post(f"{prefix}/instances/{{instance_id}}/rewind", guard(self.rewind))
        r.add_post(f"{prefix}/entities/{{name}}/{{key}}", guard(self.signal_entity))
        r.add_get(f"{prefix}/entities/{{name}}/{{key}}", guard(self.get_entity))

    async def _await(self, fut: Any) -> Any:
        return await asyncio.wrap_future(fut)

    async def start(self, request: web.Request) -> web.Response:
        """POST orchestrators/{name}/{instanceId?}: 202 with the management payload."""
        raw = await request.text()
        token: Any = None
        if raw.strip():
            try:
                token = json.loads(raw)
            except json.JSONDecodeError:
                return _error(400, "the request body must be JSON (the orchestration input)")
        input_ = None if token is None else json.dumps(token)
        try:
            # ?version= is how the SDK's start_new(version=...) sends it (DurableOrchestrationClient._get_start_new_url)
            inst = await self._await(self.engine.cmd_start(request.match_info["name"],
                                                           request.match_info.get("instance_id"), input_,
                                                           request.query.get("version")))
        except EngineError as exc:
            return _error(exc.status, str(exc))
        payload = self.management_urls(self.public_base(request), inst.instance_id)
        return web.json_response(payload, status=202, headers={"Location": payload["statusQueryGetUri"],
                                                               "Retry-After": "10"})

    async def get_status(self, request: web.Request) -> web.Response:
        """GET instances/{id}: 202 while in progress, 200 once finished, 404 if unknown."""
        iid = request.match_info["instance_id"]
        inst = self.store.get_instance(iid)
        if inst is None:
            return web.json_response(f"No instance with ID '{iid}' found.", status=404)
        history = self.store.get_history(iid) if _flag(request, "showHistory", False) else None
        body = status_payload(inst, history, _flag(request, "showInput", True),
                              _flag(request, "showHistoryOutput", False))
        status = 202 if inst.status in _IN_PROGRESS else 200
        headers = {}
        if status == 202:
            payload = self.management_urls(self.public_base(request), iid)
            headers = {"Location": payload["statusQueryGetUri"], "Retry-After": "10"}
        return web.json_response(body, status=status, headers=headers)

    def _filters(self, request: web.Request) -> dict[str, Any]:
        q = request.query
        filters: dict[str, Any] = {}
        for param, key in (("createdTimeFrom", "created_from"), ("createdTimeTo", "created_to")):
            if q.get(param):
                try:
                    filters[key] = parse_iso(q[param]).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
                except ValueError as exc:
                    raise EngineError(400, f"{param} is not an ISO 8601 time: {q[param]!r}") from exc
        if q.get("runtimeStatus"):
            statuses = [s.strip() for s in q["runtimeStatus"].split(",") if s.strip()]
            bad = [s for s in statuses if s not in _VALID_STATUSES]
            if bad:
                raise EngineError(400, f"runtimeStatus has unknown values: {', '.join(bad)}")
            filters["statuses"] = statuses
        if q.get("instanceIdPrefix"):
            filters["prefix"] = q["instanceIdPrefix"]
        return filters

    async def list_instances(self, request: web.Request) -> web.Response:
        """GET instances: filters, ``top`` and ``x-ms-continuation-token`` paging."""
        try:
            filters = self._filters(request)
            top = int(request.query["top"]) if request.query.get("top") else None
            if top is not None and top < 1:
                raise EngineError(400, "top must be a positive integer")
            token = request.headers.get("x-ms-continuation-token") or None
            items, next_token = self.store.query(top=top, token=token, **filters)
        except ValueError as exc:
            return _error(400, str(exc))
        except EngineError as exc:
            return _error(exc.status, str(exc))
        show_input = _flag(request, "showInput", False)
        body = [status_payload(i, show_input=show_input) for i in items]
        headers = {"x-ms-continuation-token": next_token} if next_token else {}
        return web.json_response(body, status=200, headers=headers)

    async def raise_event(self, request: web.Request) -> web.Response:
        """POST instances/{id}/raiseEvent/{name}: 202, 404 unknown, 410 finished."""
        raw = await request.text()
        data = None
        if raw.strip():
            try:
                json.loads(raw)
            except json.JSONDecodeError:
                return _error(400, "Only application/json request content is supported")
            data = raw
        return await self._simple(self.engine.cmd_raise_event(request.match_info["instance_id"],
                                                              request.match_info["event"], data))

    async def terminate(self, request: web.Request) -> web.Response:
        """POST instances/{id}/terminate?reason=: 202, 404, 410 when already finished."""
        return await self._simple(self.engine.cmd_terminate(request.match_info["instance_id"],
                                                            request.query.get("reason", "")))

    async def suspend(self, request: web.Request) -> web.Response:
        """POST instances/{id}/suspend."""
        return await self._simple(self.engine.cmd_suspend(request.match_info["instance_id"],
                                                          request.query.get("reason", ""), True))

    async def resume(self, request: web.Request) -> web.Response:
        """POST instances/{id}/resume."""
        return await self._simple(self.engine.cmd_suspend(request.match_info["instance_id"],
                                                          request.query.get("reason", ""), False))

    async def rewind(self, request: web.Request) -> web.Response:
        """POST instances/{id}/rewind: only Failed instances."""
        return await self._simple(self.engine.cmd_rewind(request.match_info["instance_id"],
                                                         request.query.get("reason", "")))

    async def _simple(self, fut: Any) -> web.Response:
        try:
            await self._await(fut)
        except EngineError as exc:
            return _error(exc.status, str(exc))
        return web.Response(status=202)

    async def purge_one(self, request: web.Request) -> web.Response:
        """DELETE instances/{id}: 200 with instancesDeleted, 404 if there is nothing to purge."""
        iid = request.match_info["instance_id"]
        inst = self.store.get_instance(iid)
        if inst is None:
            return web.json_response({"instancesDeleted": 0}, status=404)
        if inst.status not in TERMINAL:
            return _error(409, f"instance '{iid}' is {inst.status}; only finished instances can be purged")
        deleted = await self._await(self.engine.cmd_purge([iid]))
        return web.json_response({"instancesDeleted": deleted}, status=200 if deleted else 404)

    async def purge_many(self, request: web.Request) -> web.Response:
        """DELETE instances?createdTimeFrom=...: purge finished instances matching the filters."""
        if not request.query.get("createdTimeFrom"):
            return _error(400, "createdTimeFrom is required to purge many instances")
        try:
            filters = self._filters(request)
        except EngineError as exc:
            return _error(exc.status, str(exc))
        statuses = filters.pop("statuses", None) or sorted(TERMINAL)
        items, _ = self.store.query(statuses=[s for s in statuses if s in TERMINAL], **filters)
        deleted = await self._await(self.engine.cmd_purge([i.instance_id for i in items]))
        return web.json_response({"instancesDeleted": deleted}, status=200 if deleted else 404)

    # -- entities (https://learn.microsoft.com/azure/azure-functions/durable/durable-functions-http-api#signal-entity)
    async def signal_entity(self, request: web.Request) -> web.Response:
        """POST entities/{name}/{key}?op=: 202 once the signal is queued; 400 bad body or key; 404 no such entity."""
        raw = await request.text()
        token: Any = None
        if raw.strip():
            if "json" not in request.content_type:
                return _error(400, "Only application/json request content is supported")
            try:
                token = json.loads(raw)
            except json.JSONDecodeError:
                return _error(400, "the request body must be JSON (the operation input)")
        fut = self.engine.cmd_signal_entity(request.match_info["name"], request.match_info["key"],
                                            request.query.get("op", ""), input_text(token, bool(raw.strip())))
        return await self._simple(fut)

    async def get_entity(self, request: web.Request) -> web.Response:
        """GET entities/{name}/{key}: 200 with the state (its JSON), 404 when the entity does not exist."""
        try:
            scheduler_id = entity_id(request.match_info["name"], request.match_info["key"])
        except EntityRequestError as exc:
            return _error(400, str(exc))
        state = self.store.get_entity(scheduler_id)
        if state is None:
            return _error(404, f"The entity '{scheduler_id}' does not exist.")
        return web.Response(text=state, status=200, content_type="application/json")
