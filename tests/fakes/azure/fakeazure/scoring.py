"""A managed online endpoint answering requests: the live split, mirrored traffic, the model data collector.

``score`` is what happens when a client POSTs to the endpoint's scoring URI (or the app invokes one
deployment): the request goes to a deployment by the endpoint's ``traffic`` (or to the one named, as the
``azureml-model-deployment`` header does), a copy goes to each ``mirror_traffic`` deployment at its share,
each deployment that answers logs the request for Azure Monitor (status, latency) and its inputs and outputs
to the workspace's blob datastore as the data collector does (JSONL CloudEvents, one folder per hour):
https://learn.microsoft.com/azure/machine-learning/how-to-collect-production-data
A test makes a deployment fail with ``State.set_flag("fail:<endpoint>/<deployment>", "500")``.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import UTC, datetime
from typing import Any

from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.storage.blob import BlobClient

from .jobs_runner import predict
from .ml import ensure_container
from .state import State, Workspace

LATENCY_MS = 20.0  # every answer takes this long, plus a little per row


def _bucket(request_id: str, salt: str) -> int:
    return int(hashlib.sha256(f"{salt}:{request_id}".encode()).hexdigest(), 16) % 100


def _pick(traffic: dict[str, int], request_id: str) -> str | None:
    at, point = 0, _bucket(request_id, "live")
    for name in sorted(traffic):
        at += traffic[name]
        if point < at:
            return name
    return None


def _rows(payload: Any) -> list[dict[str, Any]]:
    """MLflow deployments take ``input_data`` as records or in pandas' split orientation."""
    data = payload.get("input_data") if isinstance(payload, dict) else None
    if isinstance(data, dict) and {"columns", "data"} <= set(data):
        return [dict(zip(data["columns"], row, strict=True)) for row in data["data"]]
    if isinstance(data, list) and all(isinstance(r, dict) for r in data):
        return data
    raise ValueError("the request has no input_data the model's signature accepts")


def score(state: State, endpoint: str, payload: Any, deployment: str | None = None,
          request_id: str | None = None) -> tuple[int, str, str]:
    """(status, body, deployment that answered) for one request."""
    request_id = request_id or str(uuid.uuid4())
    ep = state.get("endpoint", endpoint)
    if ep is None:
        return 404, f"endpoint {endpoint} not found", ""
    props = ep["rest"]["properties"]
    target = deployment or _pick({k: int(v) for k, v in (props.get("traffic") or {}).items()}, request_id)
    if target is None:
        return 424, "no deployment takes traffic on this endpoint", ""
    if deployment is None:
        for shadow, share in sorted((props.get("mirrorTraffic") or {}).items()):
            if _bucket(request_id, shadow) < int(share):
                _answer(state, endpoint, shadow, payload, request_id, mirrored=True)
    status, body = _answer(state, endpoint, target, payload, request_id, mirrored=False)
    return status, body, target


def _answer(state: State, endpoint: str, deployment: str, payload: Any, request_id: str,
            mirrored: bool) -> tuple[int, str]:
    stored = state.get("deployment", f"{endpoint}/{deployment}")
    if stored is None or stored["rest"]["properties"]["provisioningState"] != "Succeeded":
        return 404, f"deployment {deployment} is not ready on {endpoint}"
    failing = state.flag(f"fail:{endpoint}/{deployment}")
    if failing:
        state.add_request(endpoint, deployment, int(failing), LATENCY_MS, mirrored)
        return int(failing), "upstream request failed"
    from .jobs_runner import model_rule

    name, version = stored["model"]
    rule = model_rule(state, f"azureml:{name}:{version}")
    try:
        rows = _rows(payload)
        predictions = [predict(rule, r) for r in rows]
    except (KeyError, TypeError, ValueError) as exc:
        state.add_request(endpoint, deployment, 400, LATENCY_MS, mirrored)
        return 400, f"the input does not match the model's signature: {exc}"
    latency = LATENCY_MS + 0.1 * len(rows)
    state.add_request(endpoint, deployment, 200, latency, mirrored)
    _collect(state, state.workspace(), endpoint, deployment, rows, predictions, request_id)
    return 200, json.dumps(predictions)


def _collect(state: State, ws: Workspace, endpoint: str, deployment: str, rows: list[dict[str, Any]],
             predictions: list[Any], request_id: str) -> None:
    at = datetime.now(UTC)
    source = f"{ws.arm_id}/onlineEndpoints/{endpoint}/deployments/{deployment}"
    for collection, data in (("model_inputs", rows), ("model_outputs", predictions)):
        event = {"specversion": "1.0", "id": str(uuid.uuid4()), "source": source,
                 "type": f"azureml.inference.{collection}", "datacontenttype": "application/json",
                 "time": at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), "data": data, "correlationid": request_id,
                 "xrequestid": request_id, "modelversion": "default",
                 "collectdatatype": "pandas.core.frame.DataFrame"}
        name = f"modelDataCollector/{endpoint}/{deployment}/{collection}/{at:%Y/%m/%d/%H}/{at:%M}.jsonl"
        _append(ws, name, (json.dumps(event) + "\n").encode())


def _append(ws: Workspace, name: str, line: bytes) -> None:
    blob = BlobClient.from_connection_string(ws.storage, ws.datastore_container, name)
    for _ in range(3):  # bounded: the container or the blob may not exist yet
        try:
            blob.append_block(line)
            return
        except ResourceNotFoundError as exc:
            if "ContainerNotFound" in str(getattr(exc, "error_code", None) or exc):
                ensure_container(ws.storage, ws.datastore_container)
            try:
                blob.create_append_blob(if_none_match="*")
            except (ResourceExistsError, ResourceModifiedError):
                pass  # another request created it first
    raise RuntimeError(f"could not append to {name}")
