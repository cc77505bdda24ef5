"""Durable entities: operation messages in, the SDK's entity handle runs a batch, state and responses out.

devhost runs function-based entities (``@app.entity_trigger``, the SDK's ``Entity.create``
handle) the way the Durable extension runs them for out-of-process SDKs
(https://learn.microsoft.com/azure/azure-functions/durable/durable-functions-entities):

- An entity is addressed by its scheduler id ``@<name in lower case>@<key>``, as the SDK's
  ``EntityId.get_scheduler_id`` builds it; the engine keeps its messages in the same inbox as
  orchestration messages, under that id.
- Each message is one operation request. The engine gives all of an entity's pending requests
  (up to ``maxEntityOperationBatchSize``) to the handle as one batch, in arrival order, one batch
  at a time per entity, and commits the new state with the consumed requests and the responses.
- The handle receives ``{"self": {"name", "key"}, "exists", "state", "batch": [{"name", "input"}]}``
  (``DurableEntityContext.from_json``): ``state`` is the state's JSON text, and each operation's
  ``input`` is the input's JSON text encoded once more as a JSON string (``get_input`` decodes it
  twice). It returns ``{"entityExists", "entityState", "results": [{"isError", "result", ...}],
  "signals"}`` (``EntityState.to_json``); ``result`` is JSON text (an error's is its message).
- A call's response goes back to the orchestration as the extension sends it: an ``EventRaised``
  named with the request id, whose input is ``{"result": <JSON text>}`` plus ``exceptionType``
  for a failed operation (the SDK's ``ResponseMessage.from_dict`` and
  ``TaskOrchestrationExecutor.set_task_value``). The orchestration's ``EventSent`` event carries
  the request id, which the SDK reads to match the response to its task.
"""

from __future__ import annotations

import json
import logging
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .history import EventType, event

log = logging.getLogger("devhost.entities")

ENTITY_PREFIX = "@"
OPERATION_EVENT = "op"  # the EventRaised name DTFx gives entity operation requests

EntityLookup = Callable[[str], Callable[[str], str] | None]


class EntityRequestError(ValueError):
    """An entity id or operation request is malformed; the message says why."""


def is_entity_id(instance_id: str) -> bool:
    """True for an entity's scheduler id (``@name@key``); orchestration ids may not start with ``@``."""
    return instance_id.startswith(ENTITY_PREFIX)


def entity_id(name: str, key: str) -> str:
    """The scheduler id of entity (name, key), as the SDK builds it: the name in lower case."""
    if not name:
        raise EntityRequestError("the entity name must not be empty")
    if not key:
        raise EntityRequestError("the entity key must not be empty")
    if "@" in name:
        raise EntityRequestError(f"the entity name must not contain '@': {name!r}")
    return f"{ENTITY_PREFIX}{name.lower()}{ENTITY_PREFIX}{key}"


def split_entity_id(scheduler_id: str) -> tuple[str, str]:
    """(name, key) of a scheduler id; EntityRequestError if it is not one."""
    name, sep, key = scheduler_id[1:].partition(ENTITY_PREFIX)
    if not is_entity_id(scheduler_id) or not sep or not name or not key:
        raise EntityRequestError(f"not an entity id (expected '@name@key'): {scheduler_id!r}")
    return name, key


def input_text(token: Any, raw_present: bool) -> str:
    """An operation input from an HTTP body (a decoded JSON token) as the JSON text the entity decodes.

    The SDK's ``client.signal_entity`` posts ``json.dumps(input)`` as a JSON string, so a string
    token that holds JSON is taken as that JSON text (as devhost reads orchestration inputs); any
    other token, or a string that is not JSON, is the input itself. No body: ``null``.
    """
    if not raw_present:
        return "null"
    if isinstance(token, str):
        try:
            json.loads(token)
        except json.JSONDecodeError:
            return json.dumps(token)
        return token
    return json.dumps(token)


@dataclass
class OperationRequest:
    """One operation for an entity: a signal (one-way) or a call whose response goes to ``parent``."""

    request_id: str
    operation: str
    input: str  # the input's JSON text
    signal: bool
    parent: str | None = None  # the calling orchestration
    parent_execution: str | None = None

    def to_json(self) -> str:
        """The request as stored in the message (and in the caller's EventSent event)."""
        return json.dumps({"id": self.request_id, "op": self.operation, "input": self.input,
                           "signal": self.signal, "parent": self.parent,
                           "parentExecution": self.parent_execution})

    @classmethod
    def from_body(cls, body: dict[str, Any]) -> OperationRequest:
        """Read a request back from a message body; EntityRequestError if it is not one."""
        try:
            data = json.loads(body["Input"])
            return cls(str(data["id"]), str(data["op"]), str(data["input"]), bool(data["signal"]),
                       data.get("parent"), data.get("parentExecution"))
        except (KeyError, TypeError, ValueError) as exc:
            raise EntityRequestError(f"not an entity operation message: {exc}") from exc


def new_request(operation: str, input_: str, signal: bool, parent: str | None = None,
                parent_execution: str | None = None) -> OperationRequest:
    """A request with a fresh id (a GUID, as the extension gives its request messages)."""
    return OperationRequest(str(uuid.uuid4()), operation, input_, signal, parent, parent_execution)


def request_body(request: OperationRequest, at: datetime) -> dict[str, Any]:
    """The message body that carries a request to an entity."""
    return event(EventType.EVENT_RAISED, -1, at, Name=OPERATION_EVENT, Input=request.to_json())


@dataclass
class BatchOutcome:
    """What one operation batch produced."""

    state: str | None  # the new state's JSON text; None: the entity does not exist (deleted)
    responses: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # (orchestration id, body)
    failed: int = 0  # operations that raised


def _response(request: OperationRequest, result: str, is_error: bool, at: datetime) -> tuple[str, dict[str, Any]]:
    payload: dict[str, Any] = {"result": result}
    if is_error:
        payload["exceptionType"] = "Exception"  # the Python SDK only tests for the key
    body = event(EventType.EVENT_RAISED, -1, at, Name=request.request_id, Input=json.dumps(payload))
    if request.parent_execution:
        body["ExecutionId"] = request.parent_execution  # dropped if the caller continued as new meanwhile
    return str(request.parent), body


def _fail_all(requests: list[OperationRequest], state: str | None, message: str, at: datetime) -> BatchOutcome:
    log.warning("entity batch failed: %s", message)
    outcome = BatchOutcome(state=state, failed=len(requests))
    for req in requests:
        if not req.signal and req.parent:
            outcome.responses.append(_response(req, json.dumps(message), True, at))
    return outcome


def run_batch(handle: Callable[[str], str] | None, scheduler_id: str, state: str | None,
              requests: list[OperationRequest], at: datetime) -> BatchOutcome:
    """Run one batch of operations on an entity through the SDK's handle.

    A handle that is missing, raises, or answers in a shape other than the SDK's fails every
    operation of the batch (the callers get the error) and leaves the state as it was.
    """
    name, key = split_entity_id(scheduler_id)
    if handle is None:
        return _fail_all(requests, state, f"The function '{name}' doesn't exist, is disabled, or is not an "
                                          "entity function.", at)
    context = json.dumps({
        "self": {"name": name, "key": key},
        "exists": state is not None,
        "state": state,
        "batch": [{"name": r.operation, "input": json.dumps(r.input)} for r in requests],
    })
    try:
        out = json.loads(handle(context))
        results = out["results"]
        if not isinstance(results, list) or len(results) != len(requests):
            raise ValueError(f"{len(requests)} operations gave {len(results)} results")
        new_state = str(out["entityState"]) if out.get("entityExists") else None
        parsed = [(bool(r["isError"]), str(r["result"])) for r in results]
    except Exception as exc:  # the user's entity function failed outside an operation
        detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        return _fail_all(requests, state, f"Entity function '{name}' failed: {detail}", at)
    outcome = BatchOutcome(state=new_state)
    for req, (is_error, result) in zip(requests, parsed, strict=True):
        if is_error:
            outcome.failed += 1
            log.info("entity %s operation %s failed: %s", scheduler_id, req.operation, result)
        if not req.signal and req.parent:
            outcome.responses.append(_response(req, result, is_error, at))
    return outcome
