"""Fixtures for the scoring gateway tests: ``python -m gateway`` as a real process on a free 127.0.0.1
port with a temp state dir and a random key, and two tiny MLflow models that answer differently."""

from __future__ import annotations

import os
import secrets
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from adapters.gateway_client import GatewayClient
from devhost.testing import ServerProcess, free_port

REPO = Path(__file__).resolve().parents[3]
KEY_HEADER = "x-gateway-key"
DEPLOYMENT_HEADER = "azureml-model-deployment"
DEFAULT_KEY = object()  # sentinel: "send the gateway's own key"


@dataclass(frozen=True)
class Models:
    """Local MLflow model directories (usable as ``model_uri``): one always answers 0, the other always 1."""

    zero: str
    one: str


class GatewayProcess(ServerProcess):
    """A gateway subprocess on one state directory, and helpers to call it over HTTP."""

    name = "the gateway"

    def __init__(self, state_dir: Path, key: str | None = None, port: int | None = None,
                 extra_args: tuple[str, ...] = ()) -> None:
        self.state_dir = Path(state_dir)
        super().__init__(self.state_dir.parent / f"{self.state_dir.name}.log")
        self.extra_args = extra_args
        self.key = key or secrets.token_urlsafe(18)
        self.port = port or free_port()
        self.session = requests.Session()

    @property
    def base_url(self) -> str:
        """http://127.0.0.1:<port>"""
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30) -> GatewayProcess:
        """Start the process and wait until /health answers (it answers once persisted models are loaded)."""
        cmd = [sys.executable, "-m", "gateway", "--port", str(self.port), "--state-dir", str(self.state_dir),
               *self.extra_args]
        # the key by environment, as `mlops up` passes it (token_urlsafe may start with "-")
        env = {**os.environ, "MLOPS_GATEWAY_KEY": self.key,
               "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
        self.launch(cmd, env, REPO, lambda: self.session.get(self.base_url + "/health", timeout=2).ok, timeout)
        return self

    def call(self, method: str, path: str, key: Any = DEFAULT_KEY, **kwargs: Any) -> requests.Response:
        """One request; with the gateway's key unless ``key`` says otherwise (None: no key header)."""
        headers = dict(kwargs.pop("headers", {}))
        if key is DEFAULT_KEY:
            key = self.key
        if key is not None:
            headers[KEY_HEADER] = key
        return self.session.request(method, self.base_url + path, headers=headers, timeout=30, **kwargs)

    def client(self) -> GatewayClient:
        """The project's client, with the key."""
        return GatewayClient(self.base_url, self.key)

    def wait_operation(self, operation_id: str, timeout: float = 30) -> dict[str, Any]:
        """Poll an operation until it is no longer running; its last state."""
        deadline = time.monotonic() + timeout
        while True:
            resp = self.call("GET", f"/operations/{operation_id}")
            assert resp.status_code == 200, resp.text
            op: dict[str, Any] = resp.json()
            if op["state"] != "running" or time.monotonic() > deadline:
                return op
            time.sleep(0.05)

    def deploy(self, endpoint: str, deployment: str, model_uri: str) -> dict[str, Any]:
        """PUT a deployment and wait for its operation; the final operation."""
        resp = self.call("PUT", f"/endpoints/{endpoint}/deployments/{deployment}",
                         json={"model_uri": model_uri, "model_name": deployment, "model_version": "1"})
        assert resp.status_code == 202, resp.text
        return self.wait_operation(resp.json()["operation_id"])

    def score(self, endpoint: str, rows: list[dict[str, Any]], deployment: str | None = None) -> requests.Response:
        """POST rows to the endpoint; through the split unless ``deployment`` names one."""
        headers = {DEPLOYMENT_HEADER: deployment} if deployment else {}
        return self.call("POST", f"/endpoints/{endpoint}/score", json={"input_data": rows}, headers=headers)

    def traffic(self, endpoint: str) -> dict[str, Any]:
        """The current split, as the gateway reports it."""
        resp = self.call("GET", f"/endpoints/{endpoint}/traffic")
        assert resp.status_code == 200, resp.text
        return dict(resp.json())

    def set_traffic(self, endpoint: str, traffic: dict[str, int], mirror: dict[str, int] | None = None
                    ) -> requests.Response:
        """PUT a split (the raw response)."""
        return self.call("PUT", f"/endpoints/{endpoint}/traffic",
                         json={"traffic": traffic, "mirror_traffic": mirror or {}})

    def faults(self, endpoint: str, deployment: str, error_rate: float = 0.0, latency_ms: float = 0.0) -> None:
        """Inject faults into one deployment."""
        resp = self.call("PUT", f"/endpoints/{endpoint}/deployments/{deployment}/faults",
                         json={"error_rate": error_rate, "latency_ms": latency_ms})
        assert resp.status_code == 200, resp.text

    def deployments(self, endpoint: str) -> dict[str, str]:
        """Deployment -> model URI."""
        resp = self.call("GET", f"/endpoints/{endpoint}/deployments")
        assert resp.status_code == 200, resp.text
        return dict(resp.json())

    def metrics(self, endpoint: str, deployment: str, start: str = "2000-01-01T00:00:00Z",
                end: str = "2100-01-01T00:00:00Z") -> dict[str, Any]:
        """One deployment's metrics over [start, end] (by default: all time)."""
        resp = self.call("GET", f"/endpoints/{endpoint}/metrics",
                         params={"deployment": deployment, "start": start, "end": end})
        assert resp.status_code == 200, resp.text
        return dict(resp.json())


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory) -> Models:
    """Two scikit-learn models on sample data, saved with ``mlflow.sklearn.save_model``: always 0, always 1."""
    import mlflow.sklearn
    import pandas as pd
    from mlflow.models import infer_signature
    from sklearn.dummy import DummyClassifier

    from cli.sampledata import LABEL, generate

    frame = pd.DataFrame(generate(200, seed=11))
    x, y = frame.drop(columns=[LABEL]), frame[LABEL]
    root = tmp_path_factory.mktemp("models")
    paths = {}
    for constant in (0, 1):
        model = DummyClassifier(strategy="constant", constant=constant).fit(x, y)
        path = root / f"always-{constant}"
        # explicit requirements: mlflow would otherwise spend seconds inferring them in a subprocess; cloudpickle
        # as the examples save (a skops model costs each gateway 4.5 s to import skops)
        mlflow.sklearn.save_model(model, str(path), signature=infer_signature(x, model.predict(x)),
                                  pip_requirements=["scikit-learn"], serialization_format="cloudpickle")
        paths[constant] = str(path)
    return Models(zero=paths[0], one=paths[1])


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    """One gateway process shared by a module's tests (each test works on its own endpoint)."""
    gw = GatewayProcess(tmp_path_factory.mktemp("gateway") / "state").start()
    try:
        yield gw
    finally:
        gw.stop()


@pytest.fixture
def endpoint(gateway: GatewayProcess, models: Models) -> str:
    """A fresh endpoint with deployments A (answers 0), B and C (answer 1), all traffic on A."""
    name = f"ep-{uuid.uuid4().hex[:8]}"
    for deployment, uri in (("A", models.zero), ("B", models.one), ("C", models.one)):
        op = gateway.deploy(name, deployment, uri)
        assert op["state"] == "succeeded", op
    resp = gateway.set_traffic(name, {"A": 100})
    assert resp.status_code == 200, resp.text
    return name


@pytest.fixture
def own_gateway(tmp_path: Path) -> Iterator[GatewayProcess]:
    """A gateway process of the test's own (it may be stopped and started again), stopped at the end."""
    gw = GatewayProcess(tmp_path / "state").start()
    try:
        yield gw
    finally:
        gw.stop()


@pytest.fixture
def gateway_factory(tmp_path: Path) -> Iterator[Callable[..., GatewayProcess]]:
    """Start gateway processes with extra command-line options; all are stopped at the end."""
    started: list[GatewayProcess] = []

    def start(*extra_args: str) -> GatewayProcess:
        gw = GatewayProcess(tmp_path / f"gateway-{len(started)}", extra_args=extra_args)
        started.append(gw)
        return gw.start()

    try:
        yield start
    finally:
        for gw in started:
            gw.stop()
