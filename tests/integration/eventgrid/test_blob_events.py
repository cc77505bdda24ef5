"""Blob Storage events from Azurite: shapes as Azure Storage publishes them, filters, both schemas."""

from __future__ import annotations

import json
import re
import socket
import uuid
from collections.abc import Callable
from typing import Any

from azure.storage.blob import BlobBlock, BlobServiceClient, ContentSettings
from eglab import EventsHost, blob_sub, unique

from devhost.azurite import DEFAULT_PORT, Azurite

CREATED = "Microsoft.Storage.BlobCreated"
DELETED = "Microsoft.Storage.BlobDeleted"
GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def subject(container: str, name: str) -> str:
    return f"/blobServices/default/containers/{container}/blobs/{name}"


def test_upload_delivers_blob_created_as_azure_storage_sends_it(events_host: Callable[..., EventsHost]) -> None:
    c = unique()
    lab = events_host([blob_sub("landing", "sink_a", [c])])
    blob = lab.container(c).get_blob_client("data/model-a/train.csv")
    blob.upload_blob(b"x,y\n1,2\n", content_settings=ContentSettings(content_type="text/csv"))
    etag = blob.get_blob_properties().etag

    [got] = lab.wait_records("sink_a")
    assert got["kind"] == "EventGridEvent"
    assert got["event_type"] == CREATED
    assert got["subject"] == subject(c, "data/model-a/train.csv")
    assert re.fullmatch(r"/subscriptions/[0-9a-f-]{36}/resourceGroups/[^/]+/providers/Microsoft\.Storage/"
                        r"storageAccounts/devstoreaccount1", got["topic"])
    assert got["data_version"] == "" and GUID.match(got["id"])
    data = got["data"]
    assert data["api"] == "PutBlob"
    assert data["url"] == blob.url
    assert data["eTag"] == etag
    assert data["contentType"] == "text/csv" and data["contentLength"] == 8 and data["blobType"] == "BlockBlob"
    assert re.fullmatch(r"[0-9A-F]{32}", data["sequencer"])
    assert GUID.match(data["clientRequestId"]) and GUID.match(data["requestId"])
    assert GUID.match(data["storageDiagnostics"]["batchId"])


def test_each_new_version_is_one_event_with_a_larger_sequencer(events_host: Callable[..., EventsHost]) -> None:
    c = unique()
    lab = events_host([blob_sub("landing", "sink_a", [c])])
    blob = lab.container(c).get_blob_client("big.bin")
    blob.upload_blob(b"v1")
    [first] = lab.wait_records("sink_a")
    blob.stage_block("YmxvY2stMQ==", b"v2-part")
    blob.commit_block_list([BlobBlock("YmxvY2stMQ==")])
    records = lab.wait_records("sink_a", count=2)
    second = next(r for r in records if r["id"] != first["id"])
    assert first["data"]["api"] == "PutBlob" and second["data"]["api"] == "PutBlockList"
    assert second["data"]["eTag"] != first["data"]["eTag"]
    assert second["data"]["sequencer"] > first["data"]["sequencer"]
    lab.wait_idle()
    assert len(lab.records("sink_a")) == 2


def test_delete_delivers_blob_deleted(events_host: Callable[..., EventsHost]) -> None:
    c = unique()
    lab = events_host([blob_sub("landing", "sink_a", [c])])
    blob = lab.container(c).get_blob_client("gone.txt")
    blob.upload_blob(b"bye", content_settings=ContentSettings(content_type="text/plain"))
    lab.wait_records("sink_a")
    blob.delete_blob()
    [deleted] = lab.wait_records("sink_a", where=lambda r: r["event_type"] == DELETED)
    assert deleted["subject"] == subject(c, "gone.txt")
    assert deleted["data"]["api"] == "DeleteBlob" and deleted["data"]["url"] == blob.url
    assert deleted["data"]["contentType"] == "text/plain" and "eTag" not in deleted["data"]


def test_subject_and_event_type_filters_pick_the_events(events_host: Callable[..., EventsHost]) -> None:
    c = unique()
    only_csv = blob_sub("csv-in-landing", "sink_a", [c], filter={
        "includedEventTypes": [CREATED],
        "subjectBeginsWith": subject(c, "landing/"),
        "subjectEndsWith": ".CSV"})  # case-insensitive, as Event Grid's default
    everything = blob_sub("everything", "sink_b", [c])
    lab = events_host([only_csv, everything])
    container = lab.container(c)
    for name in ("landing/a.csv", "landing/b.json", "other/c.csv"):
        container.upload_blob(name, b"1")
    lab.wait_records("sink_b", count=3)  # a blob created and deleted between two polls is never seen
    container.delete_blob("landing/a.csv")
    lab.wait_records("sink_b", count=4)
    lab.wait_idle()
    assert [(r["event_type"], r["subject"]) for r in lab.records("sink_a")] == [(CREATED, subject(c, "landing/a.csv"))]
    assert len(lab.records("sink_b")) == 4


def test_cloud_event_schema_subscription_gets_func_cloudevent(events_host: Callable[..., EventsHost]) -> None:
    c = unique()
    lab = events_host([blob_sub("cloudy", "sink_async", [c], schema="CloudEventSchemaV1_0")])
    blob = lab.container(c).get_blob_client("photo.png")
    blob.upload_blob(b"\x89PNG", content_settings=ContentSettings(content_type="image/png"))
    [got] = lab.wait_records("sink_async")
    assert got["kind"] == "CloudEvent" and got["specversion"] == "1.0"
    assert got["type"] == CREATED and got["subject"] == subject(c, "photo.png")
    assert got["source"].endswith("/providers/Microsoft.Storage/storageAccounts/devstoreaccount1")
    assert got["data"]["url"] == blob.url and got["data"]["contentType"] == "image/png"


def test_blob_created_starts_an_orchestration_with_an_id_from_the_etag(events_host: Callable[..., EventsHost]) -> None:
    c = unique()
    lab = events_host([blob_sub("retrain", "start_for_blob", [c])])
    blob = lab.container(c).get_blob_client("model-a/data.csv")
    blob.upload_blob(b"1,2")
    instance_id = "blob-" + blob.get_blob_properties().etag.strip('"')
    running = lab.host.wait_for(instance_id, until=lambda s: s["runtimeStatus"] == "Running")
    assert json.loads(running["input"]) == {"url": blob.url}
    lab.host.raise_event(instance_id, "approval", True).raise_for_status()
    done = lab.host.wait_for(instance_id)
    assert done["runtimeStatus"] == "Completed" and done["output"]["approved"] is True


def test_blobs_already_in_a_container_when_first_watched_emit_nothing(
        events_host: Callable[..., EventsHost], azurite: Azurite) -> None:
    c = unique()
    storage = BlobServiceClient.from_connection_string(azurite.connection_string)
    container = storage.get_container_client(c)
    container.create_container()
    container.upload_blob("old.csv", b"1")
    lab = events_host([blob_sub("landing", "sink_a", [c])])
    container.upload_blob("new.csv", b"2")
    lab.wait_records("sink_a")
    lab.wait_idle()
    assert [r["subject"] for r in lab.records("sink_a")] == [subject(c, "new.csv")]


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def test_use_development_storage_connection_string_works(events_host: Callable[..., EventsHost]) -> None:
    # UseDevelopmentStorage=true always means 127.0.0.1:10000, so this test needs that very port; if
    # something else holds it, the test fails and says so rather than pass without checking anything
    assert _port_free(DEFAULT_PORT), (f"port {DEFAULT_PORT} (where UseDevelopmentStorage=true points) is in use: "
                                      "stop the Azurite or other server on it and run again")
    with Azurite(port=DEFAULT_PORT, in_memory=True) as dev:
        c = unique()
        sub: dict[str, Any] = blob_sub("dev-storage", "sink_a", [c])
        sub["source"]["connection"] = "DevStorage"
        lab = events_host([sub], env={"DevStorage": "UseDevelopmentStorage=true"})
        container = BlobServiceClient.from_connection_string(dev.connection_string).get_container_client(c)
        assert container.exists()  # devhost creates the containers it watches
        container.upload_blob(f"{uuid.uuid4().hex}.txt", b"hi")
        [got] = lab.wait_records("sink_a")
        assert got["data"]["url"].startswith(f"http://127.0.0.1:{DEFAULT_PORT}/devstoreaccount1/{c}/")
        lab.host.stop()
