"""mlops.events: both envelope schemas, every supported event, the monitor alert webhook, and bad input."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pytest

from mlops.drift import DriftThresholds, drift_report
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
    parse_blob_created,
    parse_drift,
    parse_event,
    parse_model_registered,
    parse_monitor_alert,
)

URL = "https://acct.blob.core.windows.net/landing/credit/d1.csv"


def _blob(make_event: Any, data: dict[str, Any], blob: str = "credit/d1.csv", container: str = "landing") -> Any:
    subject = f"/blobServices/default/containers/{container}/blobs/{blob}"
    return parse_event(make_event(BLOB_CREATED, data, subject=subject))


# --------------------------------------------------------------------------------------------- BlobCreated


def test_event_types_are_the_sdk_names() -> None:
    assert BLOB_CREATED == "Microsoft.Storage.BlobCreated"
    assert MODEL_REGISTERED == "Microsoft.MachineLearningServices.ModelRegistered"
    assert DATASET_DRIFT == "Microsoft.MachineLearningServices.DatasetDriftDetected"
    assert APP_DRIFT_EVENT_TYPE == "MLOps.Model.DriftDetected"


def test_blob_created_parses_every_field_in_both_schemas(make_event, blob_data) -> None:
    ev = _blob(make_event, blob_data)
    assert isinstance(ev, BlobCreated)
    assert (ev.model, ev.container, ev.blob_name) == ("credit", "landing", "credit/d1.csv")
    assert (ev.url, ev.etag, ev.sequencer) == (URL, "0x8DC0000000000001", "00000000000000000000000000000001")
    assert (ev.content_length, ev.content_type, ev.api) == (1234, "text/csv", "PutBlob")
    assert ev.event_id in ("eg-1", "ce-1")
    assert ev.event_time.startswith("2024-05-01T12:00:00.123456")
    assert ev.dedup_key == f"blob:{URL}:0x8DC0000000000001"


def test_model_is_the_first_folder_of_a_nested_blob_path(make_event, blob_data) -> None:
    ev = _blob(make_event, blob_data, blob="credit/2024/05/d1.csv")
    assert ev.model == "credit"
    assert ev.blob_name == "credit/2024/05/d1.csv"


def test_blob_name_is_url_decoded_and_dedup_falls_back_to_the_sequencer(make_event, blob_data) -> None:
    ev = _blob(make_event, {**blob_data, "eTag": ""}, blob="credit/my%20file.csv")
    assert ev.blob_name == "credit/my file.csv"
    assert ev.dedup_key == f"blob:{URL}:00000000000000000000000000000001"


def test_redelivered_blob_event_has_the_same_dedup_key(event_grid, blob_data) -> None:
    first = parse_event(event_grid(BLOB_CREATED, blob_data, id="delivery-1"))
    again = parse_event(event_grid(BLOB_CREATED, blob_data, id="delivery-2"))
    overwritten = parse_event(event_grid(BLOB_CREATED, {**blob_data, "eTag": "0x8DC0000000000002"}))
    assert first.dedup_key == again.dedup_key
    assert overwritten.dedup_key != first.dedup_key


def test_blob_at_the_container_root_has_no_model(make_event, blob_data) -> None:
    assert _blob(make_event, blob_data, blob="d1.csv").model == ""


def test_blob_subject_of_another_service_names_the_expected_format(event_grid, blob_data) -> None:
    with pytest.raises(EventError) as err:
        parse_event(event_grid(BLOB_CREATED, blob_data, subject="/fileServices/default/shares/s/files/a.csv"))
    assert err.value.field == "subject"
    assert str(err.value) == ("subject: expected /blobServices/default/containers/<c>/blobs/<model>/<file>, "
                              "got '/fileServices/default/shares/s/files/a.csv'")


@pytest.mark.parametrize(("change", "message"), [
    ({"url": None}, "data.url: missing"),
    ({"url": "ftp://x/y.csv"}, "data.url: must be an http(s) URL, got 'ftp://x/y.csv'"),
    ({"contentLength": None}, "data.contentLength: missing"),
    ({"contentLength": "12"}, "data.contentLength: must be an integer, got str '12'"),
    ({"contentLength": True}, "data.contentLength: must be an integer, got bool True"),
    ({"contentLength": -1}, "data.contentLength: must be >= 0, got -1"),
    ({"eTag": "", "sequencer": ""},
     "data.eTag: missing (and no data.sequencer): the blob version cannot be told apart"),
    ({"contentType": 5}, "data.contentType: must be a string, got int 5"),
])
def test_bad_blob_data_names_the_field(make_event, blob_data, change, message) -> None:
    with pytest.raises(EventError) as err:
        _blob(make_event, {**blob_data, **change})
    assert str(err.value) == message


def test_landing_blob_returns_the_event_for_data_in_a_model_folder(event_grid, blob_data) -> None:
    ev = parse_blob_created(event_grid(BLOB_CREATED, blob_data))
    assert landing_blob(ev, "landing") is ev


def test_landing_blob_suffixes_come_from_the_caller_and_ignore_case(event_grid, blob_data) -> None:
    upper = _blob(event_grid, blob_data, blob="credit/D1.CSV")
    parquet = _blob(event_grid, blob_data, blob="credit/d1.parquet")
    assert landing_blob(upper, "landing") is upper
    assert landing_blob(parquet, "landing") is None
    assert landing_blob(parquet, "landing", allowed_suffixes=(".csv", ".parquet")) is parquet


@pytest.mark.parametrize(("blob", "container", "length", "reason"), [
    ("credit/d1.csv", "other", 10, "container 'other' is not the landing container 'landing'"),
    ("d1.csv", "landing", 10, "blob is not in a model folder (<model>/<file>)"),
    ("credit/notes.txt", "landing", 10, "unsupported file type (allowed: .csv)"),
    ("credit/d1.csv", "landing", 0, "empty blob"),
])
def test_landing_blob_ignores_what_is_not_data_and_logs_why(event_grid, blob_data, caplog, blob, container, length,
                                                           reason) -> None:
    ev = parse_blob_created(event_grid(BLOB_CREATED, {**blob_data, "contentLength": length},
                                subject=f"/blobServices/default/containers/{container}/blobs/{blob}"))
    with caplog.at_level(logging.INFO, logger="mlops.events"):
        assert landing_blob(ev, "landing") is None
    (record,) = caplog.records
    assert record.reason == reason  # type: ignore[attr-defined]
    assert record.blob == blob  # type: ignore[attr-defined]
    assert record.event_id == "eg-1"  # type: ignore[attr-defined]


# --------------------------------------------------------------------------------------------- ModelRegistered


def _registered(**data: Any) -> dict[str, Any]:
    return {"modelName": "credit", "modelVersion": "3", "modelTags": {"run_id": "r1"}, "modelProperties": {},
            **data}


def test_model_registered_parses_name_version_and_tags(make_event) -> None:
    ev = parse_event(make_event(MODEL_REGISTERED, _registered(), subject="models/credit:3"))
    assert isinstance(ev, ModelRegistered)
    assert (ev.model, ev.version, ev.tags) == ("credit", "3", {"run_id": "r1"})
    assert ev.dedup_key == "registered:credit:3"


def test_model_registered_accepts_a_numeric_version_and_no_tags(event_grid) -> None:
    data = {"modelName": "credit", "modelVersion": 4}
    ev = parse_model_registered(event_grid(MODEL_REGISTERED, data, subject="models/credit:4"))
    assert (ev.version, ev.tags) == ("4", {})


def test_model_tags_that_are_not_strings_become_json_text(event_grid) -> None:
    ev = parse_model_registered(event_grid(MODEL_REGISTERED, _registered(modelTags={"auc": 0.9, "ok": True})))
    assert ev.tags == {"auc": "0.9", "ok": "true"}


@pytest.mark.parametrize(("data", "message"), [
    (_registered(modelVersion=None), "data.modelVersion: missing"),
    (_registered(modelVersion=""), "data.modelVersion: missing"),
    (_registered(modelName=None), "data.modelName: missing"),
    (_registered(modelTags=["a"]), "data.modelTags: must be an object, got list"),
])
def test_bad_model_registered_data_names_the_field(make_event, data, message) -> None:
    with pytest.raises(EventError) as err:
        parse_event(make_event(MODEL_REGISTERED, data, subject="models/credit:3"))
    assert str(err.value) == message


def test_model_registered_subject_that_contradicts_data_is_refused(event_grid) -> None:
    with pytest.raises(EventError, match=r"^subject: 'models/credit:2' names another model version"):
        parse_event(event_grid(MODEL_REGISTERED, _registered(), subject="models/credit:2"))


# --------------------------------------------------------------------------------------------- drift


def _azureml_drift(name: str = "credit-drift") -> dict[str, Any]:
    return {"dataDriftId": "d-1", "dataDriftName": name, "runId": "run-1", "baseDatasetId": "b",
            "targetDatasetId": "t", "driftCoefficient": 0.83, "startTime": "2024-04-30T00:00:00Z",
            "endTime": "2024-05-01T00:00:00Z"}


def test_azureml_drift_names_the_model_by_the_monitor_convention(make_event) -> None:
    ev = parse_event(make_event(DATASET_DRIFT, _azureml_drift(), subject="datadrift/d-1/run/run-1"))
    assert isinstance(ev, DriftDetected)
    assert (ev.model, ev.source, ev.version) == ("credit", "azureml", None)
    assert ev.reason == "Azure ML data drift monitor 'credit-drift': coefficient 0.830"
    assert (ev.window_start, ev.window_end) == ("2024-04-30T00:00:00Z", "2024-05-01T00:00:00Z")
    assert ev.evidence["runId"] == "run-1" and ev.evidence["driftCoefficient"] == 0.83
    assert ev.dedup_key == "drift:credit:run-1"


def test_azureml_drift_monitor_named_like_the_model_is_that_model(event_grid) -> None:
    assert parse_event(event_grid(DATASET_DRIFT, _azureml_drift("credit"))).model == "credit"


def test_azureml_drift_without_a_model_name_is_refused(event_grid) -> None:
    with pytest.raises(EventError, match=r"^data.dataDriftName: '-drift' names no model"):
        parse_event(event_grid(DATASET_DRIFT, _azureml_drift("-drift")))


def _app_drift(**data: Any) -> dict[str, Any]:
    return {"model": "credit", "version": "3",
            "features": {"f0": {"statistic": "psi", "value": 0.41, "threshold": 0.2},
                         "f1": {"statistic": "psi", "value": 0.05, "threshold": 0.2}},
            "window": {"start": "2024-05-01T11:00:00Z", "end": "2024-05-01T12:00:00Z"}, **data}


def test_app_drift_event_lists_each_feature_and_says_which_drifted(make_event) -> None:
    ev = parse_event(make_event(APP_DRIFT_EVENT_TYPE, _app_drift(), subject="models/credit:3"))
    assert isinstance(ev, DriftDetected)
    assert (ev.model, ev.version, ev.source) == ("credit", "3", "monitor")
    assert [(f.name, f.statistic, f.value, f.threshold, f.drifted) for f in ev.features] == [
        ("f0", "psi", 0.41, 0.2, True), ("f1", "psi", 0.05, 0.2, False)]
    assert ev.reason == "drift on f0 (psi 0.410 > 0.200)"
    assert ev.window_start == "2024-05-01T11:00:00Z"
    assert ev.dedup_key == "drift:credit:3"


def test_two_drift_events_about_one_version_share_a_dedup_key(event_grid) -> None:
    a = parse_event(event_grid(APP_DRIFT_EVENT_TYPE, _app_drift(), id="a"))
    b = parse_event(event_grid(APP_DRIFT_EVENT_TYPE, _app_drift(features={}), id="b"))
    assert a.dedup_key == b.dedup_key


def test_app_drift_without_features_is_about_predictions(event_grid) -> None:
    ev = parse_drift(event_grid(APP_DRIFT_EVENT_TYPE, {"model": "credit"}))
    assert (ev.version, ev.features, ev.reason) == (None, (), "drift on predictions")


@pytest.mark.parametrize(("data", "message"), [
    (_app_drift(model=None), "data.model: missing"),
    (_app_drift(features=[1]), "data.features: must be an object, got list"),
    (_app_drift(features={"f0": 0.4}), "data.features.f0: must be an object, got float"),
    (_app_drift(features={"f0": {"value": "high"}}), "data.features.f0.value: must be a finite number, got 'high'"),
    (_app_drift(features={"f0": {"drifted": "yes"}}), "data.features.f0.drifted: must be a boolean, got 'yes'"),
    (_app_drift(window={"start": "soon"}), "data.window.start: must be an ISO 8601 time, got 'soon'"),
])
def test_bad_app_drift_data_names_the_field(event_grid, data, message) -> None:
    with pytest.raises(EventError) as err:
        parse_event(event_grid(APP_DRIFT_EVENT_TYPE, data))
    assert str(err.value) == message


def test_drift_report_published_by_the_monitor_parses_back(event_grid) -> None:
    rng = np.random.default_rng(0)
    report = drift_report({"f0": rng.normal(size=500), "f1": rng.normal(size=500)},
                          {"f0": rng.normal(1.0, 1, size=400), "f1": rng.normal(size=400)}, DriftThresholds())
    ev = parse_drift(event_grid(APP_DRIFT_EVENT_TYPE, {"model": "credit", "version": "2",
                                                       "features": report.features_dict()}))
    assert [(f.name, f.statistic, f.drifted) for f in ev.features] == [("f0", "psi", True), ("f1", "psi", False)]


# --------------------------------------------------------------------------------------------- Azure Monitor


def test_monitor_alert_takes_the_model_from_the_rule_name_prefix(alert_body) -> None:
    alert = parse_monitor_alert(alert_body)
    assert isinstance(alert, HealthAlert)
    assert (alert.model, alert.alert_rule, alert.severity, alert.resolved) == ("credit", "credit-5xx-rate", "Sev1",
                                                                              False)
    assert alert.fired == "2024-05-01T12:00:00.3713213Z"
    assert alert.dedup_key == ("alert:/subscriptions/sub/providers/Microsoft.AlertsManagement/alerts/a-1:"
                               "2024-05-01T12:00:00.3713213Z")
    assert alert.target_ids[0].endswith("/onlineendpoints/scoring")


def test_monitor_alert_custom_property_model_wins_over_the_rule_name(alert_body) -> None:
    alert_body["data"]["customProperties"] = {"model": "fraud-v2"}
    alert_body["data"]["essentials"]["monitorCondition"] = "Resolved"
    alert = parse_monitor_alert(alert_body)
    assert (alert.model, alert.resolved) == ("fraud-v2", True)


def test_monitor_alert_rule_given_as_an_arm_id_still_names_the_model(alert_body) -> None:
    alert_body["data"]["essentials"]["alertRule"] = ("/subscriptions/s/resourceGroups/rg/providers/"
                                                     "microsoft.insights/metricAlerts/credit-latency")
    assert parse_monitor_alert(alert_body).model == "credit"


def test_parse_event_recognises_a_monitor_alert_body(alert_body) -> None:
    assert isinstance(parse_event(alert_body), HealthAlert)


@pytest.mark.parametrize(("path", "value", "message"), [
    (("schemaId",), "other", "schemaId: expected 'azureMonitorCommonAlertSchema', got 'other'"),
    (("data", "essentials", "alertId"), None, "data.essentials.alertId: missing"),
    (("data", "essentials", "alertRule"), None, "data.essentials.alertRule: missing"),
    (("data", "essentials", "monitorCondition"), "Maybe",
     "data.essentials.monitorCondition: must be 'Fired' or 'Resolved', got 'Maybe'"),
    (("data", "essentials", "firedDateTime"), "noon", "data.essentials.firedDateTime: must be an ISO 8601 time, got "
                                                      "'noon'"),
    (("data", "essentials", "alertRule"), "latency",
     "data.customProperties.model: missing, and alert rule 'latency' does not follow the '<model>-<name>' convention"),
    (("data", "essentials"), None, "data.essentials: missing"),
])
def test_bad_monitor_alert_names_the_field(alert_body, path, value, message) -> None:
    target = alert_body
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(EventError) as err:
        parse_monitor_alert(alert_body)
    assert str(err.value) == message


# --------------------------------------------------------------------------------------------- envelopes


def test_specific_parsers_refuse_other_event_types(event_grid, cloud_event, blob_data) -> None:
    blob = event_grid(BLOB_CREATED, blob_data)
    with pytest.raises(EventError, match=r"^eventType: expected 'Microsoft.MachineLearningServices.ModelRegistered'"):
        parse_model_registered(blob)
    with pytest.raises(EventError, match=r"^type: expected 'MLOps.Model.DriftDetected'"):
        parse_drift(cloud_event(BLOB_CREATED, blob_data))
    assert parse_blob_created(blob).model == "credit"
    assert parse_drift(event_grid(DATASET_DRIFT, _azureml_drift())).source == "azureml"


def _without(raw: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in raw.items() if k != key}


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda e: _without(e, "id"), "id: missing"),
    (lambda e: _without(e, "eventType"), "eventType: missing"),
    (lambda e: _without(e, "subject"), "subject: missing"),
    (lambda e: _without(e, "eventTime"), "eventTime: missing"),
    (lambda e: _without(e, "dataVersion"), "dataVersion: missing"),
    (lambda e: {**e, "dataVersion": 1}, "dataVersion: must be a string"),
    (lambda e: {**e, "eventTime": "yesterday"}, "eventTime: must be an ISO 8601 time, got 'yesterday'"),
    (lambda e: {**e, "data": "text"}, "data: must be an object, got str 'text'"),
    (lambda e: {**e, "eventType": "Microsoft.Storage.BlobDeleted"},
     "eventType: unsupported event type 'Microsoft.Storage.BlobDeleted'"),
])
def test_malformed_event_grid_envelope_names_the_field(event_grid, blob_data, mutate, message) -> None:
    with pytest.raises(EventError) as err:
        parse_event(mutate(event_grid(BLOB_CREATED, blob_data)))
    assert str(err.value) == message


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda e: {**e, "specversion": "0.3"}, "specversion: must be '1.0', got '0.3'"),
    (lambda e: _without(e, "source"), "source: missing"),
    (lambda e: _without(e, "type"), "type: missing"),
    (lambda e: {**e, "time": "later"}, "time: must be an RFC 3339 time, got 'later'"),
    (lambda e: {**e, "data": [1, 2]}, "data: must be a JSON object, got list"),
    (lambda e: {**e, "type": "com.example.Other"}, "type: unsupported event type 'com.example.Other'"),
])
def test_malformed_cloud_event_names_the_field(cloud_event, blob_data, mutate, message) -> None:
    with pytest.raises(EventError) as err:
        parse_event(mutate(cloud_event(BLOB_CREATED, blob_data)))
    assert str(err.value) == message


def test_an_event_that_is_not_an_object_is_refused() -> None:
    with pytest.raises(EventError, match=r"^event: must be a JSON object, got list$"):
        parse_event([{"id": "1"}])


def test_both_schemas_parse_to_equal_events_apart_from_the_id(event_grid, cloud_event, blob_data) -> None:
    a = parse_event(event_grid(BLOB_CREATED, blob_data, id="same"))
    b = parse_event(cloud_event(BLOB_CREATED, blob_data, id="same"))
    assert a == b


# --------------------------------------------------------------------------------------------- model names

NOT_MODEL_NAMES = ["a/b", "../credit", "Credit", "credit model", "1credit", "c" * 25, "credit_v2", "crédit"]


@pytest.mark.parametrize("name", NOT_MODEL_NAMES)
def test_model_registered_with_a_name_that_is_not_a_model_name_is_refused(make_event, name) -> None:
    with pytest.raises(EventError) as err:
        parse_event(make_event(MODEL_REGISTERED, _registered(modelName=name), subject=f"models/{name}:3"))
    assert str(err.value).startswith(f"data.modelName: {name!r} is not a valid model name")


@pytest.mark.parametrize("name", NOT_MODEL_NAMES)
def test_drift_about_a_name_that_is_not_a_model_name_is_refused(event_grid, name) -> None:
    with pytest.raises(EventError, match=r"^data.model: .* is not a valid model name"):
        parse_event(event_grid(APP_DRIFT_EVENT_TYPE, _app_drift(model=name)))
    with pytest.raises(EventError, match=r"^data.dataDriftName: .* is not a valid model name"):
        parse_event(event_grid(DATASET_DRIFT, _azureml_drift(f"{name}-drift")))


def test_an_alert_about_a_name_that_is_not_a_model_name_is_refused(alert_body) -> None:
    alert_body["data"]["customProperties"] = {"model": "a/b"}
    with pytest.raises(EventError, match=r"^data.customProperties.model: 'a/b' is not a valid model name"):
        parse_monitor_alert(alert_body)
    alert_body["data"]["customProperties"] = None
    alert_body["data"]["essentials"]["alertRule"] = "Credit-5xx-rate"
    with pytest.raises(EventError, match=r"^data.essentials.alertRule: 'Credit' is not a valid model name"):
        parse_monitor_alert(alert_body)


def test_landing_blob_in_a_folder_that_is_not_a_model_name_is_ignored_with_the_reason(event_grid, blob_data,
                                                                                       caplog) -> None:
    ev = _blob(event_grid, blob_data, blob="Credit%20Model/d1.csv")
    with caplog.at_level(logging.INFO, logger="mlops.events"):
        assert landing_blob(ev, "landing") is None
    assert "'Credit Model' is not a valid model name" in caplog.records[0].reason  # type: ignore[attr-defined]
