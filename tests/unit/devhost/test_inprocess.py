"""The in-process runner: the app's orchestrators replayed by the SDK, with stub activities and a virtual clock."""

import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from devhost.app_loader import FunctionIndex
from devhost.history import EventType
from devhost.testing import (
    ActivityCall,
    ActivityNotReplacedError,
    ExternalEvent,
    OrchestrationRunner,
    RunawayOrchestrationError,
    UnknownFunctionError,
    load_app,
)

START = datetime(2024, 1, 1, tzinfo=UTC)


def fails_until(successes_after: int, message: str = "service unavailable") -> Callable[[str], str]:
    """An activity stub that raises on its first calls, then succeeds."""
    calls: list[str] = []

    def flaky(value: str) -> str:
        calls.append(value)
        if len(calls) <= successes_after:
            raise ConnectionError(f"{message} ({len(calls)})")
        return f"ok after {len(calls)} calls"

    return flaky


def approval_event(at: timedelta | None = None, when: Callable[[dict], bool] | None = None) -> ExternalEvent:
    """Ann approves the release, at a virtual time or once the status says so."""
    return ExternalEvent("Approval", {"by": "ann"}, at=at, when=when)


# -- activities -------------------------------------------------------------------------------
def test_chaining_returns_the_replaced_activities_results_in_order(runner: OrchestrationRunner) -> None:
    result = runner.run("chaining")
    assert result.runtime_status == "Completed"
    assert result.output == ["Hello Tokyo!", "Hello Seattle!", "Hello London!"]
    assert result.activity_calls == [ActivityCall("say_hello", city, "test-instance", timedelta(0))
                                     for city in ("Tokyo", "Seattle", "London")]


def test_activity_receives_its_input_after_a_json_round_trip(runner: OrchestrationRunner) -> None:
    result = runner.run("round_trip", {"pair": (1, 2), 3: "three"})
    assert result.inputs_to("echo") == [{"pair": [1, 2], "3": "three"}]
    assert result.output == {"pair": [1, 2], "3": "three"}


def test_activity_can_be_replaced_after_the_runner_is_built(runner: OrchestrationRunner) -> None:
    runner.activity("say_hello", lambda city: city.upper())
    assert runner.run("chaining").output == ["TOKYO", "SEATTLE", "LONDON"]


def test_real_activity_runs_the_apps_own_function_when_asked(app_index: FunctionIndex) -> None:
    runner = OrchestrationRunner(app_index)
    runner.real_activity("say_hello")
    assert runner.run("chaining").output == ["Hello Tokyo!", "Hello Seattle!", "Hello London!"]


def test_activity_exception_fails_the_orchestration_with_its_message(runner: OrchestrationRunner) -> None:
    def broken(city: str) -> str:
        raise RuntimeError(f"no route to {city}")

    runner.activity("say_hello", broken)
    result = runner.run("chaining")
    assert result.runtime_status == "Failed"
    assert result.output is None
    assert result.failure is not None
    assert "Activity function 'say_hello' failed: RuntimeError: no route to Tokyo" in result.failure
    assert result.activity_names == ["say_hello"]
    failed = [e for e in result.history if e["EventType"] == EventType.TASK_FAILED]
    assert failed[0]["Reason"] == "Activity function 'say_hello' failed: RuntimeError: no route to Tokyo"
    assert "Traceback" in failed[0]["Details"]


def test_activity_not_replaced_is_an_error_naming_it(app_index: FunctionIndex) -> None:
    runner = OrchestrationRunner(app_index, {"say_hello": lambda city: city})
    with pytest.raises(ActivityNotReplacedError, match=r"activity 'echo' .*runner.activity\('echo', fn\)"):
        runner.run("round_trip", 1)


def test_replacing_an_activity_the_app_does_not_have_is_an_error(runner: OrchestrationRunner) -> None:
    with pytest.raises(UnknownFunctionError, match="no activity 'say_helo'; it has: echo, flaky, "):
        runner.activity("say_helo", lambda city: city)


def test_running_an_orchestrator_the_app_does_not_have_is_an_error(runner: OrchestrationRunner) -> None:
    with pytest.raises(UnknownFunctionError, match="no orchestrator 'chainig'"):
        runner.run("chainig")


# -- fan-out, failures, history ---------------------------------------------------------------
def test_fan_out_fan_in_sums_every_result_and_sets_the_custom_status(runner: OrchestrationRunner) -> None:
    result = runner.run("fan_out_fan_in", 20)
    assert result.output == sum(i * 10 for i in range(20))
    assert result.custom_status == {"stage": "done", "count": 20}
    assert sorted(result.inputs_to("score")) == list(range(20))


def test_orchestrator_exception_fails_the_orchestration_with_its_message(runner: OrchestrationRunner) -> None:
    result = runner.run("gives_up")
    assert result.runtime_status == "Failed"
    assert result.failure == "Orchestrator function 'gives_up' failed: orchestrator gave up"


def test_history_has_the_event_shapes_the_functions_host_sends(runner: OrchestrationRunner) -> None:
    result = runner.run("round_trip", "x")
    assert result.event_names == [
        "OrchestratorStarted", "ExecutionStarted", "TaskScheduled", "OrchestratorCompleted",
        "OrchestratorStarted", "TaskCompleted", "OrchestratorCompleted", "ExecutionCompleted",
    ]
    assert result.history[0]["Timestamp"] == "2024-01-01T00:00:00.000000Z"


# -- the virtual clock ------------------------------------------------------------------------
def test_timer_jumps_the_virtual_clock(runner: OrchestrationRunner) -> None:
    began = time.perf_counter()
    result = runner.run("reminder", 90)
    assert time.perf_counter() - began < 1.0
    assert result.elapsed == timedelta(minutes=90)
    assert result.output == {"greeting": "Hello later!", "at": (START + timedelta(minutes=90)).isoformat()}
    assert result.activity_calls[0].at == timedelta(minutes=90)


def test_start_time_is_configurable(app_index: FunctionIndex) -> None:
    start = datetime(2030, 6, 1, 12, 0, tzinfo=UTC)
    runner = OrchestrationRunner(app_index, {"say_hello": lambda city: city}, start_time=start)
    assert runner.run("reminder", 30).output["at"] == "2030-06-01T12:30:00+00:00"


def test_a_naive_start_time_is_refused(app_index: FunctionIndex) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        OrchestrationRunner(app_index, start_time=datetime(2030, 6, 1))


def test_a_typical_orchestration_runs_in_well_under_a_second(runner: OrchestrationRunner) -> None:
    began = time.perf_counter()
    result = runner.run("nightly")
    assert time.perf_counter() - began < 1.0
    assert len(result.activity_calls) == 20
    assert result.output == sum(i * 10 for i in range(20))
    assert result.elapsed == timedelta(minutes=40)


# -- external events --------------------------------------------------------------------------
def test_event_at_a_virtual_time_beats_the_deadline_timer(runner: OrchestrationRunner) -> None:
    result = runner.run("approval", {"hours": 6}, events=[approval_event(at=timedelta(minutes=3))])
    assert result.output == {"published": True, "by": "ann"}
    assert result.activity_names == ["prepare", "publish"]
    # the cancelled deadline does not keep the run going: it ends when the orchestration does
    assert result.elapsed == timedelta(minutes=3)


def test_event_raised_when_status_matches_wakes_the_waiting_orchestration(runner: OrchestrationRunner) -> None:
    event = approval_event(when=lambda status: status.get("stage") == "approval")
    result = runner.run("approval", {"hours": 6}, events=[event])
    assert result.output == {"published": True, "by": "ann"}
    assert result.custom_status == {"stage": "publishing"}
    assert result.undelivered_events == []
    assert result.elapsed == timedelta(0)


def test_deadline_timer_wins_when_no_event_comes(runner: OrchestrationRunner) -> None:
    result = runner.run("approval", {"hours": 6})
    assert result.output == {"published": False}
    assert result.activity_names == ["prepare"]
    assert result.elapsed == timedelta(hours=6)


def test_event_after_the_orchestration_finished_is_reported_undelivered(runner: OrchestrationRunner) -> None:
    late = approval_event(at=timedelta(hours=7))
    never = ExternalEvent("Approval", when=lambda status: status.get("stage") == "never")
    result = runner.run("approval", {"hours": 6}, events=[late, never])
    assert result.output == {"published": False}
    assert result.undelivered_events == [late, never]


def test_event_raised_at_the_start_is_kept_until_the_orchestration_waits_for_it(
        runner: OrchestrationRunner) -> None:
    result = runner.run("wait_for_go", events=[ExternalEvent("Go", 5)])
    assert result.output == "Hello 5!"


def test_orchestration_waiting_for_an_event_no_one_sends_is_left_running(runner: OrchestrationRunner) -> None:
    result = runner.run("wait_for_go")
    assert result.runtime_status == "Running"
    assert result.output is None
    assert result.activity_calls == []


def test_event_with_both_a_time_and_a_condition_is_refused() -> None:
    with pytest.raises(ValueError, match="give at= or when=, not both"):
        ExternalEvent("Go", at=timedelta(1), when=lambda status: True)


# -- sub-orchestrations -----------------------------------------------------------------------
def test_sub_orchestrations_results_are_reported_by_instance_id(runner: OrchestrationRunner) -> None:
    child = "test-instance-approval"
    event = ExternalEvent("Approval", {"by": "bo"}, when=lambda status: status["stage"] == "approval",
                          instance_id=child)
    result = runner.run("releases", events=[event])
    assert result.runtime_status == "Completed"
    assert result.output == {"greetings": ["Hello Tokyo!", "Hello Seattle!", "Hello London!"],
                             "outcome": {"published": True, "by": "bo"}}
    assert set(result.sub_orchestrations) == {"test-instance:0000", child}
    assert result.sub_orchestrations["test-instance:0000"].name == "chaining"
    assert result.sub_orchestrations[child].output == {"published": True, "by": "bo"}
    assert result.sub_orchestrations[child].custom_status == {"stage": "publishing"}
    assert {call.instance_id for call in result.activity_calls} == {"test-instance:0000", child}


@pytest.mark.filterwarnings("ignore:Potential duplicate Task completion")  # the SDK's word for an unawaited event
def test_event_for_the_parent_does_not_reach_the_sub_orchestration(runner: OrchestrationRunner) -> None:
    result = runner.run("releases", events=[approval_event(at=timedelta(minutes=1))])
    # the child waits for its own Approval and times out after its hour
    assert result.output["outcome"] == {"published": False}
    assert result.elapsed == timedelta(hours=1)


def test_sub_orchestration_with_retry_starts_the_child_again_after_it_fails(runner: OrchestrationRunner) -> None:
    runner.activity("flaky", fails_until(1))
    result = runner.run("child_with_retry")
    assert result.output == "ok after 2 calls"
    assert result.sub_orchestrations["the-child"].runtime_status == "Completed"
    assert [call.at for call in result.activity_calls] == [timedelta(0), timedelta(seconds=5)]


def test_sub_orchestration_failure_fails_the_parent_with_the_childs_message(runner: OrchestrationRunner) -> None:
    runner.activity("flaky", fails_until(10, "down for maintenance"))
    result = runner.run("child_with_retry")
    assert result.runtime_status == "Failed"
    assert result.failure is not None and "down for maintenance" in result.failure
    assert result.sub_orchestrations["the-child"].runtime_status == "Failed"
    assert len(result.activity_calls) == 3


# -- retries ----------------------------------------------------------------------------------
def test_retry_calls_the_activity_again_after_each_retry_interval(runner: OrchestrationRunner) -> None:
    runner.activity("flaky", fails_until(2))
    result = runner.run("retrying")
    assert result.output == {"result": "ok after 3 calls"}
    assert [call.at for call in result.activity_calls] == [timedelta(0), timedelta(seconds=5),
                                                           timedelta(seconds=10)]


def test_retries_used_up_throw_the_last_error_into_the_orchestrator(runner: OrchestrationRunner) -> None:
    runner.activity("flaky", fails_until(3))
    result = runner.run("retrying")
    assert result.output == {"gave up": "Activity function 'flaky' failed: ConnectionError: service unavailable (3) "}
    assert len(result.activity_calls) == 3


# -- continue_as_new --------------------------------------------------------------------------
def test_continue_as_new_starts_a_fresh_execution_with_the_new_input(runner: OrchestrationRunner) -> None:
    result = runner.run("counter", {"n": 0, "target": 3})
    assert result.output == {"final": 3}
    assert result.executions == 3
    assert result.inputs_to("echo") == [0, 1, 2]
    assert result.event_names.count("ExecutionStarted") == 1  # the history is the last execution's


def test_runaway_continue_as_new_ends_with_a_clear_error(app_index: FunctionIndex) -> None:
    runner = OrchestrationRunner(app_index, max_executions=5)
    with pytest.raises(RunawayOrchestrationError, match=r"after 5 executions .*max_executions=5"):
        runner.run("eternal")


def test_runaway_episodes_end_with_a_clear_error(app_index: FunctionIndex) -> None:
    runner = OrchestrationRunner(app_index, max_episodes=10)
    with pytest.raises(RunawayOrchestrationError, match=r"test-instance is still running after 10 episodes"):
        runner.run("eternal")


# -- loading apps -----------------------------------------------------------------------------
def test_two_apps_both_named_function_app_load_side_by_side(app_index: FunctionIndex, tmp_path: Path) -> None:
    other = tmp_path / "function_app.py"
    other.write_text(
        "import azure.durable_functions as df\n"
        "app = df.DFApp()\n"
        "@app.orchestration_trigger(context_name='context')\n"
        "def chaining(context):\n"
        "    return 'the other app'\n"
        "    yield\n"
    )
    before = sys.modules.get("function_app")
    other_runner = OrchestrationRunner(other)
    assert other_runner.run("chaining").output == "the other app"
    assert OrchestrationRunner(app_index, {"say_hello": str.upper}).run("chaining").output == [
        "TOKYO", "SEATTLE", "LONDON"]
    assert sys.modules.get("function_app") is before  # the worker's module name is left alone
    assert load_app(other).app_path == other.resolve()
