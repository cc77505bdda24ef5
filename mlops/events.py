"""Incoming events, parsed and validated into typed, frozen objects.

Both Event Grid schema and CloudEvents 1.0 are accepted (CloudEvents has ``specversion``).
Event types come from azure-eventgrid's ``SystemEventNames``; envelopes are read with
``EventGridEvent.from_dict`` and azure-core's ``CloudEvent.from_dict``. Anything that does not
fit raises EventError naming the field path (``data.modelVersion: missing``).

Shapes followed:
  * Blob Storage: https://learn.microsoft.com/azure/event-grid/event-schema-blob-storage
  * Azure ML: https://learn.microsoft.com/azure/event-grid/event-schema-machine-learning
  * Azure Monitor common alert schema: https://learn.microsoft.com/azure/azure-monitor/alerts/alerts-common-schema
    Action groups POST it straight to a webhook (not through Event Grid, and azure-eventgrid
    has no system event for it), so it has its own entry point, ``parse_monitor_alert``.

Every event has a deterministic ``dedup_key``: Event Grid delivers at least once, so the
triggers derive Durable instance ids from it and a redelivery starts nothing new.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal
from urllib.parse import unquote, urlparse

from azure.core.messaging import CloudEvent
from azure.eventgrid import EventGridEvent, SystemEventNames

from ._json import Json as _Json
from .errors import EventError
from .policy import FEEDBACK_FOLDER, MODEL_NAME_PATTERN, is_model_name

log = logging.getLogger("mlops.events")

BLOB_CREATED = SystemEventNames.StorageBlobCreatedEventName.value
MODEL_REGISTERED = SystemEventNames.MachineLearningServicesModelRegisteredEventName.value
DATASET_DRIFT = SystemEventNames.MachineLearningServicesDatasetDriftDetectedEventName.value
#: The app's own drift event, published by the drift monitor to the custom topic.
APP_DRIFT_EVENT_TYPE = "MLOps.Model.DriftDetected"
#: The app's own performance event: the monitor found the champion's metric on ground truth decayed.
APP_PERFORMANCE_EVENT_TYPE = "MLOps.Model.PerformanceDegraded"
MONITOR_ALERT_SCHEMA = "azureMonitorCommonAlertSchema"

_BLOB_SUBJECT = re.compile(r"^/blobServices/default/containers/(?P<container>[^/]+)/blobs/(?P<path>.+)$")
_BLOB_SUBJECT_HELP = "/blobServices/default/containers/<c>/blobs/<model>/<file>"
_MODEL_SUBJECT = re.compile(r"^models/(?P<name>[^:/]+):(?P<version>[^:/]+)$")
_AZUREML_DRIFT_SUFFIX = "-drift"


@dataclass(frozen=True)
class Envelope:
    """The schema-independent part of an event."""

    id: str
    type: str
    subject: str
    time: str
    source: str
    data: dict[str, Any]
    schema: Literal["eventgrid", "cloudevents"]


@dataclass(frozen=True)
class BlobCreated(_Json):
    """A blob was created (``Microsoft.Storage.BlobCreated``)."""

    model: str  # first folder under the container; "" for a blob at the container root
    container: str
    blob_name: str  # the path inside the container, URL-decoded
    url: str
    etag: str
    content_length: int
    content_type: str
    event_id: str
    event_time: str
    sequencer: str
    api: str = ""  # PutBlob, PutBlockList, CopyBlob, FlushWithClose (Data Lake) ...

    @property
    def dedup_key(self) -> str:
        """One key per blob version: the eTag changes with the content, the sequencer orders writes."""
        return f"blob:{self.url}:{self.etag or self.sequencer}"


@dataclass(frozen=True)
class ModelRegistered(_Json):
    """A model version was registered (Azure ML's data: modelName, modelVersion, modelTags)."""

    model: str
    version: str
    tags: dict[str, str]
    event_id: str
    event_time: str

    @property
    def dedup_key(self) -> str:
        """One key per model version."""
        return f"registered:{self.model}:{self.version}"


@dataclass(frozen=True)
class DriftFeature(_Json):
    """One feature's drift figure as the event reports it."""

    name: str
    statistic: str | None  # psi | ks | js | chi2 ...
    value: float | None
    threshold: float | None
    drifted: bool


@dataclass(frozen=True)
class DriftDetected(_Json):
    """Drift on a model's inputs or predictions: the app's monitor (``source="monitor"``) or Azure ML."""

    model: str
    source: Literal["monitor", "azureml"]
    version: str | None
    event_id: str
    event_time: str
    reason: str
    features: tuple[DriftFeature, ...] = ()
    window_start: str = ""
    window_end: str = ""
    evidence: dict[str, Any] = field(default_factory=dict)  # the event's data, for the run's record

    @property
    def dedup_key(self) -> str:
        """Alerts about one model version coalesce into one action; Azure ML's per monitor run."""
        if self.version:
            return f"drift:{self.model}:{self.version}"
        return f"drift:{self.model}:{self.evidence.get('runId') or self.event_id}"


@dataclass(frozen=True)
class ModelPerformanceDegraded(_Json):
    """The champion's metric on labelled live traffic decayed beyond the policy's bound (the app's monitor)."""

    model: str
    version: str
    event_id: str
    event_time: str
    metric: str
    registered: float
    value: float
    decay: float
    max_decay: float
    labels: int
    reason: str
    evidence: dict[str, Any] = field(default_factory=dict)  # the event's data, for the run's record

    @property
    def dedup_key(self) -> str:
        """Findings about one champion version coalesce into one action, as drift's do."""
        return f"performance:{self.model}:{self.version}"


@dataclass(frozen=True)
class HealthAlert(_Json):
    """An Azure Monitor alert (common alert schema) about a model's endpoint."""

    model: str
    alert_rule: str
    severity: str
    fired: str
    resolved: bool
    alert_id: str = ""
    target_ids: tuple[str, ...] = ()

    @property
    def dedup_key(self) -> str:
        """One key per alert firing."""
        return f"alert:{self.alert_id}:{self.fired}"


Event = BlobCreated | ModelRegistered | DriftDetected | ModelPerformanceDegraded | HealthAlert


# --------------------------------------------------------------------------------------------- helpers


_JSON_NAMES = {str: "a string", int: "an integer", float: "a number", dict: "an object", list: "a list",
               bool: "a boolean"}


def _type_name(kind: type | tuple[type, ...]) -> str:
    return " or ".join(_JSON_NAMES.get(k, k.__name__) for k in _kinds(kind))


def _field(data: dict[str, Any], key: str, path: str, kind: type | tuple[type, ...] = str,
           required: bool = True) -> Any:
    """``data[key]`` checked for presence and type; EventError names ``path + key``."""
    value = data.get(key)
    if value is None or value == "":
        if required:
            raise EventError(f"{path}{key}", "missing")
        return None
    # bool is an int to Python, never to a JSON schema
    if not isinstance(value, kind) or (isinstance(value, bool) and bool not in _kinds(kind)):
        raise EventError(f"{path}{key}", f"must be {_type_name(kind)}, got {type(value).__name__} {value!r}")
    return value


def _kinds(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return (kind,) if isinstance(kind, type) else kind


def _number(value: Any, path: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise EventError(path, f"must be a finite number, got {value!r}")
    return float(value)


def _object(data: dict[str, Any], key: str, path: str) -> dict[str, Any]:
    value = data.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise EventError(f"{path}{key}", f"must be an object, got {type(value).__name__}")
    return value


def _iso(value: Any) -> str:
    return value.isoformat() if isinstance(value, datetime) else str(value or "")


def _valid_time(value: Any) -> bool:
    try:
        datetime.fromisoformat(str(value))
    except ValueError:
        return False
    return True


def _model_name(name: str, where: str) -> str:
    """``name`` if it can name a model; EventError at ``where`` otherwise (it would name a path or an id)."""
    if not is_model_name(name):
        raise EventError(where, f"{name!r} is not a valid model name (must match {MODEL_NAME_PATTERN})")
    return name


def _require_type(env: Envelope, expected: str) -> None:
    if env.type != expected:
        where = "type" if env.schema == "cloudevents" else "eventType"
        raise EventError(where, f"expected {expected!r}, got {env.type!r}")


# --------------------------------------------------------------------------------------------- envelopes


def envelope(raw: Any) -> Envelope:
    """Read either schema into an Envelope (CloudEvents has ``specversion``)."""
    if not isinstance(raw, dict):
        raise EventError("event", f"must be a JSON object, got {type(raw).__name__}")
    if "specversion" in raw:
        return _cloud_event(raw)
    return _event_grid_event(raw)


def _cloud_event(raw: dict[str, Any]) -> Envelope:
    # https://github.com/cloudevents/spec/blob/v1.0.2/cloudevents/spec.md#required-attributes
    if raw.get("specversion") != "1.0":
        raise EventError("specversion", f"must be '1.0', got {raw.get('specversion')!r}")
    for key in ("id", "source", "type"):
        _field(raw, key, "")
    if raw.get("time") is not None and not _valid_time(raw["time"]):
        raise EventError("time", f"must be an RFC 3339 time, got {raw['time']!r}")
    try:
        ce: CloudEvent[Any] = CloudEvent.from_dict(raw)
    except (ValueError, TypeError) as exc:
        raise EventError("event", str(exc)) from exc
    if not isinstance(ce.data, dict):
        raise EventError("data", f"must be a JSON object, got {type(ce.data).__name__}")
    return Envelope(ce.id, ce.type, ce.subject or "", _iso(ce.time), ce.source, ce.data, "cloudevents")


def _event_grid_event(raw: dict[str, Any]) -> Envelope:
    # https://learn.microsoft.com/azure/event-grid/event-schema#event-properties
    for key in ("id", "eventType", "subject", "eventTime"):
        _field(raw, key, "")
    # Blob Storage sends an empty dataVersion: it must be present and a string, nothing more.
    if not isinstance(raw.get("dataVersion"), str):
        raise EventError("dataVersion", "missing" if "dataVersion" not in raw else "must be a string")
    _field(raw, "data", "", dict)
    if not _valid_time(raw["eventTime"]):
        raise EventError("eventTime", f"must be an ISO 8601 time, got {raw['eventTime']!r}")
    try:
        eg = EventGridEvent.from_dict(raw)
    except (ValueError, TypeError) as exc:
        raise EventError("event", str(exc)) from exc
    return Envelope(eg.id, eg.event_type, eg.subject, _iso(eg.event_time), eg.topic or "", dict(eg.data),
                    "eventgrid")


# --------------------------------------------------------------------------------------------- entry points


def parse_event(raw: Any) -> Event:
    """Parse any supported event (either schema, or an Azure Monitor alert body); EventError otherwise."""
    if isinstance(raw, dict) and "schemaId" in raw:
        return parse_monitor_alert(raw)
    env = envelope(raw)
    parser = _PARSERS.get(env.type)
    if parser is None:
        where = "type" if env.schema == "cloudevents" else "eventType"
        raise EventError(where, f"unsupported event type {env.type!r}")
    return parser(env)


def parse_blob_created(raw: Any) -> BlobCreated:
    """Parse a ``Microsoft.Storage.BlobCreated`` event."""
    env = envelope(raw)
    _require_type(env, BLOB_CREATED)
    return _blob_created(env)


def parse_model_registered(raw: Any) -> ModelRegistered:
    """Parse a ``Microsoft.MachineLearningServices.ModelRegistered`` event."""
    env = envelope(raw)
    _require_type(env, MODEL_REGISTERED)
    return _model_registered(env)


def parse_drift(raw: Any) -> DriftDetected:
    """Parse the app's drift event or Azure ML's ``DatasetDriftDetected``."""
    env = envelope(raw)
    if env.type == DATASET_DRIFT:
        return _azureml_drift(env)
    _require_type(env, APP_DRIFT_EVENT_TYPE)
    return _app_drift(env)


# --------------------------------------------------------------------------------------------- blobs


def _blob_created(env: Envelope) -> BlobCreated:
    m = _BLOB_SUBJECT.match(env.subject)
    if not m:
        raise EventError("subject", f"expected {_BLOB_SUBJECT_HELP}, got {env.subject!r}")
    d = env.data
    url = _field(d, "url", "data.")
    if urlparse(url).scheme not in ("http", "https"):
        raise EventError("data.url", f"must be an http(s) URL, got {url!r}")
    length = _field(d, "contentLength", "data.", int)
    if length < 0:
        raise EventError("data.contentLength", f"must be >= 0, got {length}")
    etag = _field(d, "eTag", "data.", required=False) or ""
    sequencer = _field(d, "sequencer", "data.", required=False) or ""
    if not etag and not sequencer:
        raise EventError("data.eTag", "missing (and no data.sequencer): the blob version cannot be told apart")
    blob_name = unquote(m["path"])
    model = blob_name.split("/", 1)[0] if "/" in blob_name else ""
    return BlobCreated(model=model, container=m["container"], blob_name=blob_name, url=url, etag=etag,
                       content_length=length,
                       content_type=_field(d, "contentType", "data.", required=False) or "",
                       event_id=env.id, event_time=env.time, sequencer=sequencer,
                       api=_field(d, "api", "data.", required=False) or "")


def not_data(blob_name: str, content_length: int, allowed_suffixes: tuple[str, ...] = (".csv",)) -> str | None:
    """Why a landed file is not training data, or None if it is (the rule for events and for listings)."""
    if not blob_name.lower().endswith(tuple(s.lower() for s in allowed_suffixes)):
        return f"unsupported file type (allowed: {', '.join(allowed_suffixes)})"
    if content_length <= 0:
        # Data Lake (hierarchical namespace) accounts send BlobCreated for CreateFile with length 0,
        # then again for FlushWithClose with the content: only the second is data.
        return "empty blob"
    return None


def landing_blob(event: BlobCreated, landing_container: str,
                 allowed_suffixes: tuple[str, ...] = (".csv",)) -> BlobCreated | None:
    """The event if it is training data for a model, else None with the reason logged."""
    why = None
    if event.container != landing_container:
        why = f"container {event.container!r} is not the landing container {landing_container!r}"
    elif not event.model:
        why = "blob is not in a model folder (<model>/<file>)"
    elif event.model == FEEDBACK_FOLDER:
        why = "ground truth (feedback/<model>/), not training data"
    elif not is_model_name(event.model):
        why = f"folder {event.model!r} is not a valid model name (must match {MODEL_NAME_PATTERN})"
    else:
        why = not_data(event.blob_name, event.content_length, allowed_suffixes)
    if why is None:
        return event
    log.info("blob ignored: %s", why, extra={"reason": why, "event_id": event.event_id, "container": event.container,
                                             "blob": event.blob_name, "model": event.model})
    return None


# --------------------------------------------------------------------------------------------- Azure ML


def _tags(d: dict[str, Any]) -> dict[str, str]:
    tags = _object(d, "modelTags", "data.")
    out: dict[str, str] = {}
    for key, value in tags.items():
        # Azure ML tags are strings; keep other JSON values readable rather than refuse the event.
        out[str(key)] = value if isinstance(value, str) else json.dumps(value)
    return out


def _model_registered(env: Envelope) -> ModelRegistered:
    d = env.data
    name = _model_name(_field(d, "modelName", "data."), "data.modelName")
    version = str(_field(d, "modelVersion", "data.", (str, int)))
    m = _MODEL_SUBJECT.match(env.subject)
    if m and (m["name"], m["version"]) != (name, version):
        raise EventError("subject", f"{env.subject!r} names another model version than data ({name}:{version})")
    return ModelRegistered(model=name, version=version, tags=_tags(d), event_id=env.id, event_time=env.time)


def azureml_drift_model(monitor_name: str) -> str:
    """The model an Azure ML dataset monitor watches: monitors are named ``<model>`` or ``<model>-drift``."""
    if monitor_name.endswith(_AZUREML_DRIFT_SUFFIX):
        return monitor_name[: -len(_AZUREML_DRIFT_SUFFIX)]
    return monitor_name


def _azureml_drift(env: Envelope) -> DriftDetected:
    d = env.data
    name = _field(d, "dataDriftName", "data.")
    model = azureml_drift_model(name)
    if not model:
        raise EventError("data.dataDriftName", f"{name!r} names no model (convention: <model> or <model>-drift)")
    _model_name(model, "data.dataDriftName")
    coefficient = _number(d.get("driftCoefficient"), "data.driftCoefficient")
    evidence = {k: d.get(k) for k in ("dataDriftId", "dataDriftName", "runId", "baseDatasetId", "targetDatasetId",
                                      "driftCoefficient", "startTime", "endTime")}
    figure = f"coefficient {coefficient:.3f}" if coefficient is not None else "no coefficient"
    features = (DriftFeature("dataset", "drift_coefficient", coefficient, None, True),)
    return DriftDetected(model=model, source="azureml", version=None, event_id=env.id, event_time=env.time,
                         reason=f"Azure ML data drift monitor {name!r}: {figure}", features=features,
                         window_start=str(d.get("startTime") or ""), window_end=str(d.get("endTime") or ""),
                         evidence=evidence)


# --------------------------------------------------------------------------------------------- the app's drift


def _drift_feature(name: str, raw: Any) -> DriftFeature:
    path = f"data.features.{name}"
    if not isinstance(raw, dict):
        raise EventError(path, f"must be an object, got {type(raw).__name__}")
    statistic = _field(raw, "statistic", f"{path}.", required=False)
    value = _number(raw.get("value"), f"{path}.value")
    threshold = _number(raw.get("threshold"), f"{path}.threshold")
    drifted = raw.get("drifted")
    if drifted is not None and not isinstance(drifted, bool):
        raise EventError(f"{path}.drifted", f"must be a boolean, got {drifted!r}")
    if drifted is None:
        # The publisher lists drifted features; with both numbers, the figure says it.
        drifted = value > threshold if value is not None and threshold is not None else True
    return DriftFeature(name, statistic, value, threshold, drifted)


def _app_drift(env: Envelope) -> DriftDetected:
    d = env.data
    model = _model_name(_field(d, "model", "data."), "data.model")
    version = _field(d, "version", "data.", (str, int), required=False)
    features = tuple(_drift_feature(str(k), v) for k, v in sorted(_object(d, "features", "data.").items()))
    window = _object(d, "window", "data.")
    for key in ("start", "end"):
        if window.get(key) is not None and not _valid_time(window[key]):
            raise EventError(f"data.window.{key}", f"must be an ISO 8601 time, got {window[key]!r}")
    drifted = [f for f in features if f.drifted]

    def figure(f: DriftFeature) -> str:
        if f.statistic and f.value is not None and f.threshold is not None:
            return f"{f.name} ({f.statistic} {f.value:.3f} > {f.threshold:.3f})"
        return f.name

    reason = "drift on " + (", ".join(figure(f) for f in drifted) or "predictions")
    return DriftDetected(model=model, source="monitor", version=None if version is None else str(version),
                         event_id=env.id, event_time=env.time, reason=reason, features=features,
                         window_start=str(window.get("start") or ""), window_end=str(window.get("end") or ""),
                         evidence={"features": d.get("features") or {}, "window": window})


# --------------------------------------------------------------------------------------------- the app's performance


def _app_performance(env: Envelope) -> ModelPerformanceDegraded:
    d = env.data
    model = _model_name(_field(d, "model", "data."), "data.model")
    version = str(_field(d, "version", "data.", (str, int)))
    metric = _field(d, "metric", "data.")
    figures: dict[str, float] = {}
    for key in ("registered", "value", "decay", "max_decay"):
        number = _number(d.get(key), f"data.{key}")
        if number is None:
            raise EventError(f"data.{key}", "missing")
        figures[key] = number
    labels = _field(d, "labels", "data.", int)
    if labels < 0:
        raise EventError("data.labels", f"must be >= 0, got {labels}")
    reason = (f"{metric} decayed by {figures['decay']:.4f} (max {figures['max_decay']:g}): "
              f"{figures['value']:.4f} on {labels} labels vs {figures['registered']:.4f} at registration")
    return ModelPerformanceDegraded(model=model, version=version, event_id=env.id, event_time=env.time,
                                    metric=metric, registered=figures["registered"], value=figures["value"],
                                    decay=figures["decay"], max_decay=figures["max_decay"], labels=labels,
                                    reason=reason, evidence=dict(d))


_PARSERS: dict[str, Callable[[Envelope], Event]] = {
    BLOB_CREATED: _blob_created,
    MODEL_REGISTERED: _model_registered,
    DATASET_DRIFT: _azureml_drift,
    APP_DRIFT_EVENT_TYPE: _app_drift,
    APP_PERFORMANCE_EVENT_TYPE: _app_performance,
}


# --------------------------------------------------------------------------------------------- Azure Monitor


def alert_rule_model(alert_rule: str) -> str | None:
    """The model an alert rule is about by convention: rules are named ``<model>-<anything>``."""
    name = alert_rule.rstrip("/").rsplit("/", 1)[-1]  # some services send the rule's ARM id
    model, dash, rest = name.partition("-")
    return model if dash and model and rest else None


def parse_monitor_alert(body: Any) -> HealthAlert:
    """An Azure Monitor action-group webhook body in the common alert schema.

    The model is ``data.customProperties.model`` when the rule sets it (custom properties exist
    for metric and log search alerts), else the prefix of the rule name, ``<model>-...``.
    """
    if not isinstance(body, dict):
        raise EventError("body", f"must be a JSON object, got {type(body).__name__}")
    if body.get("schemaId") != MONITOR_ALERT_SCHEMA:
        raise EventError("schemaId", f"expected {MONITOR_ALERT_SCHEMA!r}, got {body.get('schemaId')!r}")
    data = _field(body, "data", "", dict)
    essentials = _field(data, "essentials", "data.", dict)
    p = "data.essentials."
    rule = _field(essentials, "alertRule", p)
    alert_id = _field(essentials, "alertId", p)
    condition = _field(essentials, "monitorCondition", p)
    if condition not in ("Fired", "Resolved"):
        raise EventError(f"{p}monitorCondition", f"must be 'Fired' or 'Resolved', got {condition!r}")
    fired = _field(essentials, "firedDateTime", p)
    if not _valid_time(fired):
        raise EventError(f"{p}firedDateTime", f"must be an ISO 8601 time, got {fired!r}")
    targets = essentials.get("alertTargetIDs") or []
    if not isinstance(targets, list) or not all(isinstance(t, str) for t in targets):
        raise EventError(f"{p}alertTargetIDs", "must be a list of resource ids")
    custom = _object(data, "customProperties", "data.")
    model = _field(custom, "model", "data.customProperties.", required=False)
    if model:
        _model_name(model, "data.customProperties.model")
    else:
        model = alert_rule_model(rule)
        if not model:
            raise EventError("data.customProperties.model",
                             f"missing, and alert rule {rule!r} does not follow the '<model>-<name>' convention")
        _model_name(model, f"{p}alertRule")
    return HealthAlert(model=model, alert_rule=rule, severity=str(essentials.get("severity") or ""), fired=fired,
                       resolved=condition == "Resolved", alert_id=alert_id, target_ids=tuple(targets))
