"""Blob and queue triggers on real Azurite (blob and queue services) with devhost as a real process.

The fixture app (tests/integration/apps/storage_triggers) has host.json ``extensions.queues`` with
``batchSize`` 2, ``newBatchThreshold`` 0, ``maxDequeueCount`` 2 and a one-second ``visibilityTimeout``.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.storage.blob import BlobServiceClient
from azure.storage.queue import QueueClient, QueueServiceClient, TextBase64EncodePolicy

from devhost.azurite import Azurite
from devhost.testing import DevHostProcess, ProcessError

APP = Path(__file__).parents[1] / "apps" / "storage_triggers" / "function_app.py"


def wait_until(what: str, check: Callable[[], Any], host: DevHostProcess, timeout: float = 20) -> Any:
    """Poll ``check`` until it returns something truthy (bounded); its value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"{what} did not happen within {timeout}s\n{host.log_tail()}")


def peek(queue: QueueClient) -> list[Any]:
    """The queue's visible messages (none while the queue does not exist yet)."""
    try:
        return list(queue.peek_messages(max_messages=32))
    except ResourceNotFoundError:
        return []


def runs(out: Path, function: str) -> list[dict[str, Any]]:
    folder = out / function
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))] if folder.is_dir() else []


class Lab:
    def __init__(self, azurite: Azurite, host: DevHostProcess, out: Path) -> None:
        self.azurite, self.host, self.out = azurite, host, out
        self.blobs = BlobServiceClient.from_connection_string(azurite.connection_string)
        self.queues = QueueServiceClient.from_connection_string(azurite.connection_string)

    def upload(self, container: str, name: str, data: str, overwrite: bool = False) -> None:
        self.blobs.get_container_client(container).upload_blob(name, data.encode(), overwrite=overwrite)

    def queue(self, name: str, base64_encoded: bool = True) -> QueueClient:
        return QueueClient.from_connection_string(
            self.azurite.connection_string, name,
            message_encode_policy=TextBase64EncodePolicy() if base64_encoded else None)

    def status(self) -> dict[str, Any]:
        resp = self.host.session.get(f"{self.host.base_url}/admin/devhost/eventgrid", timeout=10)
        resp.raise_for_status()
        return dict(resp.json())

    def names(self, function: str) -> list[str]:
        return sorted(r["name"] for r in runs(self.out, function))


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    root = tmp_path_factory.mktemp("storage-triggers")
    with Azurite(in_memory=True, queue=True) as azurite:
        blobs = BlobServiceClient.from_connection_string(azurite.connection_string)
        for container in ("egdata", "polldata"):
            blobs.create_container(container)
        # Already there at the first start: the container scan runs it, the Event Grid source does not.
        blobs.get_container_client("polldata").upload_blob("before.csv", b"x,y\n")
        blobs.get_container_client("egdata").upload_blob("before.csv", b"x,y\n")
        host = DevHostProcess(APP, root / "devhost", env={
            "AzureWebJobsStorage": azurite.connection_string, "STORAGE_OUT_DIR": str(root / "out"),
            "DEVHOST_BLOB_POLL_SECONDS": "0.1", "DEVHOST_BLOB_TRIGGER_POLL_SECONDS": "0.2"})
        host.start()
        try:
            yield Lab(azurite, host, root / "out")
        finally:
            host.stop()


def test_blob_triggers_run_once_per_blob_version_matching_the_path(lab: Lab) -> None:
    lab.upload("egdata", "a.csv", "a,1\n")
    lab.upload("egdata", "nested/b.csv", "b,22\n")
    lab.upload("egdata", "skip.txt", "not a csv")
    lab.upload("polldata", "c.csv", "c,333\n")
    lab.upload("polldata", "skip.txt", "not a csv")
    wait_until("the Event Grid source ran", lambda: len(runs(lab.out, "on_csv_event")) >= 2, lab.host)
    wait_until("the container scan ran", lambda: len(runs(lab.out, "on_csv_poll")) >= 2, lab.host)
    event_runs = {r["name"]: r for r in runs(lab.out, "on_csv_event")}
    assert sorted(event_runs) == ["egdata/a.csv", "egdata/nested/b.csv"]  # the baseline blob did not run
    assert event_runs["egdata/nested/b.csv"]["content"] == "b,22\n"
    assert event_runs["egdata/nested/b.csv"]["length"] == 5
    assert event_runs["egdata/a.csv"]["uri"] == f"{lab.azurite.blob_endpoint}/egdata/a.csv"
    assert lab.names("on_csv_poll") == ["polldata/before.csv", "polldata/c.csv"]  # the scan runs existing blobs

    # A new version (new ETag) runs again; receipts keep the old ones from running twice, across a restart.
    lab.upload("polldata", "c.csv", "c,4444\n", overwrite=True)
    wait_until("the overwritten blob ran", lambda: len(runs(lab.out, "on_csv_poll")) >= 3, lab.host)
    lab.host.restart()
    lab.upload("polldata", "sentinel.csv", "s\n")
    lab.upload("egdata", "sentinel.csv", "s\n")
    wait_until("the sentinels ran", lambda: "polldata/sentinel.csv" in lab.names("on_csv_poll")
               and "egdata/sentinel.csv" in lab.names("on_csv_event"), lab.host)
    wait_until("the blob trigger queue is empty", lambda: lab.status()["blobTriggers"]["pending"] == 0, lab.host)
    assert lab.names("on_csv_poll") == ["polldata/before.csv", "polldata/c.csv", "polldata/c.csv",
                                        "polldata/sentinel.csv"]
    assert [r["content"] for r in runs(lab.out, "on_csv_poll") if r["name"] == "polldata/c.csv"] in (
        ["c,333\n", "c,4444\n"], ["c,4444\n", "c,333\n"])
    assert lab.names("on_csv_event") == ["egdata/a.csv", "egdata/nested/b.csv", "egdata/sentinel.csv"]


def test_a_failing_blob_goes_to_the_poison_queue_after_max_dequeue_count(lab: Lab) -> None:
    lab.upload("badblobs", "broken.bin", "???")
    poison = lab.queue("webjobs-blobtrigger-poison")
    messages = wait_until("the poison blob message", lambda: peek(poison), lab.host)
    body = json.loads(base64.b64decode(messages[0].content))
    assert body["FunctionId"] == "Host.Functions.on_bad_blob"
    assert (body["ContainerName"], body["BlobName"], body["BlobType"]) == ("badblobs", "broken.bin", "Block")
    assert lab.names("on_bad_blob") == ["badblobs/broken.bin"] * 2  # maxDequeueCount is 2


def test_queue_trigger_processes_messages_in_batches_of_batch_size(lab: Lab) -> None:
    jobs = lab.queue("jobs")
    sent = {jobs.send_message(f"job {i}").id: f"job {i}" for i in range(6)}
    done = wait_until("six jobs", lambda: len(runs(lab.out, "on_job")) >= 6 and runs(lab.out, "on_job"), lab.host)
    assert {r["id"]: r["body"] for r in done} == sent  # base64 on the queue, decoded for the function
    assert all(r["dequeue_count"] == 1 and r["insertion_time"] for r in done)
    # batchSize 2 + newBatchThreshold 0: never more than two at once, and the two of a batch overlap.
    assert max(r["at_once"] for r in done) == 2
    wait_until("the jobs are deleted", lambda: not peek(jobs), lab.host)
    assert lab.status()["queueTriggers"]["on_job"]["peakConcurrency"] == 2


def test_a_message_that_always_fails_goes_to_the_poison_queue(lab: Lab) -> None:
    doomed = lab.queue("doomed")
    sent = doomed.send_message('{"order": 7}')
    poison = lab.queue("doomed-poison", base64_encoded=False)
    messages = wait_until("the poison message", lambda: peek(poison), lab.host)
    assert [base64.b64decode(m.content).decode() for m in messages] == ['{"order": 7}']  # copied as it was
    attempts = runs(lab.out, "on_doomed")
    assert sorted(r["dequeue_count"] for r in attempts) == [1, 2]
    assert {r["id"] for r in attempts} == {sent.id}
    assert not peek(doomed)


def test_a_message_that_is_not_base64_goes_to_the_poison_queue_unrun(lab: Lab) -> None:
    lab.queue("jobs", base64_encoded=False).send_message("plain text, not base64!")
    poison = lab.queue("jobs-poison", base64_encoded=False)
    messages = wait_until("the poison message", lambda: peek(poison), lab.host)
    assert [m.content for m in messages] == ["plain text, not base64!"]
    assert "plain text, not base64!" not in {r["body"] for r in runs(lab.out, "on_job")}


@pytest.mark.parametrize(("queues", "expected"), [
    ({"batchSize": 64}, "extensions.queues.batchSize must be an integer from 1 to 32, got 64"),
    ({"visibilityTimeout": 30}, "extensions.queues.visibilityTimeout must be a TimeSpan"),
])
def test_a_bad_queues_setting_stops_devhost_at_start(tmp_path: Path, lab: Lab, queues: dict[str, Any],
                                                     expected: str) -> None:
    app = tmp_path / "app"
    app.mkdir()
    (app / "function_app.py").write_text(APP.read_text())
    (app / "host.json").write_text(json.dumps({"version": "2.0", "extensions": {"queues": queues}}))
    host = DevHostProcess(app / "function_app.py", tmp_path / "state",
                          env={"AzureWebJobsStorage": lab.azurite.connection_string})
    with pytest.raises(ProcessError, match="exited with 2") as failure:
        host.start()
    assert expected in str(failure.value)
