"""The orchestration patterns, run by the SDK's own replay on a real devhost process."""

import time
import uuid

from devhost.testing import DevHostProcess


def test_chaining_returns_activity_results_in_order(patterns_host: DevHostProcess) -> None:
    iid = patterns_host.start_orchestration("chaining")
    status = patterns_host.wait_for(iid)
    assert status["runtimeStatus"] == "Completed"
    assert status["output"] == ["Hello Tokyo!", "Hello Seattle!", "Hello London!"]


def test_replay_marks_earlier_episodes_events_played_as_the_functions_host_does(
        patterns_host: DevHostProcess) -> None:
    iid = patterns_host.start_orchestration("replay_flags")
    output = patterns_host.wait_for(iid)["output"]
    # the last episode replays two steps from history and runs the final one for the first time
    assert output["is_replaying"] == [True, True, False]
    played = output["played"]
    # the events before the last OrchestratorStarted are played; that one and the completion after it are new
    assert played[-2:] == [False, False] and all(played[:-2]), played


def test_fan_out_fan_in_sums_all_results_and_sets_custom_status(patterns_host: DevHostProcess) -> None:
    iid = patterns_host.start_orchestration("fan_out", 50)
    status = patterns_host.wait_for(iid)
    assert status["output"] == sum(i * i for i in range(50))
    assert status["customStatus"] == {"stage": "done", "n": 50}


def test_external_event_beats_the_timer(patterns_host: DevHostProcess) -> None:
    iid = patterns_host.start_orchestration("approval", {"hours": 6})
    patterns_host.wait_for(iid, until=lambda s: s["customStatus"] == "waiting for approval")
    assert patterns_host.raise_event(iid, "Approval", {"by": "alice"}).status_code == 202
    status = patterns_host.wait_for(iid)
    assert status["output"] == {"approved": {"by": "alice"}}


def test_timer_beats_the_external_event_when_time_is_advanced(patterns_host: DevHostProcess) -> None:
    iid = patterns_host.start_orchestration("approval", {"hours": 6})
    patterns_host.wait_for(iid, until=lambda s: s["customStatus"] == "waiting for approval")
    patterns_host.advance_clock(6 * 3600 + 1)
    status = patterns_host.wait_for(iid, timeout=10)
    assert status["output"] == {"approved": None, "timed_out": True}


def test_monitor_polls_with_durable_timers_until_done(patterns_host: DevHostProcess) -> None:
    key = uuid.uuid4().hex
    iid = patterns_host.start_orchestration("monitor", key)
    status = patterns_host.status(iid)
    for _ in range(100):  # bounded: each advance releases at most one 30-minute timer
        status = patterns_host.status(iid)
        if status and status["runtimeStatus"] == "Completed":
            break
        patterns_host.advance_clock(31 * 60)
        time.sleep(0.1)
    assert status is not None and status["output"] == {"checks": 3}


def test_sub_orchestrations_return_their_outputs_to_the_parent(patterns_host: DevHostProcess) -> None:
    iid = patterns_host.start_orchestration("parent")
    status = patterns_host.wait_for(iid)
    assert status["output"] == {"a": ["Hello Tokyo!", "Hello Seattle!", "Hello London!"], "b": 0 + 1 + 4 + 9}
    child = patterns_host.status(f"{iid}-child")
    assert child is not None and child["runtimeStatus"] == "Completed"


def test_activity_retry_succeeds_after_failures_then_continues(patterns_host: DevHostProcess) -> None:
    iid = patterns_host.start_orchestration("retries", {"key": uuid.uuid4().hex, "fail_times": 2, "attempts": 3})
    status = patterns_host.wait_for(iid, timeout=30)
    assert status["output"] == {"result": "ok after 3", "after": "Hello after-retry!"}


def test_activity_retry_gives_up_after_max_attempts(patterns_host: DevHostProcess) -> None:
    iid = patterns_host.start_orchestration("retries", {"key": uuid.uuid4().hex, "fail_times": 5, "attempts": 2})
    status = patterns_host.wait_for(iid, timeout=30)
    assert status["runtimeStatus"] == "Completed"
    assert "flaky failure 2" in status["output"]["error"]


def test_sub_orchestration_retry_starts_a_new_child_until_it_succeeds(patterns_host: DevHostProcess) -> None:
    iid = patterns_host.start_orchestration("sub_retry", {"key": uuid.uuid4().hex, "fail_times": 1})
    status = patterns_host.wait_for(iid, timeout=30)
    assert status["runtimeStatus"] == "Completed"
    assert status["output"] == "ok after 2"


def test_continue_as_new_restarts_with_new_input_until_done(patterns_host: DevHostProcess) -> None:
    iid = patterns_host.start_orchestration("counter", {"n": 0, "target": 4})
    status = patterns_host.wait_for(iid)
    assert status["output"] == {"final": 4}
    assert status["input"] == '{"n": 3, "target": 4}'


def test_activity_exception_is_thrown_into_the_orchestrator(patterns_host: DevHostProcess) -> None:
    iid = patterns_host.start_orchestration("catches")
    assert patterns_host.wait_for(iid)["output"] == {"caught": True}


def test_orchestrator_exception_fails_the_instance_with_details(patterns_host: DevHostProcess) -> None:
    iid = patterns_host.start_orchestration("fails")
    status = patterns_host.wait_for(iid)
    assert status["runtimeStatus"] == "Failed"
    assert "orchestrator gave up" in status["output"]


def test_unhandled_activity_failure_fails_the_orchestration(patterns_host: DevHostProcess) -> None:
    iid = patterns_host.start_orchestration("activity_fails", {"key": uuid.uuid4().hex, "fail_times": 9})
    status = patterns_host.wait_for(iid)
    assert status["runtimeStatus"] == "Failed"
    assert "flaky failure 1" in status["output"]


def test_cpu_bound_activity_does_not_block_a_quick_one(patterns_host: DevHostProcess) -> None:
    slow = patterns_host.start_orchestration("cpu_and_quick", 3.0)
    quick = patterns_host.start_orchestration("chaining")
    assert patterns_host.wait_for(quick, timeout=60)["runtimeStatus"] == "Completed"
    # the quick orchestration finished while the CPU-bound activity was still running
    assert patterns_host.status(slow)["runtimeStatus"] == "Running"
    assert patterns_host.wait_for(slow, timeout=60)["output"] == "Hello quick!"


def test_unknown_orchestrator_is_a_400_with_the_name(patterns_host: DevHostProcess) -> None:
    resp = patterns_host.durable("POST", "orchestrators/no_such_orchestrator")
    assert resp.status_code == 400
    assert "no_such_orchestrator" in resp.text
