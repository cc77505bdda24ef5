"""The operator HTTP API and the dashboard, on top of the Durable client.

Every route needs a function key (auth level FUNCTION). Actions that change anything also
need the operator role from the App Service authentication principal, and are written to
the audit trail with who, what, when and why. Bad requests get 400 with the reason, unknown
ids 404, actions that do not fit the run's state 409.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import azure.durable_functions as df
import azure.functions as func

from adapters import runtime
from mlops.contracts import (
    ABORT_EVENT,
    APPROVAL_EVENT,
    PAUSE_EVENT,
    RESUME_EVENT,
    RUN_KINDS,
    PromptInput,
    RetrainInput,
    RollbackInput,
)
from mlops.errors import EventError, MlopsError, PolicyError
from mlops.operator import (
    ACTIONS,
    ActionBody,
    ApiError,
    Principal,
    PromptBody,
    RetrainBody,
    RollbackBody,
    landing_data_url,
    openapi_document,
    parse_body,
    parse_run_id,
    principal_from_header,
    require_operator,
    run_summary,
)
from mlops.policy import Policy, is_model_name
from mlops.ports import DataRef
from mlops.prompts import parse_template
from mlops.run_index import Cursor, RunEntry, RunQuery, decode_cursor, encode_cursor
from mlops.runs import Request
from mlops.vocabulary import ACTIVE_RUNTIME_STATUSES, Alias, Source

from . import audit
from .submit import submit

bp = df.Blueprint()
DASHBOARD = Path(__file__).with_name("dashboard.html")
# Frappe Charts, vendored from its npm package (package.json pins it; a test checks the copy is the package's)
CHARTS = Path(__file__).with_name("vendor") / "frappe-charts.min.umd.js"
_CHARTS_SLOT = '<script data-vendor="frappe-charts"></script>'


def _json(body: Any, status: int = 200) -> func.HttpResponse:
    return func.HttpResponse(json.dumps(body, default=str), status_code=status, mimetype="application/json")


def _error(exc: ApiError) -> func.HttpResponse:
    return _json({"error": str(exc)}, exc.status)


def _status_dict(status: Any) -> dict[str, Any] | None:
    if status is None or getattr(status, "runtime_status", None) is None:
        return None
    body = status.to_json()
    body["runtimeStatus"] = status.runtime_status.value
    body["customStatus"] = status.custom_status
    body["instanceId"] = status.instance_id
    body["historyEvents"] = getattr(status, "historyEvents", None) or []
    body["createdTime"] = getattr(status, "_created_time", None) and status._created_time.isoformat()
    body["lastUpdatedTime"] = getattr(status, "_last_updated_time", None) and status._last_updated_time.isoformat()
    return dict(body)


async def _audit(principal: Principal, action: str, target: str, reason: str, result: dict[str, Any]) -> str:
    return await audit.record(principal.name, principal.roles, action, target, reason, result)


def _custom(status: dict[str, Any]) -> dict[str, Any]:
    raw = status.get("customStatus")
    return raw if isinstance(raw, dict) else {}


def _operator(req: func.HttpRequest) -> Principal:
    principal = principal_from_header(req.headers.get("x-ms-client-principal"))
    return require_operator(principal, runtime.settings().operator_role)


def _run_query(q: Any) -> tuple[RunQuery, Cursor | None]:
    """The run index query of GET /api/runs; ApiError(400) naming the parameter that is wrong."""
    kind = q.get("kind")
    if kind and kind not in RUN_KINDS:
        raise ApiError(400, f"kind must be one of {', '.join(RUN_KINDS)}, got {kind!r}")
    top = int(q.get("top", "50")) if q.get("top", "50").isdigit() else -1
    if not 1 <= top <= 200:
        raise ApiError(400, "top must be an integer from 1 to 200")
    times: dict[str, datetime] = {}
    for name in ("from", "to"):
        if q.get(name):
            try:
                moment = datetime.fromisoformat(q[name].replace("Z", "+00:00"))
            except ValueError as exc:
                raise ApiError(400, f"{name} must be an ISO 8601 time, got {q[name]!r}") from exc
            if not 1970 <= moment.year <= 9999:
                raise ApiError(400, f"{name} must be between 1970 and 9999, got {q[name]!r}")
            times[name] = moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)  # naive: UTC
    statuses = None
    if q.get("status"):
        try:
            statuses = frozenset(df.OrchestrationRuntimeStatus(s).value for s in q["status"].split(","))
        except ValueError as exc:
            raise ApiError(400, f"status has an unknown value: {q['status']!r}") from exc
    try:
        cursor = decode_cursor(q.get("continuation"))
    except ValueError as exc:
        raise ApiError(400, str(exc)) from exc
    return RunQuery(q.get("model") or None, kind or None, statuses, times.get("from"), times.get("to"), top), cursor


async def _live(client: df.DurableOrchestrationClient, entry: RunEntry) -> dict[str, Any]:
    """A listed run's line: its index entry, and for a run still in flight its live stage and message."""
    row = entry.summary()
    if entry.finished:
        return row
    status = _status_dict(await client.get_status(entry.id, show_input=False))
    if status is None:
        return row  # just indexed, not started yet (or purged while the index missed its end)
    try:
        return {**row, **run_summary(status), "created": entry.created}
    except ApiError:
        return row


# -- runs --------------------------------------------------------------------------------------
@bp.route(route="runs", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
@bp.durable_client_input(client_name="client")
async def list_runs(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    """GET /api/runs?model&kind&status&from&to&top&continuation: the run index, newest first.

    Reads one page of the index (``mlops.run_index``), never Durable's whole instance list; only the
    runs still in flight on the page are looked up live. ``total`` is the number of matching runs
    when they all fit in this first page, else null (counting would read the whole index).
    """
    try:
        query, cursor = _run_query(req.params)
        if query.model is not None and not is_model_name(query.model):
            return _json({"runs": [], "continuation": None, "total": 0})  # no model of that name can have runs
        try:
            page = await asyncio.to_thread(runtime.control().query_runs, query, cursor)
        except ValueError as exc:  # a continuation token whose marker the storage service refused
            raise ApiError(400, str(exc)) from exc
        rows = await asyncio.gather(*(_live(client, entry) for entry in page.entries))
        return _json({"runs": list(rows), "continuation": encode_cursor(page.next) if page.next else None,
                      "total": page.total})
    except ApiError as exc:
        return _error(exc)


def _purged_run(entry: RunEntry) -> dict[str, Any]:
    """GET /api/runs/{id} of a run whose Durable history is gone: its index entry, flagged."""
    return {**entry.summary(), "purged": entry.finished, "input": None, "output": None,
            "error": entry.message if entry.status == "Failed" else None, "stages": [], "gates": [], "traffic": {},
            "analysis": {}, "children": [], "history": []}


@bp.route(route="runs/{id}", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
@bp.durable_client_input(client_name="client")
async def get_run(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    """GET /api/runs/{id}: the stage timeline, gate verdicts, inputs, outputs, errors, children.

    A run whose history the retention purged answers its summary from the run index, ``purged: true``.
    """
    run_id = req.route_params["id"]
    try:
        kind, model = parse_run_id(run_id)
        status = _status_dict(await client.get_status(run_id, show_history=True, show_history_output=False,
                                                      show_input=True))
        if status is None:
            entry = None if kind == "lifecycle" else await asyncio.to_thread(runtime.control().run_entry, run_id)
            if entry is None:
                raise ApiError(404, f"no run with id {run_id!r}")
            return _json(_purged_run(entry))
        custom = _custom(status)
        children = [h for h in (custom.get("history") or [])] if kind == "lifecycle" else []
        head = run_summary(status) if kind != "lifecycle" else {"id": run_id, "kind": kind, "model": model,
                                                                "status": status["runtimeStatus"]}
        body = {**head, "purged": False,
                "input": status.get("input"), "output": status.get("output"),
                "error": status.get("output") if status["runtimeStatus"] == "Failed" else None,
                "stages": custom.get("stages", []), "gates": custom.get("gates", []),
                "traffic": custom.get("traffic", {}), "analysis": custom.get("analysis", {}),
                "children": children, "history": status.get("historyEvents", [])}
        return _json(body)
    except ApiError as exc:
        return _error(exc)


@bp.route(route="runs/{id}/{action}", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
@bp.durable_client_input(client_name="client")
async def run_action(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    """POST /api/runs/{id}/approve|reject|pause|resume|abort (operator role)."""
    run_id, action = req.route_params["id"], req.route_params["action"]
    try:
        if action not in ACTIONS:
            raise ApiError(404, f"unknown action {action!r}; one of {', '.join(ACTIONS)}")
        principal = _operator(req)
        body: ActionBody = parse_body(ActionBody, req.get_body())
        kind, _ = parse_run_id(run_id)
        status = _status_dict(await client.get_status(run_id))
        if status is None:
            raise ApiError(404, f"no run with id {run_id!r}")
        if status["runtimeStatus"] not in ACTIVE_RUNTIME_STATUSES:
            raise ApiError(409, f"run {run_id} is {status['runtimeStatus']}: nothing to {action}")
        if kind not in ACTIONS[action]:
            raise ApiError(409, f"{action} does not apply to a {kind} run")
        custom = _custom(status)
        if action in ("approve", "reject") and custom.get("stage") != "approval":
            raise ApiError(409, f"run {run_id} is not waiting for approval (stage {custom.get('stage')!r})")
        event = {"approve": APPROVAL_EVENT, "reject": APPROVAL_EVENT, "pause": PAUSE_EVENT, "resume": RESUME_EVENT,
                 "abort": ABORT_EVENT}[action]
        data = {"approved": action == "approve", "by": principal.name, "reason": body.reason}
        if action == "abort" and kind != "release":
            await client.terminate(run_id, f"aborted by {principal.name}: {body.reason}")
        else:
            await client.raise_event(run_id, event, data)
        audit_id = await _audit(principal, action, run_id, body.reason, {"event": event})
        return _json({"accepted": True, "run": run_id, "action": action, "audit": audit_id}, 202)
    except ApiError as exc:
        return _error(exc)


# -- models ------------------------------------------------------------------------------------
def _models() -> list[str]:
    return runtime.models()


def _model_overview(model: str, detail: bool) -> dict[str, Any]:
    policy = runtime.policy(model)
    platform = runtime.platform()
    champion = platform.get_alias(model, Alias.CHAMPION)
    previous = platform.get_alias(model, Alias.PREVIOUS)
    try:
        split = platform.get_traffic(policy.release.endpoint).to_dict()
    except MlopsError as exc:
        split = {"error": str(exc)}
    out: dict[str, Any] = {"model": model, "endpoint": policy.release.endpoint,
                           "champion": champion.version if champion else None,
                           "previous": previous.version if previous else None, "traffic": split}
    if detail:
        out["versions"] = [v.to_dict() for v in platform.list_model_versions(model)]
        try:
            out["deployments"] = platform.list_deployments(policy.release.endpoint)
        except MlopsError as exc:
            out["deployments"] = {"error": str(exc)}
        out["incidents"] = runtime.control().incidents(model, limit=20)
        out["performance"] = _performance(model, policy)
        out["drift"] = _drift(model)
        out["policy"] = policy.to_dict()
        if policy.is_chat:  # its prompt versions, shown like model versions (a version's tags name its prompt)
            out["prompts"] = [p.to_dict() for p in platform.list_prompts(model)]
    return out


FIGURES_SHOWN = 100  # the newest performance (and drift) figures in a model's detail (the store keeps a day's worth)


def _performance(model: str, policy: Policy) -> dict[str, Any]:
    """The champion's metric on ground truth over time (the monitor's figures, oldest first), and the newest
    feedback files with what became of each."""
    section = policy.monitoring.performance
    store = runtime.feedback()
    return {"enabled": section is not None, "metric": policy.performance_metric if section else None,
            "figures": store.figures(model, limit=FIGURES_SHOWN), "feedback": store.files(model, limit=20)}


def _drift(model: str) -> dict[str, Any]:
    """Each feature's drift statistic over time, against its threshold: the monitor's ticks, oldest first, each
    ``{at, version, drifted, rows, features: {name: {statistic, value, threshold, drifted}}}`` as the monitor
    kept them (``mlops.monitoring.drift_series_point``)."""
    return {"figures": runtime.feedback().figures(model, limit=FIGURES_SHOWN, series="drift")}


@bp.route(route="models", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
async def list_models(req: func.HttpRequest) -> func.HttpResponse:
    """GET /api/models: every model with a policy, its champion and live traffic."""
    models = await asyncio.to_thread(lambda: [_model_overview(m, False) for m in _models()])
    return _json({"models": models})


@bp.route(route="models/{model}", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
async def get_model(req: func.HttpRequest) -> func.HttpResponse:
    """GET /api/models/{model}: champion, versions with lineage, deployments, traffic, incidents, performance."""
    model = req.route_params["model"]
    if model not in _models():
        return _error(ApiError(404, f"no model named {model!r} (no policy file)"))
    try:
        return _json(await asyncio.to_thread(_model_overview, model, True))
    except PolicyError as exc:
        return _error(ApiError(400, str(exc)))


@bp.route(route="models/{model}/{action}", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
@bp.durable_client_input(client_name="client")
async def model_action(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    """POST /api/models/{model}/retrain|rollback|prompt (operator role)."""
    model, action = req.route_params["model"], req.route_params["action"]
    try:
        if action not in ("retrain", "rollback", "prompt"):
            raise ApiError(404, f"unknown action {action!r}; one of retrain, rollback, prompt")
        principal = _operator(req)
        if model not in _models():
            raise ApiError(404, f"no model named {model!r} (no policy file)")
        if action == "retrain":
            rbody: RetrainBody = parse_body(RetrainBody, req.get_body())
            landing_data_url(rbody.data_url, runtime.landing_url())  # never a file, another container, any URL
            request = Request.of(RetrainInput(model, DataRef(url=rbody.data_url, etag=rbody.etag)),
                                 dedup_key=f"operator:{uuid.uuid4().hex}", requested_by=principal.name)
            reason = rbody.reason
        elif action == "prompt":
            request, reason = await _register_prompt(model, parse_body(PromptBody, req.get_body()), principal)
        else:
            bbody: RollbackBody = parse_body(RollbackBody, req.get_body())
            champion = await asyncio.to_thread(runtime.platform().get_alias, model, Alias.CHAMPION)
            rollback = RollbackInput(model, f"operator {principal.name}: {bbody.reason}",
                                     champion.version if champion else None, Source.OPERATOR)
            request = Request.of(rollback, dedup_key=f"operator:{uuid.uuid4().hex}", requested_by=principal.name)
            reason = bbody.reason
        result = await submit(client, request)
        audit_id = await _audit(principal, action, model, reason, result)
        return _json({**result, "audit": audit_id}, 202)
    except ApiError as exc:
        return _error(exc)


async def _register_prompt(model: str, body: PromptBody, principal: Principal) -> tuple[Request, str]:
    """Register the prompt version, and the request that tries it (refused, with nothing registered, for a model
    that is not a chat model or a template that does not fit)."""
    if not runtime.policy(model).is_chat:
        raise ApiError(409, f"{model} is not a chat model (evaluation.model_type): it has no prompt")
    try:
        template = parse_template(body.template)
    except EventError as exc:
        raise ApiError(400, str(exc)) from exc
    version = await asyncio.to_thread(runtime.platform().register_prompt, model, template,
                                      body.message or f"registered by {principal.name}",
                                      {"registered_by": principal.name})
    request = Request.of(PromptInput(model, version.version, reason=body.message),
                         dedup_key=f"prompt:{version.name}:{version.version}", requested_by=principal.name)
    return request, body.message or f"prompt v{version.version}"


@bp.route(route="models/{model}/prompts", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
async def list_prompts(req: func.HttpRequest) -> func.HttpResponse:
    """GET /api/models/{model}/prompts: a chat model's prompt versions, oldest first, with their aliases."""
    model = req.route_params["model"]
    if model not in _models():
        return _error(ApiError(404, f"no model named {model!r} (no policy file)"))
    if not runtime.policy(model).is_chat:
        return _json({"model": model, "prompts": []})
    found = await asyncio.to_thread(runtime.platform().list_prompts, model)
    return _json({"model": model, "prompts": [p.to_dict() for p in found]})


# -- documents ---------------------------------------------------------------------------------
@bp.route(route="openapi.json", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def openapi(req: func.HttpRequest) -> func.HttpResponse:
    """The OpenAPI 3 document of this API."""
    return _json(openapi_document())


@bp.route(route="audit", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
async def audit_trail(req: func.HttpRequest) -> func.HttpResponse:
    """GET /api/audit: the newest operator actions."""
    return _json({"audit": await asyncio.to_thread(runtime.control().audit, 100)})


@bp.route(route="dashboard", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def dashboard(req: func.HttpRequest) -> func.HttpResponse:
    """The live dashboard: one self-contained page that uses the API above."""
    return func.HttpResponse(dashboard_page(), mimetype="text/html",
                             headers={"Cache-Control": "no-store", "Content-Security-Policy":
                                      "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'"})


def dashboard_page() -> str:
    """The dashboard with its charting library inlined: the page's CSP allows inline scripts only, and one
    response keeps it self-contained (no second request, no CDN)."""
    page, charts = DASHBOARD.read_text(encoding="utf-8"), CHARTS.read_text(encoding="utf-8")
    if "</script" in charts.lower():
        raise RuntimeError(f"{CHARTS} contains '</script' and cannot be inlined")
    return page.replace(_CHARTS_SLOT, f'<script data-vendor="frappe-charts">{charts}</script>', 1)
