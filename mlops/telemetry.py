"""Telemetry: structured lifecycle events, sent to Application Insights when it is configured.

``configure`` turns on azure-monitor-opentelemetry when APPLICATIONINSIGHTS_CONNECTION_STRING is
set (in Azure, with the managed identity). ``emit`` writes one structured log record per
lifecycle fact (stage transition, gate verdict, traffic change, rollback) on the
``mlops.events`` logger, with the model, version and run id as dimensions. The attribute
``microsoft.custom_event.name`` makes the Azure Monitor exporter send the record to the
``customEvents`` table rather than ``traces`` (azure-monitor-opentelemetry-exporter README,
"custom events"); without Application Insights it is a plain log line.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger("mlops.events")
_configured = False


def configure(connection_string: str | None) -> bool:
    """Send logs and traces to Application Insights once per process; False when not configured."""
    global _configured
    if _configured or not connection_string:
        return _configured
    try:
        from azure.monitor.opentelemetry import configure_azure_monitor
    except ImportError:
        logging.getLogger("mlops.telemetry").warning("azure-monitor-opentelemetry is not installed: no telemetry")
        return False
    configure_azure_monitor(connection_string=connection_string, logger_name="mlops")
    _configured = True
    return True


def emit(name: str, *, model: str, version: str | None = None, run_id: str | None = None, **dims: Any) -> None:
    """One lifecycle fact as a structured record (a custom event in Application Insights)."""
    fields = {"model": model, "version": version or "", "run_id": run_id or "",
              **{k: v if isinstance(v, (str, int, float, bool)) else str(v) for k, v in dims.items()}}
    log.info("%s model=%s version=%s run=%s", name, model, version or "-", run_id or "-",
             extra={"microsoft.custom_event.name": name, **fields})
