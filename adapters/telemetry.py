"""Telemetry export: the ``mlops`` loggers to Application Insights, when a connection string is set.

What is logged is ``mlops.telemetry``'s business; this module only connects it to Azure Monitor.
"""

from __future__ import annotations

import logging

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
    # The lifecycle's facts are log records (customEvents): never sampled. Traces are kept whole as well, and
    # logs are not dropped with sampled-out traces (azure-monitor-opentelemetry's sampling_ratio and
    # enable_trace_based_sampling_for_logs).
    configure_azure_monitor(connection_string=connection_string, logger_name="mlops", sampling_ratio=1.0,
                            enable_trace_based_sampling_for_logs=False)
    _configured = True
    return True
