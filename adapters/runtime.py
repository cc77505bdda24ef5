"""The app's shared objects, built once per process from settings: settings, platform, control store."""

from __future__ import annotations

import functools
import logging
from datetime import timedelta

from mlops.control import ControlStore
from mlops.feedback import FeedbackStore
from mlops.policy import Policy
from mlops.ports import Landing, Platform

from .control_store import BlobControlStore
from .eventgrid import TopicPublisher
from .feedback_store import BlobFeedbackStore
from .identity import managed_identity
from .landing import BlobLanding
from .notify import Notifier
from .policies import load_policy, policy_models
from .settings import Settings, load_settings

log = logging.getLogger("mlops.runtime")

CONTROL_CONTAINER = "mlops-control"


@functools.cache
def settings() -> Settings:
    """Settings, parsed once; a missing or bad one raises SettingError naming it. Turns on telemetry."""
    parsed = load_settings()
    from . import telemetry

    telemetry.configure(parsed.appinsights_connection_string)
    return parsed


def blob_service():  # type: ignore[no-untyped-def]
    """A BlobServiceClient for the app's storage: a connection string locally, managed identity in Azure."""
    from azure.storage.blob import BlobServiceClient

    s = settings()
    if s.storage_connection_string:
        return BlobServiceClient.from_connection_string(s.storage_connection_string)
    return BlobServiceClient(f"https://{s.storage_account_name}.blob.core.windows.net",
                             credential=managed_identity())


def policy(model: str) -> Policy:
    """The model's policy from the policy folder (MLOPS_POLICY_DIR), validated."""
    return load_policy(model, settings().policy_dir)


def models() -> list[str]:
    """Every model with a policy file, sorted."""
    return policy_models(settings().policy_dir)


@functools.cache
def platform() -> Platform:
    """The platform chosen by MLOPS_PLATFORM."""
    s = settings()
    if s.platform == "azureml":
        from .azureml import AzureMLPlatform

        return AzureMLPlatform.from_settings(s)  # type: ignore[no-any-return]
    from .local import LocalPlatform

    return LocalPlatform.from_settings(s, blob_service())  # type: ignore[no-any-return]


@functools.cache
def notifier() -> Notifier:
    """Notices to the app's topic (if MLOPS_EVENTGRID_TOPIC_ENDPOINT is set) and MLOPS_NOTIFY_WEBHOOK_URL."""
    s = settings()
    publisher = TopicPublisher(s.eventgrid_topic_endpoint, s.eventgrid_topic_key) if s.eventgrid_topic_endpoint \
        else None
    return Notifier(publisher, s.notify_webhook_url, s.public_url)


@functools.cache
def control() -> ControlStore:
    """The control store in the app's storage account; dedup keys kept MLOPS_DEDUP_RETENTION_HOURS."""
    return BlobControlStore(blob_service().get_container_client(CONTROL_CONTAINER),
                            retention=timedelta(hours=settings().dedup_retention_hours))


@functools.cache
def feedback() -> FeedbackStore:
    """Ground truth and performance figures (``mlops.feedback``), in the control container."""
    return BlobFeedbackStore(blob_service().get_container_client(CONTROL_CONTAINER))


@functools.cache
def landing() -> Landing:
    """The landing container (MLOPS_LANDING_CONTAINER) in the app's storage account."""
    return BlobLanding(blob_service().get_container_client(settings().landing_container))


@functools.cache
def landing_url() -> str:
    """The landing container's URL: operator-supplied data must be a blob under it."""
    return str(blob_service().get_container_client(settings().landing_container).url)
