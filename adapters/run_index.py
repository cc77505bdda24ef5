"""The run index in the control store's Blob container: the blob I/O behind ``mlops.run_index.RunIndex``.

Each entry is written three times, as small blobs whose metadata holds the whole entry, so a
listing with ``include=metadata`` reads a page of entries with no download:

  runs/all/<day>/<key>              every run, newest first
  runs/model/<model>/<day>/<key>    one model's runs, newest first (``?model=`` lists only these)
  runs/id/<run id>                  the entry by run id (``GET /api/runs/{id}`` of a purged run)

``<day>`` and ``<key>`` are inverted times (``mlops.run_index``), so ascending names are newest
first. An entry is small (at most ~1 KB of metadata; Azure allows 8 KB per blob:
https://learn.microsoft.com/rest/api/storageservices/setting-and-retrieving-properties-and-metadata-for-blob-resources).
A page lists the scope (or, with ``to``, one day bucket after another) with the service's own markers
(https://learn.microsoft.com/rest/api/storageservices/list-blobs#remarks), and stops after
``SCAN_LIMIT`` entries with a cursor where it stopped.
"""

from __future__ import annotations

import base64
import json
import logging
import re
from typing import Any

from mlops.run_index import (
    RUNNING,
    SCAN_LIMIT,
    Cursor,
    RunEntry,
    RunPage,
    RunQuery,
    created_at,
    day_bucket,
    entry_key,
)

log = logging.getLogger("mlops.control")

RUNS = "runs/"
LIST_PAGE = 1000  # entries per listing call; Azure returns at most 5,000
_META = "entry"
_RUN_ID = re.compile(r"[a-z]+-[a-z0-9-]{1,100}")
PURGE_STATE = f"{RUNS}purge.json"  # the last retention purge: when, its cutoff, how many runs it purged


def _encode(entry: RunEntry) -> str:
    # metadata values must be ASCII header values: base64 of the compact JSON holds any message
    return base64.b64encode(json.dumps(entry.to_dict(), separators=(",", ":")).encode()).decode()


def _decode(meta: dict[str, str] | None) -> RunEntry | None:
    try:
        entry = RunEntry.from_dict(json.loads(base64.b64decode((meta or {})[_META])))
        created_at(entry)
        return entry
    except (KeyError, ValueError, TypeError) as exc:
        log.warning("run index entry skipped: metadata unreadable (%s)", exc)
        return None


def _scope(model: str | None) -> str:
    return f"{RUNS}model/{model}/" if model else f"{RUNS}all/"


class BlobRunIndex:
    """The run index in a Blob container (the control store's)."""

    container: Any

    def record_run(self, entry: RunEntry) -> None:
        """See RunIndex. Three overwrites; a crash between them is mended by the next write of the run."""
        created_at(entry)  # refuses an entry without a readable time before anything is written
        meta = {_META: _encode(entry)}
        body = json.dumps(entry.to_dict())
        name = f"{day_bucket(created_at(entry))}/{entry_key(entry)}"
        if entry.status == RUNNING:
            self._forget_earlier(entry)
        for blob in (f"{_scope(None)}{name}", f"{_scope(entry.model)}{name}", f"{RUNS}id/{entry.id}"):
            self.container.get_blob_client(blob).upload_blob(body, overwrite=True, metadata=meta)
        log.info("run indexed", extra={"model": entry.model, "run_id": entry.id, "status": entry.status})

    def _forget_earlier(self, entry: RunEntry) -> None:
        """A run id started again (Durable replaces a finished instance of the same id): its old entry goes."""
        from azure.core.exceptions import ResourceNotFoundError

        known = self.run_entry(entry.id)
        if known is None or known.created == entry.created:
            return
        name = f"{day_bucket(created_at(known))}/{entry_key(known)}"
        for blob in (f"{_scope(None)}{name}", f"{_scope(known.model)}{name}"):
            try:
                self.container.delete_blob(blob)
            except ResourceNotFoundError:
                pass  # a write that stopped half-way left it out

    def run_entry(self, run_id: str) -> RunEntry | None:
        """See RunIndex."""
        from azure.core.exceptions import ResourceNotFoundError

        if not _RUN_ID.fullmatch(run_id):  # never a name like "../audit": run ids are <kind>-<model>-<hash>
            return None
        try:
            body = self.container.get_blob_client(f"{RUNS}id/{run_id}").download_blob().readall()
        except ResourceNotFoundError:
            return None
        return RunEntry.from_dict(json.loads(body))

    def last_purge(self) -> dict[str, Any] | None:
        """See RunIndex."""
        from azure.core.exceptions import ResourceNotFoundError

        try:
            return dict(json.loads(self.container.get_blob_client(PURGE_STATE).download_blob().readall()))
        except ResourceNotFoundError:
            return None

    def record_purge(self, outcome: dict[str, Any]) -> None:
        """See RunIndex."""
        self.container.get_blob_client(PURGE_STATE).upload_blob(json.dumps(outcome), overwrite=True)

    def _buckets(self, scope: str) -> list[str]:
        return [p.name[len(scope):].rstrip("/") for p in self.container.walk_blobs(name_starts_with=scope,
                                                                                  delimiter="/")]

    def query_runs(self, query: RunQuery, cursor: Cursor | None = None) -> RunPage:
        """See RunIndex: day buckets newest first, each listed from the cursor's marker on.

        ValueError if the storage service refuses the cursor's marker (a continuation token made up by hand).
        """
        from azure.core.exceptions import HttpResponseError

        try:
            return self._query(query, cursor)
        except HttpResponseError as exc:
            if cursor is None or cursor.marker is None:
                raise
            raise ValueError("continuation token is not valid") from exc

    def _query(self, query: RunQuery, cursor: Cursor | None) -> RunPage:
        scope = _scope(query.model)
        # names sort newest first across days, so without ``to`` one listing of the scope serves; with it, the
        # day buckets from ``to``'s day on are listed one by one (a listing cannot start at a given name)
        segments = [""] if query.created_to is None else query.buckets(self._buckets(scope))
        buckets = [b for b in segments if cursor is None or b >= cursor.bucket]
        page = RunPage()
        scanned = 0
        # every entry of the scope matches: list exactly a page (a listing's cost is what it returns)
        size = query.top if (query.kind, query.statuses, query.created_from, query.created_to) == (None,) * 4 \
            else LIST_PAGE
        for bucket in buckets:
            at = cursor if cursor is not None and cursor.bucket == bucket else Cursor(bucket)
            listing = self.container.list_blobs(name_starts_with=f"{scope}{bucket}/" if bucket else scope,
                                                include=["metadata"],
                                                results_per_page=size).by_page(continuation_token=at.marker)
            marker = at.marker
            skip = at.skip
            for listed in listing:
                items = list(listed)
                for i in range(skip, len(items)):
                    entry = _decode(items[i].metadata)
                    scanned += 1
                    if entry is None:
                        continue
                    if query.created_from is not None and created_at(entry) < query.created_from:
                        return self._done(page, cursor)  # newest first: everything further is older
                    if query.matches(entry):
                        page.entries.append(entry)
                    if len(page.entries) == query.top or scanned >= SCAN_LIMIT:
                        page.next = self._after(buckets, bucket, marker, i + 1, len(items),
                                                listing.continuation_token)
                        return page if page.next is not None else self._done(page, cursor)
                marker, skip = listing.continuation_token, 0
                if marker is None:
                    break
        return self._done(page, cursor)

    @staticmethod
    def _after(buckets: list[str], bucket: str, marker: str | None, position: int, size: int,
               next_marker: str | None) -> Cursor | None:
        """The cursor just after ``position`` of the listing page ``marker`` starts; None at the very end."""
        if position < size:
            return Cursor(bucket, marker, position)
        if next_marker:
            return Cursor(bucket, next_marker, 0)
        later = [b for b in buckets if b > bucket]
        return Cursor(later[0]) if later else None

    @staticmethod
    def _done(page: RunPage, cursor: Cursor | None) -> RunPage:
        page.next = None
        page.total = len(page.entries) if cursor is None else None
        return page
