"""The control store: pending lifecycle requests per model, and the incident log.

Why a store outside Durable: a model has at most one lifecycle action in flight, and events
that arrive meanwhile must be queued or coalesced, never lost. Each trigger merges its
request into ``pending/<model>.json`` (optimistic concurrency on the blob's ETag) and then
makes sure the model's singleton lifecycle orchestration runs; the orchestration takes
requests one at a time. A duplicate delivery (same dedup key) is dropped. A burst of
requests of one kind coalesces to the newest, so 20 files give one run now and at most
one after it. The timer-triggered monitor restarts a lifecycle for any model that still
has pending requests (a request written just as its lifecycle finished).

Priority when several kinds wait: rollback, then release, then retrain.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from .runs import RELEASE, RETRAIN, ROLLBACK, Request

log = logging.getLogger("mlops.control")

PRIORITY = (ROLLBACK, RELEASE, RETRAIN)
SEEN_LIMIT = 500


@dataclass
class PendingState:
    """What waits for one model: at most one request per kind, and the dedup keys already seen."""

    pending: dict[str, dict[str, Any]] = field(default_factory=dict)
    seen: list[str] = field(default_factory=list)

    @classmethod
    def from_json(cls, raw: bytes | str | None) -> PendingState:
        """Parse the stored document (empty when absent)."""
        if not raw:
            return cls()
        data = json.loads(raw)
        return cls(pending=dict(data.get("pending", {})), seen=list(data.get("seen", [])))

    def to_json(self) -> str:
        """Serialise for storage."""
        return json.dumps({"pending": self.pending, "seen": self.seen[-SEEN_LIMIT:]})


def merge(state: PendingState, request: Request) -> bool:
    """Add a request; False if its dedup key was seen already (a duplicate delivery)."""
    if request.dedup_key in state.seen:
        return False
    state.seen.append(request.dedup_key)
    # Newest wins within a kind: the latest data, the latest registration, one rollback.
    state.pending[request.kind] = request.to_dict()
    return True


def take(state: PendingState) -> Request | None:
    """Remove and return the most urgent pending request."""
    for kind in PRIORITY:
        if kind in state.pending:
            return Request.from_dict(state.pending.pop(kind))
    return None


class ControlStore(Protocol):
    """Where pending requests and incidents live."""

    def put_request(self, request: Request) -> bool:
        """Merge a request into the model's pending state; False for a duplicate."""
        ...

    def take_request(self, model: str) -> Request | None:
        """Take the most urgent pending request of a model."""
        ...

    def models_with_pending(self) -> list[str]:
        """Models that have requests waiting."""
        ...

    def record_incident(self, incident: dict[str, Any]) -> None:
        """Append an incident (rollback, alert) to the model's log."""
        ...

    def incidents(self, model: str, limit: int = 50) -> list[dict[str, Any]]:
        """The newest incidents of a model, newest first."""
        ...

    def record_audit(self, entry: dict[str, Any]) -> None:
        """Append an operator action (who, what, when, why) to the audit trail."""
        ...

    def audit(self, limit: int = 100) -> list[dict[str, Any]]:
        """The newest audit entries, newest first."""
        ...


class BlobControlStore:
    """The control store in a Blob container (Azurite locally, the app's Storage account in Azure)."""

    def __init__(self, container_client: Any) -> None:
        self.container = container_client
        try:
            self.container.create_container()
        except Exception as exc:  # ResourceExistsError: the container is there already
            if "ContainerAlreadyExists" not in str(exc) and "already exists" not in str(exc).lower():
                raise

    def _update(self, blob_name: str, change: Any) -> Any:
        """Read-modify-write with the blob's ETag; retried when another writer got there first."""
        from azure.core import MatchConditions
        from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError

        blob = self.container.get_blob_client(blob_name)
        for attempt in range(20):
            try:
                download = blob.download_blob()
                raw, etag = download.readall(), download.properties.etag
            except ResourceNotFoundError:
                raw, etag = None, None
            state = PendingState.from_json(raw)
            result = change(state)
            try:
                if etag is None:
                    blob.upload_blob(state.to_json(), overwrite=False)
                else:
                    blob.upload_blob(state.to_json(), overwrite=True, etag=etag,
                                     match_condition=MatchConditions.IfNotModified)
                return result
            except (ResourceModifiedError, ResourceExistsError):
                time.sleep(0.01 * (attempt + 1))
        raise RuntimeError(f"could not update {blob_name}: too many concurrent writers")

    def put_request(self, request: Request) -> bool:
        """See ControlStore."""
        accepted = self._update(f"pending/{request.model}.json", lambda s: merge(s, request))
        log.info("request %s", "queued" if accepted else "dropped as a duplicate",
                 extra={"model": request.model, "kind": request.kind, "dedup_key": request.dedup_key})
        return bool(accepted)

    def take_request(self, model: str) -> Request | None:
        """See ControlStore."""
        result = self._update(f"pending/{model}.json", take)
        return result if isinstance(result, Request) else None

    def models_with_pending(self) -> list[str]:
        """See ControlStore."""
        models = []
        for item in self.container.list_blobs(name_starts_with="pending/"):
            raw = self.container.get_blob_client(item.name).download_blob().readall()
            if PendingState.from_json(raw).pending:
                models.append(item.name[len("pending/"):-len(".json")])
        return models

    def record_incident(self, incident: dict[str, Any]) -> None:
        """See ControlStore."""
        name = f"incidents/{incident['model']}/{incident['at'].replace(':', '')}-{incident.get('run_id', '')}.json"
        self.container.get_blob_client(name).upload_blob(json.dumps(incident), overwrite=True)

    def incidents(self, model: str, limit: int = 50) -> list[dict[str, Any]]:
        """See ControlStore."""
        names = sorted((b.name for b in self.container.list_blobs(name_starts_with=f"incidents/{model}/")),
                       reverse=True)[:limit]
        return [json.loads(self.container.get_blob_client(n).download_blob().readall()) for n in names]

    def record_audit(self, entry: dict[str, Any]) -> None:
        """See ControlStore."""
        name = f"audit/{entry['when'][:10]}/{entry['when'].replace(':', '')}-{entry['id']}.json"
        self.container.get_blob_client(name).upload_blob(json.dumps(entry), overwrite=False)

    def audit(self, limit: int = 100) -> list[dict[str, Any]]:
        """See ControlStore."""
        names = sorted((b.name for b in self.container.list_blobs(name_starts_with="audit/")), reverse=True)[:limit]
        return [json.loads(self.container.get_blob_client(n).download_blob().readall()) for n in names]
