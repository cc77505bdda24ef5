"""Telemetry: structured lifecycle events, sent to Application Insights when it is configured.

``adapters.telemetry.configure`` turns on azure-monitor-opentelemetry when
APPLICATIONINSIGHTS_CONNECTION_STRING is set (in Azure, with the managed identity). ``emit``
writes one structured log record per lifecycle fact (stage transition, gate verdict, traffic change, rollback) on the
``mlops.events`` logger, with the model, version and run id as dimensions; ``run_facts`` says
which facts a run's status change holds (orchestrators send them once, not on every replay). The attribute
``microsoft.custom_event.name`` makes the Azure Monitor exporter send the record to the
``customEvents`` table rather than ``traces`` (azure-monitor-opentelemetry-exporter README,
"custom events"); without Application Insights it is a plain log line.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .runs import RunStatus

log = logging.getLogger("mlops.events")
# a dimension with one of these names would clash with the LogRecord's own attributes
_RESERVED = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


def emit(name: str, *, model: str, version: str | None = None, run_id: str | None = None, **dims: Any) -> None:
    """One lifecycle fact as a structured record (a custom event in Application Insights)."""
    # a dimension named like a LogRecord attribute ("message", "args") would make logging raise
    flat = {(f"{k}_" if k in _RESERVED else k): _scalar(v) for k, v in dims.items() if v is not None}
    fields = {"model": model, "version": version or "", "run_id": run_id or "", **flat}
    detail = "".join(f" {k}={v}" for k, v in flat.items())
    log.info("%s model=%s version=%s run=%s%s", name, model, version or "-", run_id or "-", detail,
             extra={"microsoft.custom_event.name": name, **fields})


def _scalar(value: Any) -> str | int | float | bool:
    # custom event dimensions are strings; JSON keeps dicts and lists readable by KQL's parse_json
    return value if isinstance(value, (str, int, float, bool)) else json.dumps(value, sort_keys=True, default=str)


# -- facts from a run's status -----------------------------------------------------------------
TERMINAL_STAGES = ("succeeded", "failed", "skipped")


@dataclass(frozen=True)
class Fact:
    """One lifecycle fact: a custom event name and its dimensions (beside model, version, run)."""

    name: str
    dims: dict[str, Any] = field(default_factory=dict)


def run_facts(before: RunStatus, after: RunStatus) -> list[Fact]:
    """What happened to a run between two status snapshots: stages started and ended, gate verdicts, the end.

    Pure, so an orchestrator can compute it on every replay and send it only once.
    """
    facts: list[Fact] = []
    seen = {s.name: s.state for s in before.stages}
    for stage in after.stages:
        was = seen.get(stage.name, "pending")
        if stage.state == was:
            continue
        if stage.state == "running":
            facts.append(Fact("StageStarted", {"kind": after.kind, "stage": stage.name}))
        elif stage.state in TERMINAL_STAGES and was not in TERMINAL_STAGES:
            facts.append(Fact("StageEnded", {"kind": after.kind, "stage": stage.name, "state": stage.state,
                                             "duration_seconds": _seconds(stage.started, stage.ended),
                                             "reason": stage.detail.get("reason")}))
    for gate in after.gates[len(before.gates):]:
        facts.append(Fact("GateVerdict", {"kind": after.kind, "gate": gate.get("name"), "metric": gate.get("metric"),
                                          "passed": gate.get("passed"), "value": gate.get("value"),
                                          "threshold": gate.get("threshold"),
                                          "champion_value": gate.get("champion_value"),
                                          "reason": gate.get("reason"),
                                          # a gate on a metric the evaluation skipped: not passed, not failed
                                          **({"skipped": True} if gate.get("skipped") else {})}))
    if after.verdict is not None and before.verdict is None:
        facts.append(Fact("RunFinished", {"kind": after.kind, "verdict": after.verdict, "summary": after.message}))
    return facts


def _seconds(started: str | None, ended: str | None) -> float | None:
    if not (started and ended):
        return None
    return round((datetime.fromisoformat(ended) - datetime.fromisoformat(started)).total_seconds(), 3)
