"""Events out: the app's own events, published to an Event Grid custom topic.

Locally the topic is devhost's (a key); in Azure the managed identity sends (the role
``EventGrid Data Sender`` on the topic, see infra/).
"""

from __future__ import annotations

from typing import Any

from mlops.events import APP_DRIFT_EVENT_TYPE
from mlops.ports import ModelVersion

from .identity import managed_identity


class TopicPublisher:
    """Sends ModelRegistered (in Azure ML's shape), the app's drift events and its notices to one custom topic."""

    def __init__(self, endpoint: str, key: str | None = None) -> None:
        from azure.eventgrid import EventGridPublisherClient

        self.client = EventGridPublisherClient(endpoint, _credential(key))

    def model_registered(self, mv: ModelVersion) -> None:
        """Send the event in Azure ML's shape (modelName, modelVersion, modelTags, modelProperties)."""
        from azure.eventgrid import EventGridEvent, SystemEventNames

        self.client.send([EventGridEvent(
            subject=f"models/{mv.name}:{mv.version}",
            event_type=SystemEventNames.MachineLearningServicesModelRegisteredEventName.value,
            data={"modelName": mv.name, "modelVersion": mv.version, "modelTags": mv.tags, "modelProperties": {}},
            data_version="2",
        )])

    def notice(self, event_type: str, subject: str, data: dict[str, Any]) -> None:
        """Send a notice (``mlops.notices``) as an event of its own type."""
        from azure.eventgrid import EventGridEvent

        self.client.send([EventGridEvent(subject=subject, event_type=event_type, data=data, data_version="1.0")])

    def drift_detected(self, drift: dict[str, Any]) -> None:
        """Send the monitor's drift finding (``mlops.monitoring.check_drift``) as the app's drift event."""
        from azure.eventgrid import EventGridEvent

        self.client.send([EventGridEvent(subject=f"models/{drift['model']}:{drift['version']}",
                                         event_type=APP_DRIFT_EVENT_TYPE, data=drift, data_version="1.0")])


def _credential(key: str | None) -> Any:
    if key:
        from azure.core.credentials import AzureKeyCredential

        return AzureKeyCredential(key)
    return managed_identity()
