"""Delivery: Event Grid's retry schedule on the virtual clock, dead-lettering, and restarts that lose
nothing and repeat nothing."""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from eglab import EventsHost, blob_sub, topic_sub, unique

KEY = "ZGV2aG9zdC1kZWxpdmVyeS10ZXN0cy10b3BpYy1rZXk="


def publish(lab: EventsHost, topic: str, data: dict[str, Any] | None = None) -> str:
    """Publish one Event Grid schema event to a devhost topic; its id."""
    event_id = str(uuid.uuid4())
    event = {"id": event_id, "subject": "jobs/1", "eventType": "Jobs.Queued", "eventTime": "2024-05-01T00:00:00Z",
             "data": data or {}, "dataVersion": "1"}
    resp = lab.host.session.post(lab.topic_endpoint(topic), json=[event], headers={"aeg-sas-key": KEY}, timeout=10)
    assert resp.status_code == 200, resp.text
    return event_id


def attempts_are(subscription: str, n: int, status: dict[str, Any]) -> bool:
    return bool(status["pending"].get(subscription, {}).get("attempts") == n)


def seconds_between(a: str, b: str) -> float:
    return (datetime.fromisoformat(b.replace("Z", "+00:00")) - datetime.fromisoformat(a.replace("Z", "+00:00"))
            ).total_seconds()


def dead_letters(lab: EventsHost, subscription: str) -> list[dict[str, Any]]:
    folder = lab.host.state_dir / "deadletter" / subscription
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))] if folder.exists() else []


def test_failing_function_is_retried_on_event_grid_schedule_then_dead_lettered(
        events_host: Callable[..., EventsHost]) -> None:
    topic = unique("t")
    lab = events_host([topic_sub("always-failing", "fails_always", topic, retry={"maxDeliveryAttempts": 4})],
                      topic_keys={topic: KEY})
    event_id = publish(lab, topic)
    for attempt, delay in ((1, 10), (2, 30), (3, 60)):
        lab.wait_records("fails_always", count=attempt)
        status = lab.wait_status(functools.partial(attempts_are, "always-failing", attempt))
        pending = status["pending"]["always-failing"]
        assert seconds_between(pending["lastAttemptAt"], pending["nextAttemptAt"]) == delay
        assert dead_letters(lab, "always-failing") == []
        lab.host.advance_clock(delay)
    lab.wait_records("fails_always", count=4)
    lab.wait_idle()
    [record] = dead_letters(lab, "always-failing")
    assert record["id"] == event_id and record["eventType"] == "Jobs.Queued"
    assert record["deadLetterReason"] == "MaxDeliveryAttemptsExceeded" and record["deliveryAttempts"] == 4
    assert "fails_always refuses event" in record["devhostLastError"]
    assert {"publishTime", "lastDeliveryAttemptTime", "lastDeliveryOutcome"} <= set(record)
    assert (lab.host.state_dir / "deadletter" / "always-failing" / f"{event_id}.json").exists()
    assert len(lab.records("fails_always")) == 4


def test_event_past_its_time_to_live_is_dead_lettered(events_host: Callable[..., EventsHost]) -> None:
    topic = unique("t")
    lab = events_host([topic_sub("short-lived", "fails_always", topic, retry={"eventTimeToLiveInMinutes": 1})],
                      topic_keys={topic: KEY})
    publish(lab, topic)
    lab.wait_records("fails_always")
    lab.wait_status(lambda s: s["pending"].get("short-lived", {}).get("attempts") == 1)
    lab.host.advance_clock(3600)
    lab.wait_idle()
    [record] = dead_letters(lab, "short-lived")
    assert record["deadLetterReason"] == "TimeToLiveExceeded" and record["deliveryAttempts"] == 1
    assert len(lab.records("fails_always")) == 1


def test_pending_retry_survives_a_kill_and_succeeds_after_restart(events_host: Callable[..., EventsHost]) -> None:
    topic = unique("t")
    lab = events_host([topic_sub("flaky-jobs", "flaky", topic)], topic_keys={topic: KEY})
    event_id = publish(lab, topic, {"succeedOnAttempt": 2})
    lab.wait_records("flaky")
    lab.wait_status(lambda s: s["pending"].get("flaky-jobs", {}).get("attempts") == 1)
    lab.host.kill()
    lab.host.start()
    lab.host.advance_clock(10)
    lab.wait_records("flaky", count=2)
    lab.wait_idle()
    assert [r["id"] for r in lab.records("flaky")] == [event_id, event_id]
    assert dead_letters(lab, "flaky-jobs") == []


def subjects(lab: EventsHost, function: str) -> list[tuple[str, str]]:
    return sorted((r["event_type"].rsplit(".", 1)[1], r["subject"].rsplit("/", 1)[1]) for r in lab.records(function))


def test_restart_repeats_nothing_and_delivers_what_changed_while_down(events_host: Callable[..., EventsHost]) -> None:
    c = unique()
    lab = events_host([blob_sub("landing", "sink_a", [c])])
    container = lab.container(c)
    container.upload_blob("a.csv", b"1")
    lab.wait_records("sink_a")
    lab.host.kill()  # no shutdown code runs

    container.upload_blob("b.csv", b"2")  # lands while devhost is down
    container.delete_blob("a.csv")  # and one goes
    lab.host.start()
    lab.wait_records("sink_a", count=3)
    lab.wait_idle()
    assert subjects(lab, "sink_a") == [("BlobCreated", "a.csv"), ("BlobCreated", "b.csv"), ("BlobDeleted", "a.csv")]

    lab.host.restart()  # nothing changed: nothing is emitted again
    container.upload_blob("c.csv", b"3")
    lab.wait_records("sink_a", count=4)
    lab.wait_idle()
    assert subjects(lab, "sink_a") == [("BlobCreated", "a.csv"), ("BlobCreated", "b.csv"), ("BlobCreated", "c.csv"),
                                       ("BlobDeleted", "a.csv")]
    sequencers = [r["data"]["sequencer"] for r in sorted(lab.records("sink_a"), key=lambda r: r["data"]["sequencer"])]
    assert len(set(sequencers)) == 4


def test_one_attempt_subscription_dead_letters_at_once(events_host: Callable[..., EventsHost]) -> None:
    topic = unique("t")
    lab = events_host([topic_sub("one-shot", "fails_always", topic, retry={"maxDeliveryAttempts": 1})],
                      topic_keys={topic: KEY})
    event_id = publish(lab, topic)
    lab.wait_records("fails_always")
    lab.wait_idle()
    path = lab.host.state_dir / "deadletter" / "one-shot" / f"{event_id}.json"
    assert json.loads(path.read_text())["deliveryAttempts"] == 1
