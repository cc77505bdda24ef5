"""App settings: the one place that reads the environment.

Azure Functions passes App Settings (locally, ``local.settings.json`` ``Values``) as environment
variables. ``load_settings`` parses them once; a missing or bad setting raises SettingError
naming it, so the app fails at start with the name of what to fix. An empty value counts as
unset (App Settings cannot tell the two apart). ``SETTINGS`` lists every setting the app reads;
infra is checked against it.
"""

from __future__ import annotations

import math
import os
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import urlparse

from mlops.errors import SettingError

from .judge import DEFAULT_API_VERSION, JudgeModel

Platform = Literal["local", "azureml"]
Scope = Literal["all", "local", "azureml"]


@dataclass(frozen=True)
class SettingSpec:
    """One setting the app reads; ``scope`` says on which platform it matters."""

    name: str
    required: bool
    default: str | None
    description: str
    scope: Scope = "all"
    alternatives: tuple[str, ...] = ()  # other names that satisfy a required setting

    @property
    def local_only(self) -> bool:
        """True for settings of the local stack only: infra in Azure does not set them."""
        return self.scope == "local"


_AZUREML = "required when MLOPS_PLATFORM=azureml"

SETTINGS: tuple[SettingSpec, ...] = (
    SettingSpec("AzureWebJobsStorage", True, None,
                "The app's storage: a connection string (Azurite locally), or, in Azure, the identity-based "
                "form AzureWebJobsStorage__accountName.", alternatives=("AzureWebJobsStorage__accountName",)),
    SettingSpec("AzureWebJobsStorage__accountName", False, None,
                "Storage account name for identity-based (managed identity) access."),
    SettingSpec("MLOPS_PLATFORM", False, "local", "ML platform adapter: local (MLflow + gateway) or azureml."),
    SettingSpec("MLOPS_LANDING_CONTAINER", False, "landing", "Blob container where training data lands."),
    SettingSpec("MLOPS_POLICY_DIR", False, "policies", "Folder of per-model policy files (<model>.yaml)."),
    SettingSpec("MLOPS_STATE_DIR", False, ".devhost/mlops", "Local platform state (MLflow, jobs).", "local"),
    SettingSpec("MLOPS_EVENTGRID_TOPIC_ENDPOINT", False, None,
                "Event Grid custom topic for the app's own events (drift; ModelRegistered locally)."),
    SettingSpec("MLOPS_EVENTGRID_TOPIC_KEY", False, None,
                "Custom topic access key, local only: in Azure the managed identity is used.", "local"),
    SettingSpec("MLOPS_GATEWAY_URL", False, "http://127.0.0.1:7081", "Local scoring gateway.", "local"),
    SettingSpec("MLOPS_GATEWAY_KEY", False, None, "Local scoring gateway admin key.", "local"),
    SettingSpec("MLFLOW_TRACKING_URI", False, None, "MLflow tracking URI (default: sqlite:///<state dir>/mlflow.db).",
                "local"),
    SettingSpec("MLOPS_OPERATOR_ROLE", False, "mlops.operator", "App role that may change things via the API."),
    SettingSpec("MLOPS_ALERT_ROLE", False, "mlops.alerts",
                "App role that may post Azure Monitor alerts to /api/alerts (an action group's secure webhook)."),
    SettingSpec("MLOPS_ALERT_KEY", False, None,
                "Secret a plain action-group webhook sends as ?code= to /api/alerts (the on_monitor_alert function "
                "key, from Key Vault); unset: only the alert role may post alerts."),
    SettingSpec("MLOPS_DEDUP_RETENTION_HOURS", False, "26",
                "How long a delivered event's dedup key is kept; at least Event Grid's 24-hour retry period."),
    SettingSpec("MLOPS_RUN_RETENTION_DAYS", False, "90",
                "Days a finished run's Durable history is kept; then the monitor purges it (its summary stays in "
                "the run index, its audit entries in the audit trail)."),
    SettingSpec("MLOPS_MONITOR_SCHEDULE", False, "0 */5 * * * *", "NCRONTAB (6 fields) schedule of the monitor."),
    SettingSpec("AZUREML_SUBSCRIPTION_ID", False, None, f"Azure ML workspace subscription id; {_AZUREML}.", "azureml"),
    SettingSpec("AZUREML_RESOURCE_GROUP", False, None, f"Azure ML workspace resource group; {_AZUREML}.", "azureml"),
    SettingSpec("AZUREML_WORKSPACE", False, None, f"Azure ML workspace name; {_AZUREML}.", "azureml"),
    SettingSpec("AZUREML_COMPUTE", False, None, f"Compute cluster for training jobs; {_AZUREML}.", "azureml"),
    SettingSpec("AZUREML_ENVIRONMENT", False, None, f"Environment for training jobs; {_AZUREML}.", "azureml"),
    SettingSpec("APPLICATIONINSIGHTS_CONNECTION_STRING", False, None, "Telemetry to Application Insights."),
    SettingSpec("MLOPS_NOTIFY_WEBHOOK_URL", False, None,
                "Incoming webhook (Slack, Teams) told when a run waits for approval, a rollback happens or drift is "
                "found; it holds a token: a Key Vault reference in Azure. Empty: events on the topic only."),
    SettingSpec("MLOPS_PUBLIC_URL", False, None,
                "The app's base URL, for the links in notices (default: https://$WEBSITE_HOSTNAME in Azure)."),
    SettingSpec("MLOPS_JUDGE_ENDPOINT", False, None,
                "Azure OpenAI resource (https://<resource>.openai.azure.com) whose deployment judges chat models' "
                "answers (evaluation.judge); with MLOPS_JUDGE_DEPLOYMENT, or neither: unset, judge metrics are "
                "skipped with the reason. The evaluation job signs in as its compute's identity (no key)."),
    SettingSpec("MLOPS_JUDGE_DEPLOYMENT", False, None,
                "The chat model deployment on MLOPS_JUDGE_ENDPOINT that judges (e.g. a gpt-4o deployment)."),
    SettingSpec("MLOPS_JUDGE_API_VERSION", False, DEFAULT_API_VERSION,
                "Azure OpenAI data-plane API version the judge is called with."),
)

_SPECS = {spec.name: spec for spec in SETTINGS}


@dataclass(frozen=True)
class Settings:
    """Parsed settings. Secrets are left out of ``repr`` so that logging the object leaks nothing."""

    platform: Platform
    landing_container: str
    policy_dir: str
    state_dir: str
    storage_connection_string: str | None = field(repr=False)
    storage_account_name: str | None
    eventgrid_topic_endpoint: str | None
    eventgrid_topic_key: str | None = field(repr=False)
    gateway_url: str
    gateway_key: str | None = field(repr=False)
    mlflow_tracking_uri: str | None
    operator_role: str
    monitor_schedule: str
    alert_role: str = "mlops.alerts"
    alert_key: str | None = field(default=None, repr=False)
    dedup_retention_hours: float = 26.0
    run_retention_days: int = 90
    azureml_subscription_id: str | None = None
    azureml_resource_group: str | None = None
    azureml_workspace: str | None = None
    azureml_compute: str | None = None
    azureml_environment: str | None = None
    appinsights_connection_string: str | None = field(default=None, repr=False)
    notify_webhook_url: str | None = field(default=None, repr=False)
    public_url: str | None = None
    judge: JudgeModel | None = None  # the Azure OpenAI deployment that judges chat models' answers


# --------------------------------------------------------------------------------------------- validators


def _secret_url(name: str, value: str | None) -> str | None:
    """An http(s) URL that may carry a token: the error never repeats it."""
    if value is None:
        return None
    parsed = urlparse(value)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise SettingError(name, "must be an http(s) URL (the value is not shown: it may hold a token)")
    return value


def _site(hostname: str | None) -> str | None:
    """The Function App's URL from the platform's WEBSITE_HOSTNAME (set by App Service in Azure)."""
    return f"https://{hostname.strip()}" if hostname and hostname.strip() else None


def _url(name: str, value: str | None) -> str | None:
    if value is None:
        return None
    parsed = urlparse(value)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise SettingError(name, f"must be an http(s) URL, got {value!r}")
    return value


# https://learn.microsoft.com/rest/api/storageservices/naming-and-referencing-containers--blobs--and-metadata
_CONTAINER = re.compile(r"^(?!.*--)[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")
_MLFLOW_SCHEMES = ("sqlite", "file", "http", "https", "postgresql", "mysql", "mssql", "databricks", "azureml")
# NCRONTAB: {second} {minute} {hour} {day} {month} {day-of-week}
# https://learn.microsoft.com/azure/azure-functions/functions-bindings-timer#ncrontab-expressions
_CRON_FIELDS = (("second", 0, 59), ("minute", 0, 59), ("hour", 0, 23), ("day", 1, 31), ("month", 1, 12),
                ("day-of-week", 0, 6))
# NCrontab (the timer trigger's parser) takes any prefix of a month's or a day's English name as its number
_CRON_NAMES = {
    "month": ("JANUARY", "FEBRUARY", "MARCH", "APRIL", "MAY", "JUNE", "JULY", "AUGUST", "SEPTEMBER", "OCTOBER",
              "NOVEMBER", "DECEMBER"),
    "day-of-week": ("SUNDAY", "MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY"),
}
_CRON_PART = re.compile(r"^(\*|(?P<lo>[0-9]+|[A-Za-z]+)(-(?P<hi>[0-9]+|[A-Za-z]+))?)(/(?P<step>\d+))?$")


def _cron_value(token: str, what: str, lo: int, hi: int) -> int | None:
    """The field value NCrontab reads ``token`` as, or None if it refuses it."""
    if token.isdigit():
        return int(token) if lo <= int(token) <= hi else None
    names = _CRON_NAMES.get(what, ())
    return next((i + lo for i, name in enumerate(names) if name.startswith(token.upper())), None)


def _schedule(value: str) -> str:
    fields = value.split()
    if len(fields) != 6:
        raise SettingError("MLOPS_MONITOR_SCHEDULE",
                           f"must be a 6-field NCRONTAB expression ({{second}} {{minute}} {{hour}} {{day}} {{month}} "
                           f"{{day-of-week}}), got {value!r}")
    for text, (what, lo, hi) in zip(fields, _CRON_FIELDS, strict=True):
        for part in text.split(","):
            m = _CRON_PART.match(part)
            found = [_cron_value(m[g], what, lo, hi) for g in ("lo", "hi") if m[g] is not None] if m else [None]
            values = [v for v in found if v is not None]
            ok = len(values) == len(found) and values == sorted(values)  # NCrontab refuses a backwards range
            if not ok or (m is not None and m["step"] is not None and int(m["step"]) == 0):
                raise SettingError("MLOPS_MONITOR_SCHEDULE", f"bad {what} field {text!r} in {value!r}")
    return value


def _tracking_uri(value: str | None, state_dir: str, platform: str) -> str | None:
    if value is None:
        # one default for the local platform: MLflow's SQLite store inside the state dir
        return f"sqlite:///{(Path(state_dir).resolve() / 'mlflow.db').as_posix()}" if platform == "local" else None
    scheme = urlparse(value).scheme
    if scheme and len(scheme) > 1 and scheme not in _MLFLOW_SCHEMES:  # len 1: a Windows drive letter
        raise SettingError("MLFLOW_TRACKING_URI", f"unsupported scheme {scheme!r} in {value!r} "
                                                  f"(use one of {', '.join(_MLFLOW_SCHEMES)} or a path)")
    return value


def _role(name: str, value: str) -> str:
    if any(ch.isspace() for ch in value):
        raise SettingError(name, f"an app role value has no spaces, got {value!r}")
    return value


def _alert_key(value: str | None) -> str | None:
    if value is not None and len(value) < 32:  # Azure's own function keys are 56 characters
        raise SettingError("MLOPS_ALERT_KEY", f"must be at least 32 characters, got {len(value)}")
    return value


def _retention_hours(value: str) -> float:
    try:
        hours = float(value)
    except ValueError:
        hours = math.nan
    if not math.isfinite(hours):
        raise SettingError("MLOPS_DEDUP_RETENTION_HOURS", f"must be a number of hours, got {value!r}")
    # https://learn.microsoft.com/azure/event-grid/delivery-and-retry#retry-schedule
    if hours < 24:
        raise SettingError("MLOPS_DEDUP_RETENTION_HOURS",
                           f"must be at least 24 (Event Grid retries a delivery for up to 24 hours), got {value!r}")
    return hours


def _retention_days(value: str) -> int:
    # at least one day: a shorter retention would purge the history of runs an operator is still reading
    if not value.strip().isdigit() or not 1 <= int(value) <= 3650:
        raise SettingError("MLOPS_RUN_RETENTION_DAYS", f"must be a whole number of days from 1 to 3650, got {value!r}")
    return int(value)


def _appinsights(value: str | None) -> str | None:
    if value is None:
        return None
    parts = dict(p.split("=", 1) for p in value.split(";") if "=" in p)
    if not parts.get("InstrumentationKey"):
        raise SettingError("APPLICATIONINSIGHTS_CONNECTION_STRING",
                           "must be a connection string with InstrumentationKey=...;IngestionEndpoint=...")
    return value


# an Azure OpenAI deployment name: letters, digits, dashes, underscores and dots, at most 64 characters; checked
# here so that a typo fails at start rather than as a 404 at the end of an evaluation job
_DEPLOYMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_API_VERSION = re.compile(r"^\d{4}-\d{2}-\d{2}(-preview)?$")


def _judge(values: Mapping[str, str | None]) -> JudgeModel | None:
    """The judge model, when both its endpoint and its deployment are set; one without the other names the other."""
    endpoint, deployment = values["MLOPS_JUDGE_ENDPOINT"], values["MLOPS_JUDGE_DEPLOYMENT"]
    if not endpoint and not deployment:
        return None
    if not endpoint or not deployment:
        given, missing = (("MLOPS_JUDGE_ENDPOINT", "MLOPS_JUDGE_DEPLOYMENT") if endpoint else
                          ("MLOPS_JUDGE_DEPLOYMENT", "MLOPS_JUDGE_ENDPOINT"))
        raise SettingError(missing, f"missing: {given} is set, and the judge needs both (or neither: no judge)")
    parsed = urlparse(endpoint)
    if parsed.scheme != "https" or not parsed.netloc or parsed.path.strip("/") or parsed.query:
        # the job sends an Entra ID token to it: https only
        raise SettingError("MLOPS_JUDGE_ENDPOINT", f"must be the resource's https URL "
                                                   f"(https://<resource>.openai.azure.com), got {endpoint!r}")
    if not _DEPLOYMENT.match(deployment):
        raise SettingError("MLOPS_JUDGE_DEPLOYMENT", f"not a deployment name (letters, digits, '-', '_', '.'; at "
                                                     f"most 64), got {deployment!r}")
    version = values["MLOPS_JUDGE_API_VERSION"] or DEFAULT_API_VERSION
    if not _API_VERSION.match(version):
        raise SettingError("MLOPS_JUDGE_API_VERSION", f"must look like {DEFAULT_API_VERSION} (or "
                                                      f"2025-01-01-preview), got {version!r}")
    return JudgeModel(endpoint.rstrip("/"), deployment, version)


def _azureml(values: Mapping[str, str | None]) -> None:
    for spec in SETTINGS:
        if spec.scope == "azureml" and not values[spec.name]:
            raise SettingError(spec.name, "missing: required when MLOPS_PLATFORM=azureml")
    try:
        uuid.UUID(str(values["AZUREML_SUBSCRIPTION_ID"]))
    except ValueError:
        raise SettingError("AZUREML_SUBSCRIPTION_ID",
                           f"must be a subscription id (a GUID), got {values['AZUREML_SUBSCRIPTION_ID']!r}") from None


# --------------------------------------------------------------------------------------------- loading


def load_settings(env: Mapping[str, str] = os.environ) -> Settings:
    """Parse every setting; SettingError names the first one that is missing or bad."""
    values: dict[str, str | None] = {spec.name: (env.get(spec.name) or "").strip() or spec.default
                                     for spec in SETTINGS}
    platform = (values["MLOPS_PLATFORM"] or "").lower()
    if platform not in ("local", "azureml"):
        raise SettingError("MLOPS_PLATFORM", f"must be 'local' or 'azureml', got {values['MLOPS_PLATFORM']!r}")
    storage = _SPECS["AzureWebJobsStorage"]
    if not any(values[n] for n in (storage.name, *storage.alternatives)):
        raise SettingError(storage.name, "missing: set a connection string, or AzureWebJobsStorage__accountName "
                                         "for identity-based access")
    if platform == "azureml":
        _azureml(values)
    container = values["MLOPS_LANDING_CONTAINER"] or ""
    if not _CONTAINER.match(container):
        raise SettingError("MLOPS_LANDING_CONTAINER", f"not a valid blob container name: {container!r} (3-63 "
                                                      "lowercase letters, digits and single dashes)")
    role = _role("MLOPS_OPERATOR_ROLE", values["MLOPS_OPERATOR_ROLE"] or "")
    state_dir = values["MLOPS_STATE_DIR"] or ".devhost/mlops"
    return Settings(
        platform="azureml" if platform == "azureml" else "local",
        landing_container=container,
        policy_dir=values["MLOPS_POLICY_DIR"] or "policies",
        state_dir=state_dir,
        storage_connection_string=values["AzureWebJobsStorage"],
        storage_account_name=values["AzureWebJobsStorage__accountName"],
        eventgrid_topic_endpoint=_url("MLOPS_EVENTGRID_TOPIC_ENDPOINT", values["MLOPS_EVENTGRID_TOPIC_ENDPOINT"]),
        eventgrid_topic_key=values["MLOPS_EVENTGRID_TOPIC_KEY"],
        gateway_url=_url("MLOPS_GATEWAY_URL", values["MLOPS_GATEWAY_URL"]) or "http://127.0.0.1:7081",
        gateway_key=values["MLOPS_GATEWAY_KEY"],
        mlflow_tracking_uri=_tracking_uri(values["MLFLOW_TRACKING_URI"], state_dir, platform),
        operator_role=role,
        monitor_schedule=_schedule(values["MLOPS_MONITOR_SCHEDULE"] or ""),
        alert_role=_role("MLOPS_ALERT_ROLE", values["MLOPS_ALERT_ROLE"] or ""),
        alert_key=_alert_key(values["MLOPS_ALERT_KEY"]),
        dedup_retention_hours=_retention_hours(values["MLOPS_DEDUP_RETENTION_HOURS"] or ""),
        run_retention_days=_retention_days(values["MLOPS_RUN_RETENTION_DAYS"] or ""),
        azureml_subscription_id=values["AZUREML_SUBSCRIPTION_ID"],
        azureml_resource_group=values["AZUREML_RESOURCE_GROUP"],
        azureml_workspace=values["AZUREML_WORKSPACE"],
        azureml_compute=values["AZUREML_COMPUTE"],
        azureml_environment=values["AZUREML_ENVIRONMENT"],
        appinsights_connection_string=_appinsights(values["APPLICATIONINSIGHTS_CONNECTION_STRING"]),
        notify_webhook_url=_secret_url("MLOPS_NOTIFY_WEBHOOK_URL", values["MLOPS_NOTIFY_WEBHOOK_URL"]),
        public_url=_url("MLOPS_PUBLIC_URL", values["MLOPS_PUBLIC_URL"] or _site(env.get("WEBSITE_HOSTNAME"))),
        judge=_judge(values),
    )
