"""The control store in a Blob container (Azurite locally, the app's Storage account in Azure).

What it stores and why is in ``mlops.control``; this is the blob I/O behind the ``ControlStore`` port.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from mlops.control import PendingState, merge, take
from mlops.runs import Request

log = logging.getLogger("mlops.control")


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
