"""Incoming events, parsed and validated into typed objects.

Both Event Grid schema and CloudEvents 1.0 are accepted. Event types come from
azure-eventgrid's ``SystemEventNames``; envelopes are read with ``EventGridEvent`` and
azure-core's ``CloudEvent``. Anything that does not fit raises EventError naming the field.

Shapes followed:
  * Blob Storage events: https://learn.microsoft.com/azure/event-grid/event-schema-blob-storage
  * Azure ML events: https://learn.microsoft.com/azure/event-grid/event-schema-machine-learning
  * Azure Monitor common alert schema: https://learn.microsoft.com/azure/azure-monitor/alerts/alerts-common-schema
"""

from __future__ import annotations

import logging
import re
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import unquote

from azure.core.messaging import CloudEvent
from azure.eventgrid import EventGridEvent, SystemEventNames

from .errors import EventError

log = logging.getLogger("mlops.events")

BLOB_CREATED = SystemEventNames.StorageBlobCreatedEventName.value
BLOB_DELETED = SystemEventNames.StorageBlobDeletedEventName.value
MODEL_REGISTERED = SystemEventNames.MachineLearningServicesModelRegisteredEventName.value
DATASET_DRIFT = SystemEventNames.MachineLearningServicesDatasetDriftDetectedEventName.value
APP_DRIFT_EVENT_TYPE = "MLOps.Model.DriftDetected"

_BLOB_SUBJECT = re.compile(r"^/blobServices/default/containers/(?P<container>[^/]+)/blobs/(?P<path>.+)$")


@dataclass(frozen=True)
class Envelope:
    """The schema-independent part of an event."""

    id: str
    type: str
    subject: str
    time: str
    source: str
    data: dict[str, Any]


@dataclass(frozen=True)
class BlobCreated:
    """A blob was created (Microsoft.Storage.BlobCreated)."""

    event_id: str
    container: str
    blob_name: str
    url: str
    etag: str
    content_length: int
    content_type: str
    sequencer: str
    event_time: str

    @property
    def model(self) -> str | None:
        """The first folder of the blob path: ``<model>/<file>``."""
        return self.blob_name.split("/", 1)[0] if "/" in self.blob_name else None

    @property
    def dedup_key(self) -> str:
        """One key per blob version."""
        return f"blob:{self.url}:{self.etag or self.sequencer}"


@dataclass(frozen=True)
class LandingBlob(BlobCreated):
    """A BlobCreated that is training data for a model."""

    model_name: str = ""

    @property
    def model(self) -> str:  # type: ignore[override]
        """The model the data is for."""
        return self.model_name


@dataclass(frozen=True)
class ModelRegistered:
    """A model version was registered (Azure ML's shape: modelName, modelVersion, modelTags)."""

    event_id: str
    model: str
    version: str
    tags: dict[str, Any]
    event_time: str

    @property
    def dedup_key(self) -> str:
        """One key per model version."""
        return f"registered:{self.model}:{self.version}"


@dataclass(frozen=True)
class DriftDetected:
    """Drift on a model's inputs or predictions: the app's own event or Azure ML's DatasetDriftDetected."""

    event_id: str
    model: str
    version: str | None
    source: str  # "monitor" | "azureml"
    reason: str
    evidence: dict[str, Any] = field(default_factory=dict)

    @property
    def dedup_key(self) -> str:
        """Alerts about the same model version coalesce: one rollback per version."""
        return f"drift:{self.model}:{self.version or self.event_id}"


@dataclass(frozen=True)
class HealthAlert:
    """An Azure Monitor alert (common alert schema) about a model's endpoint."""

    alert_id: str
    model: str
    alert_rule: str
    severity: str
    fired: str
    resolved: bool

    @property
    def dedup_key(self) -> str:
        """One key per alert firing."""
        return f"alert:{self.alert_id}:{self.fired}"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict."""
        return asdict(self)


def _require(data: dict[str, Any], key: str, prefix: str, kind: type | tuple[type, ...] = str) -> Any:
    if key not in data or data[key] is None or data[key] == "":
        raise EventError(f"{prefix}{key}", "missing")
    if not isinstance(data[key], kind):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise EventError(f"{prefix}{key}", f"must be {names}, got {type(data[key]).__name__}")
    return data[key]


def _iso(value: Any) -> str:
    return value.isoformat() if isinstance(value, datetime) else str(value or "")


def _is_iso_time(value: Any) -> bool:
    try:
        datetime.fromisoformat(str(value))
    except ValueError:
        return False
    return True


def envelope(raw: Any) -> Envelope:
    """Read either schema into an Envelope (CloudEvents has ``specversion``)."""
    if not isinstance(raw, dict):
        raise EventError("event", f"must be a JSON object, got {type(raw).__name__}")
    if "specversion" in raw:
        if raw.get("specversion") != "1.0":
            raise EventError("specversion", f"must be '1.0', got {raw.get('specversion')!r}")
        for key in ("id", "source", "type"):
            _require(raw, key, "")
        try:
            ce = CloudEvent.from_dict(raw)
        except (ValueError, TypeError) as exc:
            raise EventError("event", str(exc)) from exc
        data = ce.data if isinstance(ce.data, dict) else None
        if data is None:
            raise EventError("data", "must be a JSON object")
        return Envelope(ce.id, ce.type, ce.subject or "", _iso(ce.time), ce.source, data)
    for key in ("id", "eventType", "subject", "eventTime"):
        _require(raw, key, "")
    # Blob Storage sends an empty dataVersion: it must be there, and be a string.
    if not isinstance(raw.get("dataVersion"), str):
        raise EventError("dataVersion", "missing" if "dataVersion" not in raw else "must be a string")
    _require(raw, "data", "", dict)
    try:
        eg = EventGridEvent.from_dict(raw)
    except (ValueError, TypeError) as exc:
        if not _is_iso_time(raw["eventTime"]):
            raise EventError("eventTime", f"must be an ISO 8601 time, got {raw['eventTime']!r}") from exc
        raise EventError("event", str(exc)) from exc
    if not isinstance(eg.event_time, datetime):
        raise EventError("eventTime", f"must be an ISO 8601 time, got {raw['eventTime']!r}")
    return Envelope(eg.id, eg.event_type, eg.subject, _iso(eg.event_time), eg.topic or "", dict(eg.data))


def parse_event(raw: Any) -> BlobCreated | ModelRegistered | DriftDetected:
    """Parse a supported event; EventError for anything else or anything malformed."""
    env = envelope(raw)
    if env.type == BLOB_CREATED:
        return _blob_created(env)
    if env.type == MODEL_REGISTERED:
        return _model_registered(env)
    if env.type == DATASET_DRIFT:
        return _azureml_drift(env)
    if env.type == APP_DRIFT_EVENT_TYPE:
        return _app_drift(env)
    raise EventError("eventType", f"unsupported event type {env.type!r}")


def _blob_created(env: Envelope) -> BlobCreated:
    m = _BLOB_SUBJECT.match(env.subject)
    if not m:
        raise EventError("subject", "expected /blobServices/default/containers/<container>/blobs/<path>, "
                                    f"got {env.subject!r}")
    d = env.data
    url = _require(d, "url", "data.")
    length = _require(d, "contentLength", "data.", int)
    return BlobCreated(event_id=env.id, container=m["container"], blob_name=unquote(m["path"]), url=url,
                       etag=str(d.get("eTag", "")), content_length=length, content_type=str(d.get("contentType", "")),
                       sequencer=str(d.get("sequencer", "")), event_time=env.time)


def landing_blob(event: BlobCreated, landing_container: str,
                 allowed_suffixes: tuple[str, ...] = (".csv",)) -> LandingBlob | None:
    """The event as training data for a model, or None (with a logged reason) if it is not data."""
    why = None
    if event.container != landing_container:
        why = f"container {event.container!r} is not the landing container {landing_container!r}"
    elif event.model is None:
        why = "blob is not in a model folder (<model>/<file>)"
    elif not event.blob_name.lower().endswith(allowed_suffixes):
        why = f"unsupported file type (expected {', '.join(allowed_suffixes)})"
    elif event.content_length <= 0:
        why = "empty file"
    if why:
        log.info("blob ignored: %s", why, extra={"blob": event.blob_name, "event_id": event.event_id})
        return None
    return LandingBlob(**asdict(event), model_name=str(event.model))


def _model_registered(env: Envelope) -> ModelRegistered:
    d = env.data
    name = _require(d, "modelName", "data.")
    version = d.get("modelVersion")
    if version is None or str(version) == "":
        raise EventError("data.modelVersion", "missing")
    tags = d.get("modelTags") or {}
    if not isinstance(tags, dict):
        raise EventError("data.modelTags", "must be an object")
    return ModelRegistered(event_id=env.id, model=name, version=str(version), tags=tags, event_time=env.time)


def _azureml_drift(env: Envelope) -> DriftDetected:
    d = env.data
    name = _require(d, "dataDriftName", "data.")
    coefficient = d.get("driftCoefficient")
    # Convention: an Azure ML dataset monitor is named after its model: "<model>" or "<model>-drift".
    model = name[: -len("-drift")] if name.endswith("-drift") else name
    return DriftDetected(event_id=env.id, model=model, version=None, source="azureml",
                         reason=f"Azure ML data drift monitor {name}: coefficient {coefficient}",
                         evidence={k: d.get(k) for k in ("dataDriftId", "runId", "driftCoefficient", "startTime",
                                                         "endTime")})


def _app_drift(env: Envelope) -> DriftDetected:
    d = env.data
    model = _require(d, "model", "data.")
    version = d.get("version")
    features = d.get("features") or {}
    if not isinstance(features, dict):
        raise EventError("data.features", "must be an object")
    drifted = sorted(k for k, v in features.items() if isinstance(v, dict) and v.get("drifted", True))
    return DriftDetected(event_id=env.id, model=model, version=None if version is None else str(version),
                         source="monitor", reason=f"drift on {', '.join(drifted) or 'predictions'}",
                         evidence={"features": features, "window": d.get("window")})


def parse_monitor_alert(body: Any) -> HealthAlert:
    """An Azure Monitor action-group webhook body in the common alert schema."""
    if not isinstance(body, dict):
        raise EventError("body", "must be a JSON object")
    if body.get("schemaId") != "azureMonitorCommonAlertSchema":
        raise EventError("schemaId", f"expected 'azureMonitorCommonAlertSchema', got {body.get('schemaId')!r}")
    data = body.get("data")
    if not isinstance(data, dict):
        raise EventError("data", "missing")
    essentials = data.get("essentials")
    if not isinstance(essentials, dict):
        raise EventError("data.essentials", "missing")
    rule = _require(essentials, "alertRule", "data.essentials.")
    alert_id = _require(essentials, "alertId", "data.essentials.")
    condition = _require(essentials, "monitorCondition", "data.essentials.")
    custom = data.get("customProperties") or {}
    model = custom.get("model") if isinstance(custom, dict) else None
    if not model:
        # Convention: alert rules are named "<model>-<anything>" when no customProperties.model is set.
        model = rule.split("-", 1)[0]
    return HealthAlert(alert_id=alert_id, model=model, alert_rule=rule, severity=str(essentials.get("severity", "")),
                       fired=str(essentials.get("firedDateTime", "")), resolved=condition == "Resolved")
