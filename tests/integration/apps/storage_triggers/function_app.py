"""Fixture app: blob- and queue-triggered functions, written as a user would, for devhost's storage trigger tests.

Every run writes what the function received to ``$STORAGE_OUT_DIR/<function>/<uuid>.json``.
"""

import json
import os
import threading
import time
import uuid
from pathlib import Path

import azure.functions as func

app = func.FunctionApp()
OUT = Path(os.environ.get("STORAGE_OUT_DIR", "/tmp/devhost-storage"))
_lock = threading.Lock()
_running = {"now": 0}


def record(function: str, payload: dict) -> None:
    folder = OUT / function
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{uuid.uuid4().hex}.tmp"
    tmp.write_text(json.dumps(payload))
    tmp.replace(folder / f"{uuid.uuid4().hex}.json")


def describe(blob: func.InputStream) -> dict:
    return {"name": blob.name, "length": blob.length, "uri": blob.uri, "content": blob.read().decode(),
            "etag": (blob.blob_properties or {}).get("ETag"), "metadata": blob.metadata}


@app.blob_trigger(arg_name="blob", path="egdata/{name}.csv", connection="AzureWebJobsStorage", source="EventGrid")
def on_csv_event(blob: func.InputStream) -> None:
    record("on_csv_event", describe(blob))


@app.blob_trigger(arg_name="blob", path="polldata/{name}.csv", connection="AzureWebJobsStorage")
def on_csv_poll(blob: func.InputStream) -> None:
    record("on_csv_poll", describe(blob))


@app.blob_trigger(arg_name="blob", path="badblobs/{name}", connection="AzureWebJobsStorage")
def on_bad_blob(blob: func.InputStream) -> None:
    record("on_bad_blob", describe(blob))
    raise RuntimeError(f"cannot read {blob.name}")


@app.queue_trigger(arg_name="msg", queue_name="jobs", connection="AzureWebJobsStorage")
def on_job(msg: func.QueueMessage) -> None:
    with _lock:
        _running["now"] += 1
        at_once = _running["now"]
    try:
        time.sleep(0.3)  # long enough for the runs of one batch to overlap
        record("on_job", {"id": msg.id, "body": msg.get_body().decode(), "dequeue_count": msg.dequeue_count,
                          "insertion_time": msg.insertion_time.isoformat() if msg.insertion_time else None,
                          "at_once": at_once})
    finally:
        with _lock:
            _running["now"] -= 1


@app.queue_trigger(arg_name="msg", queue_name="doomed", connection="AzureWebJobsStorage")
def on_doomed(msg: func.QueueMessage) -> None:
    record("on_doomed", {"id": msg.id, "body": msg.get_body().decode(), "dequeue_count": msg.dequeue_count})
    raise ValueError("this message always fails")
