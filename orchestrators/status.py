"""A run's status, shown as the orchestration's custom status and sent once as telemetry.

Orchestrators replay from the start on every episode, so a log line written in one would be
written again at each replay. The reporter computes the facts of each status change on every
replay (a pure diff, ``mlops.telemetry.run_facts``), and sends them only when
``context.is_replaying`` is false: the documented way to log from an orchestrator
(https://learn.microsoft.com/azure/azure-functions/durable/durable-functions-diagnostics#app-logging).
"""

from __future__ import annotations

import azure.durable_functions as df

from mlops import telemetry
from mlops.runs import RunStatus


class StatusReporter:
    """Publishes ``status`` as custom status; each stage change, gate verdict and verdict becomes one event."""

    def __init__(self, context: df.DurableOrchestrationContext, status: RunStatus) -> None:
        self._context = context
        self.status = status
        self._sent = RunStatus.new(status.kind, status.model, [])

    def publish(self) -> None:
        """Show the status now, and send the facts since the last call (unless this is a replay)."""
        shown = self.status.to_dict()  # a deep copy (dataclasses.asdict): later changes to the status stay out
        self._context.set_custom_status(shown)
        facts = telemetry.run_facts(self._sent, self.status)
        self._sent = RunStatus.from_dict(shown)  # the snapshot shares the copy: neither is changed afterwards
        if self._context.is_replaying:
            return
        for fact in facts:
            telemetry.emit(fact.name, model=self.status.model, version=self.status.version,
                           run_id=self._context.instance_id, **fact.dims)
