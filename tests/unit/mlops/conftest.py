"""Fixtures of the mlops unit tests: events in Azure's shapes, policies, metrics."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mlops.ports import DeploymentMetrics

REPO = Path(__file__).resolve().parents[3]
POLICY_DIR = REPO / "examples" / "policies"
TOPIC = "/subscriptions/sub/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/acct"
BLOB_SUBJECT = "/blobServices/default/containers/landing/blobs/credit/d1.csv"
BLOB_URL = "https://acct.blob.core.windows.net/landing/credit/d1.csv"
EVENT_TIME = "2024-05-01T12:00:00.1234567Z"  # Azure sends 7 fractional digits

MakeEvent = Callable[..., dict[str, Any]]


def _event_grid(event_type: str, data: Any, subject: str = BLOB_SUBJECT, **overrides: Any) -> dict[str, Any]:
    """An event in the Event Grid schema (https://learn.microsoft.com/azure/event-grid/event-schema)."""
    raw = {"id": "eg-1", "topic": TOPIC, "subject": subject, "eventType": event_type, "eventTime": EVENT_TIME,
           "data": data, "dataVersion": "", "metadataVersion": "1"}
    raw.update(overrides)
    return raw


def _cloud_event(event_type: str, data: Any, subject: str = BLOB_SUBJECT, **overrides: Any) -> dict[str, Any]:
    """The same event in CloudEvents 1.0 structured JSON."""
    raw = {"specversion": "1.0", "id": "ce-1", "source": TOPIC, "type": event_type, "subject": subject,
           "time": EVENT_TIME, "datacontenttype": "application/json", "data": data}
    raw.update(overrides)
    return raw


@pytest.fixture
def event_grid() -> MakeEvent:
    """Builds an Event Grid schema event: ``event_grid(type, data, subject=..., **overrides)``."""
    return _event_grid


@pytest.fixture
def cloud_event() -> MakeEvent:
    """Builds a CloudEvents 1.0 event: ``cloud_event(type, data, subject=..., **overrides)``."""
    return _cloud_event


@pytest.fixture(params=[_event_grid, _cloud_event], ids=["eventgrid", "cloudevents"])
def make_event(request: pytest.FixtureRequest) -> MakeEvent:
    """Builds an event in each schema in turn."""
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def blob_data() -> dict[str, Any]:
    """``data`` of a BlobCreated event as Blob Storage sends it."""
    return {"api": "PutBlob", "clientRequestId": "c1", "requestId": "r1", "eTag": "0x8DC0000000000001",
            "contentType": "text/csv", "contentLength": 1234, "blobType": "BlockBlob", "url": BLOB_URL,
            "sequencer": "00000000000000000000000000000001", "storageDiagnostics": {"batchId": "b1"}}


@pytest.fixture
def alert_body() -> dict[str, Any]:
    """An Azure Monitor common-alert-schema webhook body (shape of the documented sample payload)."""
    return {
        "schemaId": "azureMonitorCommonAlertSchema",
        "data": {
            "essentials": {
                "alertId": "/subscriptions/sub/providers/Microsoft.AlertsManagement/alerts/a-1",
                "alertRule": "credit-5xx-rate",
                "severity": "Sev1",
                "signalType": "Metric",
                "monitorCondition": "Fired",
                "monitoringService": "Platform",
                "alertTargetIDs": ["/subscriptions/sub/resourcegroups/rg/providers/"
                                   "microsoft.machinelearningservices/workspaces/ws/onlineendpoints/scoring"],
                "configurationItems": ["scoring"],
                "firedDateTime": "2024-05-01T12:00:00.3713213Z",
                "description": "",
                "essentialsVersion": "1.0",
                "alertContextVersion": "1.0",
            },
            "alertContext": {},
            "customProperties": None,
        },
    }


@pytest.fixture
def minimal_policy() -> dict[str, Any]:
    """The smallest valid policy: every other field takes its default."""
    return {"model": "credit", "label": "label"}


def _metrics(deployment: str = "cand", requests: int = 100, errors: int = 0, p95: float = 50.0,
             predictions: dict[str, int] | None = None) -> DeploymentMetrics:
    half = {"0": requests // 2, "1": requests - requests // 2}
    return DeploymentMetrics(deployment, requests, errors, p95 / 2, p95, p95 * 2,
                             half if predictions is None else predictions)


@pytest.fixture
def make_metrics() -> Callable[..., DeploymentMetrics]:
    """Deployment metrics over a window: ``make_metrics(deployment, requests, errors, p95, predictions)``."""
    return _metrics


@pytest.fixture
def policy_dir() -> Path:
    """The example policy folder (holds the documented example, demo.yaml)."""
    return POLICY_DIR
