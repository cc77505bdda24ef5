"""App settings: the one place that reads the environment.

Azure Functions passes App Settings (and locally ``local.settings.json`` ``Values``) as
environment variables. ``load_settings`` parses them once; a missing or bad setting raises
SettingError naming it, so the app fails at start with the name of what to fix.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlparse

from .errors import SettingError


@dataclass(frozen=True)
class SettingSpec:
    """One setting the app reads."""

    name: str
    required: bool
    default: str | None
    description: str
    local_only: bool = False


SETTINGS: tuple[SettingSpec, ...] = (
    SettingSpec("AzureWebJobsStorage", False, None,
                "Storage connection string (locally Azurite). In Azure, identity-based: set "
                "AzureWebJobsStorage__accountName instead."),
    SettingSpec("AzureWebJobsStorage__accountName", False, None, "Storage account name for identity-based access."),
    SettingSpec("MLOPS_PLATFORM", False, "local", "ML platform adapter: local (MLflow + gateway) or azureml."),
    SettingSpec("MLOPS_LANDING_CONTAINER", False, "landing", "Blob container where training data lands."),
    SettingSpec("MLOPS_POLICY_DIR", False, "policies", "Folder of per-model policy files (<model>.yaml)."),
    SettingSpec("MLOPS_STATE_DIR", False, ".devhost/mlops", "Local platform state (MLflow, jobs).", local_only=True),
    SettingSpec("MLOPS_EVENTGRID_TOPIC_ENDPOINT", False, None,
                "Custom topic for the app's own events (ModelRegistered locally, drift)."),
    SettingSpec("MLOPS_EVENTGRID_TOPIC_KEY", False, None,
                "Custom topic key; local only, Azure uses the managed identity.", local_only=True),
    SettingSpec("MLOPS_GATEWAY_URL", False, "http://127.0.0.1:7081", "Local scoring gateway.", local_only=True),
    SettingSpec("MLOPS_GATEWAY_KEY", False, None, "Local scoring gateway admin key.", local_only=True),
    SettingSpec("MLFLOW_TRACKING_URI", False, None, "MLflow tracking URI (default: SQLite in the state dir)."),
    SettingSpec("MLOPS_OPERATOR_ROLE", False, "mlops.operator", "App role that may change things."),
    SettingSpec("MLOPS_MONITOR_SCHEDULE", False, "0 */5 * * * *", "NCRONTAB schedule of the drift monitor."),
    SettingSpec("AZUREML_SUBSCRIPTION_ID", False, None, "Azure ML workspace subscription (azureml platform)."),
    SettingSpec("AZUREML_RESOURCE_GROUP", False, None, "Azure ML workspace resource group (azureml platform)."),
    SettingSpec("AZUREML_WORKSPACE", False, None, "Azure ML workspace name (azureml platform)."),
    SettingSpec("AZUREML_COMPUTE", False, None, "Compute cluster for training jobs (azureml platform)."),
    SettingSpec("AZUREML_ENVIRONMENT", False, None, "Environment for training jobs (azureml platform)."),
    SettingSpec("APPLICATIONINSIGHTS_CONNECTION_STRING", False, None, "Telemetry to Application Insights."),
)

_AZUREML_REQUIRED = ("AZUREML_SUBSCRIPTION_ID", "AZUREML_RESOURCE_GROUP", "AZUREML_WORKSPACE", "AZUREML_COMPUTE",
                     "AZUREML_ENVIRONMENT")


@dataclass(frozen=True)
class Settings:
    """Parsed settings."""

    platform: str
    landing_container: str
    policy_dir: str
    state_dir: str
    storage_connection_string: str | None
    storage_account_name: str | None
    eventgrid_topic_endpoint: str | None
    eventgrid_topic_key: str | None
    gateway_url: str
    gateway_key: str | None
    mlflow_tracking_uri: str | None
    operator_role: str
    monitor_schedule: str
    azureml_subscription_id: str | None = None
    azureml_resource_group: str | None = None
    azureml_workspace: str | None = None
    azureml_compute: str | None = None
    azureml_environment: str | None = None
    appinsights_connection_string: str | None = None


def _url(name: str, value: str | None) -> str | None:
    if value is None:
        return None
    parsed = urlparse(value)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise SettingError(name, f"must be an http(s) URL, got {value!r}")
    return value


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Parse every setting; SettingError names the first one that is missing or bad."""
    source = os.environ if env is None else env
    values = {spec.name: (source.get(spec.name) or spec.default) for spec in SETTINGS}
    platform = (values["MLOPS_PLATFORM"] or "local").lower()
    if platform not in ("local", "azureml"):
        raise SettingError("MLOPS_PLATFORM", f"must be 'local' or 'azureml', got {platform!r}")
    conn = values["AzureWebJobsStorage"]
    account = values["AzureWebJobsStorage__accountName"]
    if not conn and not account:
        raise SettingError("AzureWebJobsStorage", "missing: set a connection string, or "
                                                  "AzureWebJobsStorage__accountName for identity-based access")
    if platform == "azureml":
        for name in _AZUREML_REQUIRED:
            if not values[name]:
                raise SettingError(name, "missing: required when MLOPS_PLATFORM=azureml")
    schedule = values["MLOPS_MONITOR_SCHEDULE"] or ""
    if len(schedule.split()) != 6:
        raise SettingError("MLOPS_MONITOR_SCHEDULE", f"must be a 6-field NCRONTAB expression, got {schedule!r}")
    container = values["MLOPS_LANDING_CONTAINER"] or ""
    if not (3 <= len(container) <= 63) or not container.replace("-", "").isalnum() or container != container.lower():
        raise SettingError("MLOPS_LANDING_CONTAINER", f"not a valid container name: {container!r}")
    return Settings(
        platform=platform,
        landing_container=container,
        policy_dir=values["MLOPS_POLICY_DIR"] or "policies",
        state_dir=values["MLOPS_STATE_DIR"] or ".devhost/mlops",
        storage_connection_string=conn,
        storage_account_name=account,
        eventgrid_topic_endpoint=_url("MLOPS_EVENTGRID_TOPIC_ENDPOINT", values["MLOPS_EVENTGRID_TOPIC_ENDPOINT"]),
        eventgrid_topic_key=values["MLOPS_EVENTGRID_TOPIC_KEY"],
        gateway_url=_url("MLOPS_GATEWAY_URL", values["MLOPS_GATEWAY_URL"]) or "http://127.0.0.1:7081",
        gateway_key=values["MLOPS_GATEWAY_KEY"],
        mlflow_tracking_uri=values["MLFLOW_TRACKING_URI"],
        operator_role=values["MLOPS_OPERATOR_ROLE"] or "mlops.operator",
        monitor_schedule=schedule,
        azureml_subscription_id=values["AZUREML_SUBSCRIPTION_ID"],
        azureml_resource_group=values["AZUREML_RESOURCE_GROUP"],
        azureml_workspace=values["AZUREML_WORKSPACE"],
        azureml_compute=values["AZUREML_COMPUTE"],
        azureml_environment=values["AZUREML_ENVIRONMENT"],
        appinsights_connection_string=values["APPLICATIONINSIGHTS_CONNECTION_STRING"],
    )
