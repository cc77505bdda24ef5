"""A client of the local scoring gateway implementing the serving half of the platform port."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import requests

from mlops.errors import NotFoundError, PlatformError
from mlops.ports import DeploymentMetrics, ModelVersion, Operation, PromptVersion, TrafficSplit

DEPLOYMENT_HEADER = "azureml-model-deployment"


class GatewayClient:
    """Talks to ``python -m gateway`` over HTTP."""

    def __init__(self, base_url: str, key: str | None = None, timeout: float = 30) -> None:
        self.base_url = base_url.rstrip("/")
        self.session = requests.Session()
        if key:
            self.session.headers["x-gateway-key"] = key
        self.timeout = timeout

    def _call(self, method: str, path: str, what: str, **kwargs: Any) -> requests.Response:
        try:
            resp = self.session.request(method, self.base_url + path, timeout=self.timeout, **kwargs)
        except requests.RequestException as exc:
            raise PlatformError("scoring gateway", f"unreachable at {self.base_url}: {exc}", retryable=True) from exc
        if resp.status_code == 404:
            raise NotFoundError(what, _reason(resp))
        if resp.status_code >= 400:
            raise PlatformError(what, f"HTTP {resp.status_code}: {_reason(resp)}",
                                retryable=resp.status_code >= 500)
        return resp

    def begin_deployment(self, endpoint: str, deployment: str, model: ModelVersion,
                         prompt: PromptVersion | None = None) -> Operation:
        """Start loading the model into a deployment; with ``prompt``, the deployment answers every chat request
        through it (its default ``prompt`` param, which a client cannot override)."""
        body: dict[str, Any] = {"model_uri": model.model_uri, "model_name": model.name, "model_version": model.version}
        if prompt is not None:
            body |= {"params": {"prompt": json.dumps(prompt.template)}, "prompt_name": prompt.name,
                     "prompt_version": prompt.version}
        resp = self._call("PUT", f"/endpoints/{quote(endpoint)}/deployments/{quote(deployment)}",
                          f"deployment {deployment}", json=body)
        return Operation(operation_id=resp.json()["operation_id"], state="running")

    def get_operation(self, operation_id: str) -> Operation:
        """Poll an operation."""
        body = self._call("GET", f"/operations/{quote(operation_id)}", f"operation {operation_id}").json()
        return Operation(operation_id=body["operation_id"], state=body["state"], message=body.get("message", ""))

    def get_traffic(self, endpoint: str) -> TrafficSplit:
        """The live split."""
        body = self._call("GET", f"/endpoints/{quote(endpoint)}/traffic", f"endpoint {endpoint}").json()
        return TrafficSplit(traffic=body["traffic"], mirror_traffic=body["mirror_traffic"], sticky=body.get("sticky"))

    def set_traffic(self, endpoint: str, split: TrafficSplit) -> TrafficSplit:
        """Replace the split atomically."""
        body = self._call("PUT", f"/endpoints/{quote(endpoint)}/traffic", f"endpoint {endpoint}",
                          json={"traffic": split.traffic, "mirror_traffic": split.mirror_traffic,
                                "sticky": split.sticky}).json()
        return TrafficSplit(traffic=body["traffic"], mirror_traffic=body["mirror_traffic"], sticky=body.get("sticky"))

    def delete_deployment(self, endpoint: str, deployment: str) -> None:
        """Remove a deployment with no traffic."""
        self._call("DELETE", f"/endpoints/{quote(endpoint)}/deployments/{quote(deployment)}",
                   f"deployment {deployment}")

    def list_deployments(self, endpoint: str) -> dict[str, str]:
        """Deployment -> model URI."""
        return dict(self._call("GET", f"/endpoints/{quote(endpoint)}/deployments", f"endpoint {endpoint}").json())

    def describe_deployments(self, endpoint: str) -> dict[str, dict[str, Any]]:
        """Deployment -> its model, default params and prompt (``?detail=true``)."""
        return dict(self._call("GET", f"/endpoints/{quote(endpoint)}/deployments", f"endpoint {endpoint}",
                               params={"detail": "true"}).json())

    def score(self, endpoint: str, deployment: str, rows: list[dict[str, Any]]) -> list[Any]:
        """Score rows on one deployment (bypassing the split)."""
        resp = self._call("POST", f"/endpoints/{quote(endpoint)}/score", f"deployment {deployment}",
                          json={"input_data": rows}, headers={DEPLOYMENT_HEADER: deployment})
        return list(resp.json()["predictions"])

    def score_via_endpoint(self, endpoint: str, rows: list[dict[str, Any]],
                           request_id: str = "") -> tuple[list[Any], str]:
        """Score through the live split, as a client would (with its own request id, to send labels for it later):
        (predictions, the deployment that answered)."""
        resp = self._call("POST", f"/endpoints/{quote(endpoint)}/score", f"endpoint {endpoint}",
                          json={"input_data": rows}, headers={"x-request-id": request_id} if request_id else {})
        return list(resp.json()["predictions"]), resp.headers[DEPLOYMENT_HEADER]

    def deployment_metrics(self, endpoint: str, deployment: str, start: str, end: str) -> DeploymentMetrics:
        """Metrics over [start, end]."""
        body = self._call("GET", f"/endpoints/{quote(endpoint)}/metrics", f"deployment {deployment}",
                          params={"deployment": deployment, "start": start, "end": end}).json()
        return DeploymentMetrics.from_dict(body)  # the gateway may report more than the port needs

    def recent_inputs(self, endpoint: str, start: str, end: str, limit: int) -> list[dict[str, Any]]:
        """Logged inputs with predictions."""
        return list(self._call("GET", f"/endpoints/{quote(endpoint)}/requests", f"endpoint {endpoint}",
                               params={"start": start, "end": end, "limit": limit}).json())

    def inject_faults(self, endpoint: str, deployment: str, error_rate: float = 0.0, latency_ms: float = 0.0) -> None:
        """Local testing aid: make a deployment fail or slow."""
        self._call("PUT", f"/endpoints/{quote(endpoint)}/deployments/{quote(deployment)}/faults",
                   f"deployment {deployment}", json={"error_rate": error_rate, "latency_ms": latency_ms})


def _reason(resp: requests.Response) -> str:
    try:
        return str(resp.json().get("error", resp.text))
    except ValueError:
        return resp.text
