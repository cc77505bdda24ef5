"""Unit tests of mlops.events: both envelope schemas, every supported event type, and malformed input."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from mlops import events
from mlops.errors import EventError
from mlops.events import (
    APP_DRIFT_EVENT_TYPE,
    BLOB_CREATED,
    DATASET_DRIFT,
    MODEL_REGISTERED,
    BlobCreated,
    DriftDetected,
    HealthAlert,
    ModelRegistered,
    landing_blob,
    parse_event,
    parse_monitor_alert,
)

SUBJECT = "/blobServices/default/containers/landing/blobs/credit/d1.csv"
URL = "https://acct.blob.core.windows.net/landing/credit/d1.csv"
TIME = "2024-05-01T12:00:00.123456Z"
TOPIC = "/subscriptions/sub/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/acct"


def blob_data(**overrides: Any) -> dict[str, Any]:
    data = {
        "api": "PutBlob",
        "clientRequestId": "c1",
        "requestId": "r1",
        "eTag": "0x8DC0000000000001",
        "contentType": "text/csv",
        "contentLength": 1234,
        "blobType": "BlockBlob",
        "url": URL,
        "sequencer": "00000000000000000000000000000001",
        "storageDiagnostics": {"batchId": "b1"},
    }
    data.update(overrides)
    return data


def eg(event_type: str, data: Any, subject: str = SUBJECT, **overrides: Any) -> dict[str, Any]:
    """An Event Grid schema event."""
    raw = {
        "id": "eg-1",
        "topic": TOPIC,
        "subject": subject,
        "eventType": event_type,
        "eventTime": TIME,
        "data": data,
        "dataVersion": "",
        "metadataVersion": "1",
    }
    raw.update(overrides)
    return raw


def ce(event_type: str, data: Any, subject: str = SUBJECT, **overrides: Any) -> dict[str, Any]:
    """A CloudEvents 1.0 event (structured JSON)."""
    raw = {
        "specversion": "1.0",
        "id": "ce-1",
        "source": TOPIC,
        "type": event_type,
        "subject": subject,
        "time": TIME,
        "datacontenttype": "application/json",
        "data": data,
    }
    raw.update(overrides)
    return raw


SCHEMAS = pytest.mark.parametrize("make", [eg, ce], ids=["eventgrid", "cloudevents"])


# --------------------------------------------------------------------------------------------- BlobCreated


@SCHEMAS
def test_blob_created(make):
    ev = parse_event(make(BLOB_CREATED, blob_data()))
    assert isinstance(ev, BlobCreated)
    assert ev.event_id in ("eg-1", "ce-1")
    assert ev.container == "landing"
    assert ev.blob_name == "credit/d1.csv"
    assert ev.url == URL
    assert ev.etag == "0x8DC0000000000001"
    assert ev.content_length == 1234
    assert ev.content_type == "text/csv"
    assert ev.sequencer == "00000000000000000000000000000001"
    assert ev.event_time.startswith("2024-05-01T12:00:00")
    assert ev.model == "credit"
    assert ev.dedup_key == f"blob:{URL}:0x8DC0000000000001"


def test_blob_created_type_constant():
    assert BLOB_CREATED == "Microsoft.Storage.BlobCreated"
    assert MODEL_REGISTERED == "Microsoft.MachineLearningServices.ModelRegistered"
    assert DATASET_DRIFT == "Microsoft.MachineLearningServices.DatasetDriftDetected"


def test_blob_name_is_url_decoded_and_dedup_falls_back_to_sequencer():
    subject = "/blobServices/default/containers/landing/blobs/credit/my%20file.csv"
    ev = parse_event(eg(BLOB_CREATED, blob_data(eTag=""), subject=subject))
    assert ev.blob_name == "credit/my file.csv"
    assert ev.dedup_key == f"blob:{URL}:00000000000000000000000000000001"


def test_blob_at_container_root_has_no_model():
    ev = parse_event(eg(BLOB_CREATED, blob_data(), subject="/blobServices/default/containers/landing/blobs/d1.csv"))
    assert ev.model == ""


# --------------------------------------------------------------------------------------------- landing_blob


def _blob(**overrides: Any) -> BlobCreated:
    base = parse_event(eg(BLOB_CREATED, blob_data()))
    fields = {**base.__dict__, **overrides}
    return BlobCreated(**fields)


def test_landing_blob_returns_model():
    lb = landing_blob(_blob(), "landing")
    assert isinstance(lb, BlobCreated)
    assert lb.model == "credit"
    assert lb.blob_name == "credit/d1.csv"
    assert lb.url == URL
    assert lb.content_length == 1234


def test_landing_blob_suffix_is_case_insensitive():
    assert landing_blob(_blob(blob_name="credit/D1.CSV"), "landing") is not None


def test_landing_blob_other_suffixes_allowed():
    assert landing_blob(_blob(blob_name="credit/d1.parquet"), "landing", (".csv", ".parquet")) is not None


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param({"container": "other"}, id="wrong-container"),
        pytest.param({"blob_name": "d1.csv", "model": ""}, id="no-model-folder"),
        pytest.param({"blob_name": "credit/d1.json"}, id="unsupported-suffix"),
        pytest.param({"blob_name": "credit/d1.csv.tmp"}, id="suffix-not-at-end"),
        pytest.param({"content_length": 0}, id="zero-length"),
    ],
)
def test_landing_blob_ignores(overrides, caplog):
    with caplog.at_level("INFO", logger="mlops.events"):
        assert landing_blob(_blob(**overrides), "landing") is None
    assert any("blob ignored" in r.getMessage() for r in caplog.records)


# --------------------------------------------------------------------------------------------- ModelRegistered


@SCHEMAS
def test_model_registered(make):
    data = {"modelName": "credit", "modelVersion": "3", "modelTags": {"run": "r1"}, "modelProperties": {}}
    ev = parse_event(make(MODEL_REGISTERED, data, subject="models/credit:3"))
    assert isinstance(ev, ModelRegistered)
    assert ev.model == "credit"
    assert ev.version == "3"
    assert ev.tags == {"run": "r1"}
    assert ev.event_time.startswith("2024-05-01T12:00:00")
    assert ev.dedup_key == "registered:credit:3"


def test_model_registered_numeric_version_and_no_tags():
    ev = parse_event(eg(MODEL_REGISTERED, {"modelName": "credit", "modelVersion": 4}, subject="models/credit:4"))
    assert ev.version == "4"
    assert ev.tags == {}


# --------------------------------------------------------------------------------------------- drift


@SCHEMAS
def test_dataset_drift_detected(make):
    data = {
        "dataDriftId": "d-1",
        "dataDriftName": "credit-drift",
        "runId": "run-1",
        "baseDatasetId": "b",
        "targetDatasetId": "t",
        "driftCoefficient": 0.83,
        "startTime": "2024-04-30T00:00:00Z",
        "endTime": "2024-05-01T00:00:00Z",
    }
    ev = parse_event(make(DATASET_DRIFT, data, subject="datadrift/d-1/run/run-1"))
    assert isinstance(ev, DriftDetected)
    assert ev.model == "credit"
    assert ev.version is None
    assert ev.source == "azureml"
    assert "credit-drift" in ev.reason and "0.83" in ev.reason
    expected = {"dataDriftId": "d-1", "runId": "run-1", "driftCoefficient": 0.83,
                "startTime": "2024-04-30T00:00:00Z", "endTime": "2024-05-01T00:00:00Z"}
    assert expected.items() <= ev.evidence.items()
    assert ev.dedup_key == "drift:credit:run-1"  # one key per Azure ML monitor run


def test_dataset_drift_name_without_suffix_is_the_model():
    ev = parse_event(eg(DATASET_DRIFT, {"dataDriftName": "credit"}, subject="datadrift/x"))
    assert ev.model == "credit"


@SCHEMAS
def test_app_drift(make):
    features = {
        "f0": {"kind": "numeric", "drifted": True, "psi": 0.9},
        "segment": {"kind": "categorical", "drifted": True, "js_distance": 0.4},
        "f1": {"kind": "numeric", "drifted": False, "psi": 0.01},
    }
    data = {"model": "credit", "version": 3, "features": features, "window": {"minutes": 60}}
    ev = parse_event(make(APP_DRIFT_EVENT_TYPE, data, subject="models/credit"))
    assert isinstance(ev, DriftDetected)
    assert ev.model == "credit"
    assert ev.version == "3"
    assert ev.source == "monitor"
    assert ev.reason == "drift on f0, segment"
    assert ev.evidence == {"features": features, "window": {"minutes": 60}}
    assert ev.dedup_key == "drift:credit:3"


def test_app_drift_without_features_is_about_predictions():
    ev = parse_event(ce(APP_DRIFT_EVENT_TYPE, {"model": "credit"}, subject="models/credit"))
    assert ev.version is None
    assert ev.reason == "drift on predictions"
    assert ev.dedup_key == "drift:credit:ce-1"


# --------------------------------------------------------------------------------------------- malformed


def _without(raw: dict[str, Any], *path: str) -> dict[str, Any]:
    raw = copy.deepcopy(raw)
    target = raw
    for key in path[:-1]:
        target = target[key]
    del target[path[-1]]
    return raw


def _with(raw: dict[str, Any], value: Any, *path: str) -> dict[str, Any]:
    raw = copy.deepcopy(raw)
    target = raw
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return raw


EG_BLOB = eg(BLOB_CREATED, blob_data())
CE_BLOB = ce(BLOB_CREATED, blob_data())
EG_MODEL = eg(MODEL_REGISTERED, {"modelName": "credit", "modelVersion": "3", "modelTags": {}}, subject="models/c")
EG_DRIFT = eg(DATASET_DRIFT, {"dataDriftName": "credit-drift", "driftCoefficient": 0.5}, subject="datadrift/x")
CE_APP_DRIFT = ce(APP_DRIFT_EVENT_TYPE, {"model": "credit", "version": "3", "features": {}}, subject="models/c")

MALFORMED = [
    pytest.param(["not", "an", "object"], "event", id="not-an-object"),
    pytest.param("a string", "event", id="string"),
    pytest.param(_with(CE_BLOB, "0.3", "specversion"), "specversion", id="ce-specversion-0.3"),
    pytest.param(_without(CE_BLOB, "id"), "id", id="ce-no-id"),
    pytest.param(_without(CE_BLOB, "source"), "source", id="ce-no-source"),
    pytest.param(_without(CE_BLOB, "type"), "type", id="ce-no-type"),
    pytest.param(_with(CE_BLOB, "text", "data"), "data", id="ce-data-not-object"),
    pytest.param(_without(CE_BLOB, "data"), "data", id="ce-no-data"),
    pytest.param(_without(EG_BLOB, "id"), "id", id="eg-no-id"),
    pytest.param(_without(EG_BLOB, "eventType"), "eventType", id="eg-no-eventType"),
    pytest.param(_without(EG_BLOB, "subject"), "subject", id="eg-no-subject"),
    pytest.param(_without(EG_BLOB, "eventTime"), "eventTime", id="eg-no-eventTime"),
    pytest.param(_with(EG_BLOB, "", "eventTime"), "eventTime", id="eg-empty-eventTime"),
    pytest.param(_with(EG_BLOB, "yesterday", "eventTime"), "eventTime", id="eg-bad-eventTime"),
    pytest.param(_with(EG_BLOB, 12345, "eventTime"), "eventTime", id="eg-eventTime-number"),
    pytest.param(_with(EG_BLOB, "2024-13-01T00:00:00Z", "eventTime"), "eventTime", id="eg-eventTime-month-13"),
    pytest.param(_without(EG_BLOB, "dataVersion"), "dataVersion", id="eg-no-dataVersion"),
    pytest.param(_with(EG_BLOB, 1, "dataVersion"), "dataVersion", id="eg-dataVersion-int"),
    pytest.param(_without(EG_BLOB, "data"), "data", id="eg-no-data"),
    pytest.param(_with(EG_BLOB, [1, 2], "data"), "data", id="eg-data-list"),
    pytest.param(_with(EG_BLOB, "Microsoft.Storage.BlobDeleted", "eventType"), "eventType", id="eg-unsupported"),
    pytest.param(_with(CE_BLOB, "Some.Other.Event", "type"), "type", id="ce-unsupported"),
    pytest.param(_with(EG_BLOB, "/containers/landing/credit/d1.csv", "subject"), "subject", id="blob-bad-subject"),
    pytest.param(_with(CE_BLOB, "", "subject"), "subject", id="ce-blob-empty-subject"),
    pytest.param(_without(EG_BLOB, "data", "url"), "data.url", id="blob-no-url"),
    pytest.param(_with(CE_BLOB, "", "data", "url"), "data.url", id="ce-blob-empty-url"),
    pytest.param(_with(EG_BLOB, 7, "data", "url"), "data.url", id="blob-url-int"),
    pytest.param(_without(EG_BLOB, "data", "contentLength"), "data.contentLength", id="blob-no-length"),
    pytest.param(_with(EG_BLOB, "1234", "data", "contentLength"), "data.contentLength", id="blob-length-str"),
    pytest.param(_with(CE_BLOB, 12.5, "data", "contentLength"), "data.contentLength", id="ce-blob-length-float"),
    pytest.param(_without(EG_MODEL, "data", "modelName"), "data.modelName", id="model-no-name"),
    pytest.param(_with(EG_MODEL, 3, "data", "modelName"), "data.modelName", id="model-name-int"),
    pytest.param(_without(EG_MODEL, "data", "modelVersion"), "data.modelVersion", id="model-no-version"),
    pytest.param(_with(EG_MODEL, "", "data", "modelVersion"), "data.modelVersion", id="model-empty-version"),
    pytest.param(_with(EG_MODEL, None, "data", "modelVersion"), "data.modelVersion", id="model-null-version"),
    pytest.param(_with(EG_MODEL, ["a"], "data", "modelTags"), "data.modelTags", id="model-tags-list"),
    pytest.param(_without(EG_DRIFT, "data", "dataDriftName"), "data.dataDriftName", id="azureml-drift-no-name"),
    pytest.param(_without(CE_APP_DRIFT, "data", "model"), "data.model", id="app-drift-no-model"),
    pytest.param(_with(CE_APP_DRIFT, ["f0"], "data", "features"), "data.features", id="app-drift-features-list"),
]


@pytest.mark.parametrize(("raw", "field"), MALFORMED)
def test_malformed_event_names_field(raw, field):
    with pytest.raises(EventError) as info:
        parse_event(raw)
    assert info.value.field == field
    assert str(info.value).startswith(f"{field}: ")


def test_fixtures_are_valid():
    # The bases of MALFORMED parse, so each failure above is due to its one change.
    for raw in (EG_BLOB, CE_BLOB, EG_MODEL, EG_DRIFT, CE_APP_DRIFT):
        parse_event(copy.deepcopy(raw))


def test_envelope_reads_both_schemas_alike():
    a = events.envelope(copy.deepcopy(EG_BLOB))
    b = events.envelope(copy.deepcopy(CE_BLOB))
    assert (a.type, a.subject, a.source, a.data) == (b.type, b.subject, b.source, b.data)
    assert a.time.startswith("2024-05-01T12:00:00") and b.time.startswith("2024-05-01T12:00:00")


# --------------------------------------------------------------------------------------------- monitor alerts


def alert(**essentials: Any) -> dict[str, Any]:
    ess = {
        "alertId": "/subscriptions/sub/providers/Microsoft.AlertsManagement/alerts/a-1",
        "alertRule": "credit-error-rate",
        "severity": "Sev1",
        "signalType": "Metric",
        "monitorCondition": "Fired",
        "monitoringService": "Platform",
        "alertTargetIDs": ["/subscriptions/sub/resourceGroups/rg/providers/x/onlineEndpoints/scoring"],
        "firedDateTime": "2024-05-01T12:00:00.000Z",
        "description": "",
        "essentialsVersion": "1.0",
        "alertContextVersion": "1.0",
    }
    ess.update(essentials)
    return {"schemaId": "azureMonitorCommonAlertSchema", "data": {"essentials": ess, "alertContext": {}}}


def test_monitor_alert_model_from_rule_name():
    a = parse_monitor_alert(alert())
    assert isinstance(a, HealthAlert)
    assert a.model == "credit"
    assert a.alert_rule == "credit-error-rate"
    assert a.alert_id.endswith("/alerts/a-1")
    assert a.severity == "Sev1"
    assert a.fired == "2024-05-01T12:00:00.000Z"
    assert a.resolved is False
    assert a.dedup_key == f"alert:{a.alert_id}:2024-05-01T12:00:00.000Z"
    assert a.to_dict()["model"] == "credit"


def test_monitor_alert_model_from_custom_properties_and_resolved():
    body = alert(monitorCondition="Resolved", alertRule="latency-rule")
    body["data"]["customProperties"] = {"model": "fraud"}
    a = parse_monitor_alert(body)
    assert a.model == "fraud"
    assert a.resolved is True


@pytest.mark.parametrize(
    ("body", "field"),
    [
        pytest.param([], "body", id="not-object"),
        pytest.param({**alert(), "schemaId": "Microsoft.Insights/activityLogs"}, "schemaId", id="wrong-schema"),
        pytest.param({"schemaId": "azureMonitorCommonAlertSchema"}, "data", id="no-data"),
        pytest.param({"schemaId": "azureMonitorCommonAlertSchema", "data": {}}, "data.essentials", id="no-essentials"),
        pytest.param(alert(alertRule=""), "data.essentials.alertRule", id="no-rule"),
        pytest.param(alert(alertId=None), "data.essentials.alertId", id="no-id"),
        pytest.param(_without(alert(), "data", "essentials", "monitorCondition"), "data.essentials.monitorCondition",
                     id="no-condition"),
    ],
)
def test_monitor_alert_malformed(body, field):
    with pytest.raises(EventError) as info:
        parse_monitor_alert(body)
    assert info.value.field == field
