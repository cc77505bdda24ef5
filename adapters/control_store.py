"""The control store in a Blob container (Azurite locally, the app's Storage account in Azure).

What it stores and why is in ``mlops.control``; this is the blob I/O behind the ``ControlStore`` port.
Each request is its own blob, ``requests/<model>/<sha256 of its dedup key>.json``, created
only if absent (``If-None-Match: *``): writers never contend, and a duplicate delivery finds
the blob there. Its metadata (kind, when it was seen, whether it was taken) comes back with
the listing, so a take reads one listing and one blob, and marks it taken with its ETag.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from mlops.control import DEDUP_RETENTION, StoredRequest, expired, next_request, waiting
from mlops.policy import is_model_name
from mlops.runs import Request

from .run_index import BlobRunIndex

log = logging.getLogger("mlops.control")

REQUESTS = "requests/"
# A take races only another take of the same model (an activity retried while the first still runs).
TAKE_DEADLINE_SECONDS = 30.0
# Forgetting is spread over takes, so one take after a quiet day stays short.
FORGET_PER_TAKE = 500


def _now() -> datetime:
    return datetime.now(UTC)


def _model_of(blob_name: str) -> str:
    return blob_name[len(REQUESTS):].rsplit("/", 1)[0]


class BlobControlStore(BlobRunIndex):
    """The control store in a Blob container (Azurite locally, the app's Storage account in Azure).

    The run index (``adapters.run_index``) lives in the same container, under ``runs/``.
    """

    def __init__(self, container_client: Any, retention: timedelta = DEDUP_RETENTION,
                 clock: Callable[[], datetime] = _now) -> None:
        self.container = container_client
        self.retention = retention
        self.clock = clock
        try:
            self.container.create_container()
        except Exception as exc:  # ResourceExistsError: the container is there already
            if "ContainerAlreadyExists" not in str(exc) and "already exists" not in str(exc).lower():
                raise

    # -- requests ----------------------------------------------------------------------------------
    def put_request(self, request: Request) -> bool:
        """See ControlStore."""
        from azure.core.exceptions import ResourceExistsError

        if not is_model_name(request.model):  # the triggers refuse such events; a name like "../audit" never lands
            raise ValueError(f"request.model: {request.model!r} is not a valid model name")
        key = hashlib.sha256(request.dedup_key.encode()).hexdigest()
        seen = self.clock().astimezone(UTC).isoformat()
        blob = self.container.get_blob_client(f"{REQUESTS}{request.model}/{key}.json")
        try:
            blob.upload_blob(json.dumps({"request": request.to_dict(), "seen_at": seen}), overwrite=False,
                             metadata={"kind": request.kind, "seen_at": seen, "taken": "false"})
            accepted = True
        except ResourceExistsError:
            accepted = False
        log.info("request %s", "queued" if accepted else "dropped as a duplicate",
                 extra={"model": request.model, "kind": request.kind, "dedup_key": request.dedup_key})
        return accepted

    def _entries(self, prefix: str) -> dict[str, tuple[StoredRequest, str]]:
        """Stored requests under ``prefix`` with their ETags; an entry that cannot be read is logged and skipped."""
        found: dict[str, tuple[StoredRequest, str]] = {}
        for item in self.container.list_blobs(name_starts_with=prefix, include=["metadata"]):
            meta = item.metadata or {}
            try:
                entry = StoredRequest(item.name, meta["kind"], datetime.fromisoformat(meta["seen_at"]),
                                      taken=meta.get("taken") == "true")
            except (KeyError, ValueError) as exc:
                log.warning("control store entry %s skipped: metadata %r unreadable (%s)", item.name, meta, exc)
                continue
            found[item.name] = (entry, item.etag)
        return found

    def _take_once(self, entries: dict[str, tuple[StoredRequest, str]]) -> Request | None:
        """Take the next request of ``entries``; ResourceModifiedError if another take got it first."""
        from azure.core import MatchConditions

        chosen = next_request(entry for entry, _ in entries.values())
        if chosen is None:
            return None
        blob = self.container.get_blob_client(chosen.name)
        etag = entries[chosen.name][1]
        body = json.loads(blob.download_blob(etag=etag, match_condition=MatchConditions.IfNotModified).readall())
        blob.set_blob_metadata({"kind": chosen.kind, "seen_at": chosen.seen_at.isoformat(), "taken": "true"},
                               etag=etag, match_condition=MatchConditions.IfNotModified)
        entries[chosen.name] = (StoredRequest(chosen.name, chosen.kind, chosen.seen_at, taken=True), etag)
        return Request.from_dict(body["request"])

    def take_request(self, model: str) -> Request | None:
        """See ControlStore. Also forgets this model's dedup keys older than the retention."""
        from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError

        deadline = time.monotonic() + TAKE_DEADLINE_SECONDS
        while True:
            entries = {name: value for name, value in self._entries(f"{REQUESTS}{model}/").items()
                       if _model_of(name) == model}  # not "a/b"'s requests when taking for "a"
            try:
                taken = self._take_once(entries)
                break
            except (ResourceModifiedError, ResourceNotFoundError) as exc:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"could not take a request of {model}: another take kept winning") from exc
                time.sleep(random.uniform(0.01, 0.1))  # jittered, so racing takes fall out of step
        self._forget(model, [entry for entry, _ in entries.values()])
        return taken

    def _forget(self, model: str, entries: list[StoredRequest]) -> None:
        from azure.core.exceptions import ResourceNotFoundError

        old = expired(entries, self.clock(), self.retention)[:FORGET_PER_TAKE]
        for entry in old:
            try:
                self.container.delete_blob(entry.name)
            except ResourceNotFoundError:
                pass  # another take forgot it first
        if old:
            log.info("forgot %d dedup keys older than %s", len(old), self.retention, extra={"model": model})

    def models_with_pending(self) -> list[str]:
        """See ControlStore."""
        by_model: dict[str, list[StoredRequest]] = {}
        for name, (entry, _) in self._entries(REQUESTS).items():
            by_model.setdefault(_model_of(name), []).append(entry)
        return sorted(model for model, entries in by_model.items() if waiting(entries))

    # -- logs --------------------------------------------------------------------------------------
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
