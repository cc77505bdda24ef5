"""The run index's one activity: the lifecycle writes a run's entry when it starts the run and when the run ends.

An activity, so the orchestrator stays deterministic (the write is I/O); the lifecycle passes the
whole entry, with the times from its own replay-safe clock.
"""

from __future__ import annotations

from typing import Any

import azure.durable_functions as df

from adapters import runtime
from adapters.errors import marks_transient
from mlops.run_index import RECORD_RUN, RunEntry

bp = df.Blueprint()


@bp.activity_trigger(input_name="entry", activity=RECORD_RUN)
@marks_transient
def record_run_activity(entry: dict[str, Any]) -> dict[str, Any]:
    """Write a run's entry in the run index; answers the entry written."""
    parsed = RunEntry.from_dict(entry)
    runtime.control().record_run(parsed)
    return parsed.to_dict()
