"""The operator API's logic, with no Functions imports: who is calling, request bodies, run views, paging.

Identity comes from App Service authentication (Easy Auth), which puts the signed-in
principal in ``X-MS-CLIENT-PRINCIPAL`` (base64 JSON with ``claims``); see
https://learn.microsoft.com/azure/app-service/configure-authentication-user-identities .
The alert webhook takes the alerting role (an action group's secure webhook signs in with
Entra ID) or the app's own alert key in the URL (a plain action-group webhook can carry no
header); see https://learn.microsoft.com/azure/azure-monitor/alerts/action-groups#webhook .
"""

from __future__ import annotations

import base64
import hmac
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .contracts import RELEASE, RETRAIN, ROLLBACK, RUN_KINDS


class ApiError(Exception):
    """An API error with its HTTP status; the message is the body's reason."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Principal:
    """The caller: a name and roles."""

    name: str
    roles: tuple[str, ...]


class _Claim(BaseModel):
    typ: str
    val: str


class _ClientPrincipal(BaseModel):
    """The shape of ``X-MS-CLIENT-PRINCIPAL``; other fields (``auth_typ``, ...) are ignored."""

    claims: list[_Claim] = []
    name_typ: str | None = None
    role_typ: str | None = None
    userId: str | None = None  # Static Web Apps' form of the same header


def principal_from_header(value: str | None) -> Principal | None:
    """Decode ``X-MS-CLIENT-PRINCIPAL``; None when absent; ApiError(401) when it cannot be read."""
    if not value:
        return None
    try:
        data = json.loads(base64.b64decode(value + "=" * (-len(value) % 4)))
    except (ValueError, RecursionError) as exc:  # ValueError covers binascii, Unicode and JSON decoding errors
        raise ApiError(401, "X-MS-CLIENT-PRINCIPAL is not base64-encoded JSON") from exc
    try:
        parsed = _ClientPrincipal.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "the header"
        raise ApiError(401, f"X-MS-CLIENT-PRINCIPAL {where}: {err['msg']}") from exc
    role_type, name_type = parsed.role_typ or "roles", parsed.name_typ or "name"
    roles = tuple(c.val for c in parsed.claims if c.typ in (role_type, "roles"))
    names = [c.val for c in parsed.claims if c.typ in (name_type, "name", "preferred_username")]
    return Principal(name=names[0] if names else parsed.userId or "unknown", roles=roles)


def require_operator(principal: Principal | None, role: str) -> Principal:
    """401 without a signed-in principal, 403 without the operator role."""
    if principal is None:
        raise ApiError(401, "sign-in required: no X-MS-CLIENT-PRINCIPAL (App Service authentication)")
    if role not in principal.roles:
        raise ApiError(403, f"the {role!r} role is required for this action; {principal.name} has "
                            f"{', '.join(principal.roles) or 'no roles'}")
    return principal


ALERT_KEY_CALLER = "alert webhook (MLOPS_ALERT_KEY)"


def authorize_alert(principal: Principal | None, role: str, presented_key: str | None,
                    alert_key: str | None) -> str:
    """Who posts an alert: a principal with the alerting ``role``, or a caller presenting ``alert_key``.

    ApiError 401 with neither, 403 for a principal without the role. The function key alone is
    not enough: it opens every route, and is in every dashboard URL.
    """
    if alert_key and presented_key and hmac.compare_digest(presented_key.encode(), alert_key.encode()):
        return ALERT_KEY_CALLER
    if principal is None:
        raise ApiError(401, f"an alert needs the {role!r} role (App Service authentication, e.g. an action "
                            "group's secure webhook) or the alert key (MLOPS_ALERT_KEY) as the code")
    if role not in principal.roles:
        raise ApiError(403, f"the {role!r} role is required to post alerts; {principal.name} has "
                            f"{', '.join(principal.roles) or 'no roles'}")
    return principal.name


def landing_data_url(data_url: str, landing_url: str) -> str:
    """``data_url`` if it names a blob in the landing container at ``landing_url``; ApiError(400) otherwise.

    Operators name the data a retrain reads; anything else (a file, another container or account,
    an instance metadata address) would let them read what the app can read.
    """
    url, landing = urlsplit(data_url), urlsplit(landing_url.rstrip("/"))
    prefix = landing.path + "/"
    same_place = ((url.scheme.lower(), url.netloc.lower()) == (landing.scheme.lower(), landing.netloc.lower())
                  and (url.path == landing.path or url.path.startswith(prefix)))
    if not same_place:
        raise ApiError(400, f"data_url: must be a blob in the landing container {landing_url.rstrip('/')}/, "
                            f"got {data_url!r}")
    if url.query or url.fragment:
        raise ApiError(400, f"data_url: must be a plain blob URL, without a query or fragment, got {data_url!r}")
    name = unquote(url.path[len(prefix):])
    if not name.strip("/"):
        raise ApiError(400, f"data_url: names no blob inside the landing container, got {data_url!r}")
    if "\\" in name:
        raise ApiError(400, f"data_url: a blob name with a backslash is refused, got {data_url!r}")
    if any(part in (".", "..") for part in name.split("/")):
        raise ApiError(400, f"data_url: a blob name with '.' or '..' segments is refused, got {data_url!r}")
    return data_url


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ActionBody(_Body):
    """Body of approve, reject, pause, resume and abort."""

    reason: str = Field("", max_length=500, description="Why; recorded in the audit trail.")


class RetrainBody(_Body):
    """Body of POST /models/{model}/retrain."""

    data_url: str = Field(min_length=1, max_length=2000,
                          description="URL of the training data: a blob in the landing container.")
    etag: str = Field("", max_length=200)
    reason: str = Field("", max_length=500)


class RollbackBody(_Body):
    """Body of POST /models/{model}/rollback."""

    reason: str = Field(min_length=1, max_length=500, description="Why the rollback; recorded in the incident.")


class PromptBody(_Body):
    """Body of POST /models/{model}/prompt: a new version of a chat model's prompt (mlops.prompts)."""

    template: list[dict[str, str]] = Field(min_length=1, max_length=20, description=(
        "Chat messages {role, content}; {{question}} in a user message stands for the question asked."))
    message: str = Field("", max_length=500, description="Why this prompt: the registry's commit message.")


def parse_body(model: type[_Body], raw: bytes) -> Any:
    """Validate a JSON body; ApiError(400) naming the field."""
    try:
        data = json.loads(raw or b"{}")
    except (ValueError, RecursionError) as exc:  # RecursionError: nested too deeply to parse
        raise ApiError(400, f"body is not valid JSON: {exc}") from exc
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "body"
        raise ApiError(400, f"{where}: {err['msg']}") from exc


# Which run kinds an action applies to.
ACTIONS = {"approve": (RETRAIN,), "reject": (RETRAIN,), "pause": (RELEASE,), "resume": (RELEASE,),
           "abort": (RELEASE, RETRAIN, ROLLBACK)}


def parse_run_id(run_id: str) -> tuple[str, str]:
    """(kind, model) from a run id ``<kind>-<model>-<hash>``; ApiError(404) if it is not one."""
    for kind in (*RUN_KINDS, "lifecycle"):
        prefix = f"{kind}-"
        if run_id.startswith(prefix):
            rest = run_id[len(prefix):]
            model = rest.rsplit("-", 1)[0] if kind != "lifecycle" else rest
            return kind, model
    raise ApiError(404, f"no run with id {run_id!r}")


def run_summary(status: dict[str, Any]) -> dict[str, Any]:
    """One line of GET /runs from a Durable status document."""
    kind, model = parse_run_id(status["instanceId"])
    raw = status.get("customStatus")
    custom: dict[str, Any] = raw if isinstance(raw, dict) else {}
    return {"id": status["instanceId"], "kind": kind, "model": model, "status": status.get("runtimeStatus"),
            "created": status.get("createdTime"), "updated": status.get("lastUpdatedTime"),
            "stage": custom.get("stage"), "verdict": custom.get("verdict"), "version": custom.get("version"),
            "message": custom.get("message", "")}


def encode_token(offset: int) -> str:
    """Continuation token for offset paging."""
    return base64.urlsafe_b64encode(json.dumps({"offset": offset}).encode()).decode()


def decode_token(token: str | None) -> int:
    """Offset from a continuation token; ApiError(400) for a bad one."""
    if not token:
        return 0
    try:
        return int(json.loads(base64.urlsafe_b64decode(token.encode()))["offset"])
    except (ValueError, KeyError, TypeError, json.JSONDecodeError) as exc:
        raise ApiError(400, "continuation token is not valid") from exc


def openapi_document(server_prefix: str = "/api") -> dict[str, Any]:
    """The OpenAPI 3 description of the operator API."""
    schemas = {m.__name__: m.model_json_schema() for m in (ActionBody, RetrainBody, RollbackBody, PromptBody)}
    key: list[dict[str, list[str]]] = [{"functionKey": []}]
    err = {"description": "error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    schemas["Error"] = {"type": "object", "properties": {"error": {"type": "string"}}, "required": ["error"]}

    def op(summary: str, params: list[dict[str, Any]] | None = None, body: str | None = None,
           codes: tuple[int, ...] = (200,)) -> dict[str, Any]:
        item: dict[str, Any] = {"summary": summary, "security": key, "parameters": params or [],
                                "responses": {str(c): {"description": "ok", "content": {"application/json": {
                                    "schema": {"type": "object"}}}} for c in codes}}
        for c in (400, 401, 403, 404, 409):
            item["responses"][str(c)] = err
        if body:
            item["requestBody"] = {"required": True, "content": {"application/json": {
                "schema": {"$ref": f"#/components/schemas/{body}"}}}}
        return item

    def q(name: str, schema: dict[str, Any]) -> dict[str, Any]:
        return {"name": name, "in": "query", "required": False, "schema": schema}

    def p(name: str) -> dict[str, Any]:
        return {"name": name, "in": "path", "required": True, "schema": {"type": "string", "minLength": 1}}

    paths: dict[str, Any] = {
        "/runs": {"get": op("List runs", [q("model", {"type": "string"}),
                                          q("kind", {"type": "string", "enum": list(RUN_KINDS)}),
                                          q("status", {"type": "string", "enum": ["Pending", "Running", "Completed",
                                                                                  "Failed", "Terminated",
                                                                                  "Suspended"]}),
                                          q("from", {"type": "string", "format": "date-time"}),
                                          q("to", {"type": "string", "format": "date-time"}),
                                          q("top", {"type": "integer", "minimum": 1, "maximum": 200}),
                                          q("continuation", {"type": "string"})])},
        "/runs/{id}": {"get": op("One run: timeline, gates, inputs, outputs, children", [p("id")])},
        "/models": {"get": op("List models")},
        "/models/{model}": {"get": op("One model: champion, versions, deployments, traffic, incidents",
                                      [p("model")])},
        "/models/{model}/retrain": {"post": op("Start a retrain", [p("model")], "RetrainBody", (202,))},
        "/models/{model}/rollback": {"post": op("Roll back to the previous champion", [p("model")], "RollbackBody",
                                                (202,))},
        "/models/{model}/prompt": {"post": op("Register a chat model's prompt version and try it (docs/llmops.md)",
                                              [p("model")], "PromptBody", (202,))},
        "/models/{model}/prompts": {"get": op("A chat model's prompt versions with their aliases", [p("model")])},
        "/audit": {"get": op("The newest operator actions")},
        "/maintenance/backfill-runs": {"post": op("Index the runs Durable has and the run index lacks (a one-off "
                                                  "after an upgrade; operator role, audited)")},
    }
    for action in ACTIONS:
        paths[f"/runs/{{id}}/{action}"] = {"post": op(f"{action.capitalize()} a run", [p("id")], "ActionBody",
                                                      (202,))}
    return {"openapi": "3.0.3",
            "info": {"title": "MLOps operator API", "version": "1.0.0",
                     "description": "See and steer every run. Every route needs a function key; actions also "
                                    "need the operator role."},
            "servers": [{"url": server_prefix}],
            "paths": paths,
            "components": {"schemas": schemas, "securitySchemes": {
                "functionKey": {"type": "apiKey", "in": "header", "name": "x-functions-key"}}}}
