"""The steps every runbook shares: typed activity calls, stage bookkeeping, traffic, deploy-and-wait, bake.

``Steps`` is bound to one orchestration's context and status. Its generator methods are used
with ``yield from`` inside an orchestrator, so each reads as one line of the runbook. Nothing
here does I/O: activities do, and time is ``context.current_utc_datetime``.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from datetime import datetime, timedelta
from typing import Any, TypeVar

import azure.durable_functions as df

from mlops._json import Json
from mlops.contracts import (
    ABORT_EVENT,
    BEGIN_DEPLOYMENT,
    GET_OPERATION,
    GET_TRAFFIC,
    NOTIFY,
    PAUSE_EVENT,
    RESUME_EVENT,
    SET_TRAFFIC,
    DeployInput,
    EndpointRef,
    Notice,
    Notified,
    OperationRef,
    TrafficChange,
    TrafficState,
)
from mlops.errors import PlatformError, is_transient
from mlops.ports import ModelVersion, Operation, PromptVersion
from mlops.runs import RunFailed, RunStatus, event_data
from mlops.vocabulary import Verdict

from .status import StatusReporter

T = TypeVar("T", bound=Json)
R = TypeVar("R")
Step = Generator[Any, Any, T]

DEPLOY_POLL_SECONDS = 1  # first poll, doubling: a local deployment is ready in a second or two (its model's load)
DEPLOY_POLL_MAX_SECONDS = 120  # polls back off to this: an Azure ML deployment takes 5-15 minutes, and every
# poll adds two events to a history that each replay reads in full
DEPLOY_TIMEOUT_MINUTES = 30
TRAFFIC_POLL_SECONDS = 5  # an Azure ML endpoint update takes seconds to a few minutes; locally it is immediate
TRAFFIC_POLL_MAX_SECONDS = 30  # polls back off to this: a bake's window should start soon after the split applies
TRAFFIC_TIMEOUT_MINUTES = 15
# waits between attempts of an activity that failed transiently: rides out a platform restart of
# about two minutes (a gateway or Azurite restart locally, a throttled or failing-over service in Azure)
RETRY_WAITS = (5, 10, 20, 40, 60)


def retried(context: df.DurableOrchestrationContext, task: Callable[[], Any], what: str,
            on_retry: Callable[[str], None] | None = None) -> Generator[Any, Any, Any]:
    """Yield ``task()`` until it succeeds, retrying with durable timers while it fails with a ``TransientError``.

    Not ``call_activity_with_retry``: the SDK's RetryOptions retry every failure alike, and a refused
    split or a missing version will not get better by waiting.
    """
    for wait in (*RETRY_WAITS, None):
        try:
            return (yield task())
        except Exception as exc:  # a failed task: its text says whether it is worth another try
            if wait is None or not is_transient(exc):
                raise
            if on_retry is not None:
                on_retry(f"retrying {what} in {wait} s: {str(exc).splitlines()[0][:200]}")
            yield context.create_timer(context.current_utc_datetime + timedelta(seconds=wait))
    raise AssertionError("unreachable: the last attempt returns or raises")


def first_line(exc: BaseException) -> str:
    """The first line of an error's text, bounded: what a verdict can show."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]


def call(context: df.DurableOrchestrationContext, name: str, payload: Json, output: type[T]) -> Generator[Any, Any, T]:
    """Call an activity (transient failures retried) and parse its answer as ``output``."""
    answer = yield from retried(context, lambda: context.call_activity(name, payload.to_dict()), name)
    return output.from_dict(answer)


class Steps:
    """The shared steps, bound to one orchestration."""

    def __init__(self, context: df.DurableOrchestrationContext, status: RunStatus) -> None:
        self.context = context
        self.status = status
        self._reporter = StatusReporter(context, status)

    @property
    def now(self) -> datetime:
        """The orchestration's deterministic clock."""
        return self.context.current_utc_datetime

    def publish(self) -> None:
        """Show the status (and send its new facts once)."""
        self._reporter.publish()

    # -- activities ----------------------------------------------------------------------
    def task(self, name: str, payload: Json) -> Any:
        """The activity task (for ``task_all``); its result is ``to_dict`` of the output type."""
        return self.context.call_activity(name, payload.to_dict())

    def call(self, name: str, payload: Json, output: type[T]) -> Generator[Any, Any, T]:
        """Call an activity and parse its answer as ``output``; transient failures are retried."""
        answer = yield from self.retried(name, payload)
        return output.from_dict(answer)

    def do(self, name: str, payload: Json) -> Generator[Any, Any, None]:
        """Call an activity that answers nothing; transient failures are retried."""
        yield from self.retried(name, payload)

    def notify(self, stage: str, kind: str, reason: str, **detail: Any) -> Generator[Any, Any, None]:
        """Tell someone (``mlops.notices``): one call of the notify activity, never retried. How it went is kept
        in ``stage``'s detail (``notice``); a failure never changes the run."""
        notice = Notice(kind, self.status.model, self.context.instance_id, reason, self.status.version or "",
                        detail)
        try:
            sent = yield self.task(NOTIFY, notice)
            outcome: dict[str, Any] = Notified.from_dict(sent).to_dict()
        except Exception as exc:  # the run goes on: a person not told is no reason to stop it
            outcome = {"error": first_line(exc)}
        self.status.stage_named(stage).detail["notice"] = {"kind": kind, **outcome}
        self.publish()

    def retried(self, name: str, payload: Json) -> Generator[Any, Any, Any]:
        """The activity's raw answer; transient failures are retried (``retried``), each retry shown."""
        return (yield from retried(self.context, lambda: self.task(name, payload), name, self._show_retry))

    def all_retried(self, calls: list[tuple[str, Json]]) -> Generator[Any, Any, list[Any]]:
        """Several activities at once (``task_all``); the whole set is retried if one fails transiently."""
        what = ", ".join(sorted({name for name, _ in calls}))
        return (yield from retried(self.context, lambda: self.context.task_all([self.task(n, p) for n, p in calls]),
                                   what, self._show_retry))

    def _show_retry(self, message: str) -> None:
        self.status.message = message
        self.publish()

    # -- stages --------------------------------------------------------------------------
    def begin(self, stage: str, **detail: Any) -> None:
        """Mark ``stage`` running and show it."""
        self.status.begin(stage, self.now, **detail)
        self.publish()

    def end(self, stage: str, **detail: Any) -> None:
        """Mark ``stage`` succeeded (shown with the next publish)."""
        self.status.end(stage, self.now, **detail)

    def fail(self, stage: str, message: str, verdict: Verdict = Verdict.FAILED, **detail: Any) -> RunFailed:
        """End ``stage`` and the run failed with ``message``; raise what this returns."""
        self.status.end(stage, self.now, ok=False, **detail)
        self.status.finish(verdict, message)
        self.publish()
        return RunFailed(message)

    def _unexpected_at(self, exc: BaseException, prefix: str = "") -> tuple[str, str]:
        """(the stage an unexpected error happened in, the message that says so)."""
        return self.status.stage or self.status.stages[0].name, f"{prefix}unexpected failure: {first_line(exc)}"

    def unexpected(self, exc: BaseException, verdict: Verdict = Verdict.FAILED, prefix: str = "") -> RunFailed:
        """End the running stage and the run failed because of an error no step expected; raise what this returns."""
        return self.fail(*self._unexpected_at(exc, prefix), verdict)

    def with_verdict(self, runbook: Generator[Any, Any, R],
                     restore: Callable[[str, str], Generator[Any, Any, RunFailed]] | None = None,
                     ) -> Generator[Any, Any, R]:
        """Run ``runbook``; an error no step expected still ends the run with a verdict naming its stage.

        ``restore(stage, message)``, when given, puts things back first (a release: live traffic to the
        champion) and returns the RunFailed to raise.
        """
        try:
            return (yield from runbook)
        except RunFailed:
            raise
        except Exception as exc:  # a platform that stayed down through the retries, or a bug
            if restore is None:
                raise self.unexpected(exc) from exc
            raise (yield from restore(*self._unexpected_at(exc))) from exc

    def finish(self, verdict: Verdict, message: str) -> None:
        """End the run with its verdict and show it."""
        self.status.finish(verdict, message)
        self.publish()

    # -- serving -------------------------------------------------------------------------
    def set_traffic(self, endpoint: str, model: str, traffic: dict[str, int], mirror: dict[str, int] | None = None,
                    sticky: dict[str, str] | None = None) -> Generator[Any, Any, TrafficState]:
        """Replace the endpoint's split and wait, with durable timers, until the platform has applied it (Azure ML
        updates an endpoint as a long-running operation); ``at`` of the answer is when it was seen applied,
        which is where a bake's metrics window starts. The status shows what is live."""
        applied = yield from self.call(SET_TRAFFIC, TrafficChange(endpoint, model, traffic, mirror or {}, sticky),
                                       TrafficState)
        deadline = self.now + timedelta(minutes=TRAFFIC_TIMEOUT_MINUTES)
        wait = TRAFFIC_POLL_SECONDS
        while applied.updating:
            if self.now >= deadline:
                raise PlatformError(f"endpoint {endpoint}", f"the traffic update was not applied after "
                                                            f"{TRAFFIC_TIMEOUT_MINUTES} minutes")
            yield self.context.create_timer(min(self.now + timedelta(seconds=wait), deadline))
            applied = yield from self.call(GET_TRAFFIC, EndpointRef(endpoint), TrafficState)
            wait = min(wait * 2, TRAFFIC_POLL_MAX_SECONDS)
        self.status.traffic = applied.to_dict()
        self.publish()
        return applied

    def deploy(self, endpoint: str, deployment: str, version: ModelVersion,
               prompt: PromptVersion | None = None) -> Generator[Any, Any, Operation]:
        """Create the deployment at 0 % (a chat model's answering through ``prompt``) and poll it with durable
        timers (backing off) until it is done or the deadline passes."""
        op = yield from self.call(BEGIN_DEPLOYMENT, DeployInput(endpoint, deployment, version, prompt), Operation)
        deadline = self.now + timedelta(minutes=DEPLOY_TIMEOUT_MINUTES)
        wait = DEPLOY_POLL_SECONDS
        while op.state == "running" and self.now < deadline:
            yield self.context.create_timer(min(self.now + timedelta(seconds=wait), deadline))
            op = yield from self.call(GET_OPERATION, OperationRef(op.operation_id), Operation)
            wait = min(wait * 2, DEPLOY_POLL_MAX_SECONDS)
        if op.state == "running":
            return Operation(op.operation_id, "failed", f"not ready after {DEPLOY_TIMEOUT_MINUTES} minutes")
        return op

    def bake(self, stage: str, minutes: float) -> Generator[Any, Any, str | None]:
        """Wait out the bake time, honouring pause and resume; the abort reason if an operator aborts."""
        end = self.now + timedelta(minutes=minutes)
        while True:
            # shown with the timer: whoever reads the status sees when the bake ends (and that its timer is set)
            self.status.stage_named(stage).detail["bake_until"] = end.isoformat()
            self.publish()
            timer = self.context.create_timer(end)
            abort = self.context.wait_for_external_event(ABORT_EVENT)
            pause = self.context.wait_for_external_event(PAUSE_EVENT)
            winner = yield self.context.task_any([timer, abort, pause])
            if winner == timer:
                return None
            timer.cancel()
            if winner == abort:
                return _reason(abort.result)
            self.status.message = f"paused during {stage}"
            self.publish()
            resume = self.context.wait_for_external_event(RESUME_EVENT)
            abort_while_paused = self.context.wait_for_external_event(ABORT_EVENT)
            got = yield self.context.task_any([resume, abort_while_paused])
            if got == abort_while_paused:
                return _reason(abort_while_paused.result)
            self.status.message = f"resumed during {stage}"
            self.publish()
            # the bake does not restart after a pause, but it always waits a moment after a resume
            end = max(end, self.now + timedelta(seconds=1))


def _reason(data: Any) -> str:
    return str(event_data(data).get("reason", "aborted by an operator"))
