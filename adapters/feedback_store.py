"""The feedback store in the control container: ground-truth labels, refused feedback files, performance figures.

What it keeps and why is in ``mlops.feedback``; this is the blob I/O behind the ``FeedbackStore`` port.

* ``labels/<model>/<sha256 of url and eTag>.json``: one per feedback file version, created only if absent, so a
  redelivered BlobCreated finds it there. Its metadata (when it arrived, kept or refused, how many labels, the
  reason) comes back with the listing: the monitor reads only the files of its window, the API only the listing.
  Entries older than ``LABEL_RETENTION`` are deleted when the model's next file arrives.
* ``performance/<model>/<day>.jsonl`` and ``drift/<model>/<day>.jsonl``: the monitor's figures, one JSON line per
  tick appended to the day's append blob (a tick writes one small block, whatever the history), for
  ``FIGURE_DAYS`` days. A ``<series>/<model>.json`` written by an earlier version is read as the oldest part.
"""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote, unquote

from mlops.feedback import FIGURE_DAYS, FIGURE_SERIES, FigureSeries, LabelBatch

log = logging.getLogger("mlops.feedback")

LABELS = "labels/"
LABEL_RETENTION = timedelta(days=30)  # policy: monitoring.performance.window_hours is at most 720
MAX_FILES_READ = 500  # label files one window reads at most (the newest)
FORGET_PER_FILE = 200


class BlobFeedbackStore:
    """Implements ``mlops.feedback.FeedbackStore`` in a Blob container (the control container)."""

    def __init__(self, container_client: Any) -> None:
        from azure.core.exceptions import ResourceExistsError

        self.container = container_client
        try:
            self.container.create_container()
        except ResourceExistsError:
            pass  # the control store made it, or an earlier start did

    # -- labels ------------------------------------------------------------------------------------
    def _name(self, model: str, url: str, etag: str) -> str:
        return f"{LABELS}{model}/{hashlib.sha256(f'{url}|{etag}'.encode()).hexdigest()}.json"

    def _put(self, name: str, body: dict[str, Any], metadata: dict[str, str]) -> bool:
        from azure.core.exceptions import ResourceExistsError

        try:
            self.container.get_blob_client(name).upload_blob(json.dumps(body), overwrite=False, metadata=metadata)
        except ResourceExistsError:
            return False
        return True

    def record_labels(self, batch: LabelBatch) -> bool:
        """See FeedbackStore."""
        meta = {"received_at": batch.received_at, "status": "kept", "labels": str(len(batch.labels)),
                "source": quote(batch.source)}
        kept = self._put(self._name(batch.model, batch.url, batch.etag), batch.to_dict(), meta)
        if kept:
            self._forget(batch.model, datetime.fromisoformat(batch.received_at) - LABEL_RETENTION)
        return kept

    def record_refusal(self, model: str, source: str, url: str, etag: str, reason: str, at: str) -> None:
        """See FeedbackStore."""
        meta = {"received_at": at, "status": "refused", "labels": "0", "source": quote(source),
                "reason": quote(reason[:1000])}
        self._put(self._name(model, url, etag), {"model": model, "source": source, "url": url, "etag": etag,
                                                 "received_at": at, "refused": reason}, meta)

    def _listing(self, model: str) -> list[tuple[str, dict[str, str]]]:
        """(name, metadata) of the model's feedback files, oldest first; unreadable metadata is skipped."""
        found = []
        for item in self.container.list_blobs(name_starts_with=f"{LABELS}{model}/", include=["metadata"]):
            meta = dict(item.metadata or {})
            try:
                datetime.fromisoformat(meta["received_at"])
            except (KeyError, ValueError):
                log.warning("feedback entry %s skipped: metadata %r unreadable", item.name, meta)
                continue
            found.append((str(item.name), meta))
        return sorted(found, key=lambda entry: (datetime.fromisoformat(entry[1]["received_at"]), entry[0]))

    def labels(self, model: str, since: str, until: str) -> dict[str, Any]:
        """See FeedbackStore."""
        start, end = datetime.fromisoformat(since), datetime.fromisoformat(until)
        chosen = [name for name, meta in self._listing(model) if meta.get("status") == "kept"
                  and start <= datetime.fromisoformat(meta["received_at"]) <= end][-MAX_FILES_READ:]
        merged: dict[str, Any] = {}
        for name in chosen:
            body = json.loads(self.container.get_blob_client(name).download_blob().readall())
            merged.update(body.get("labels") or {})
        return merged

    def files(self, model: str, limit: int = 20) -> list[dict[str, Any]]:
        """See FeedbackStore."""
        out = []
        for _, meta in reversed(self._listing(model)[-limit:]):
            entry: dict[str, Any] = {"source": unquote(meta.get("source", "")), "received_at": meta["received_at"],
                                     "status": meta.get("status", ""), "labels": int(meta.get("labels") or 0)}
            if meta.get("reason"):
                entry["reason"] = unquote(meta["reason"])
            out.append(entry)
        return out

    def _forget(self, model: str, before: datetime) -> None:
        from azure.core.exceptions import ResourceNotFoundError

        old = [name for name, meta in self._listing(model)
               if datetime.fromisoformat(meta["received_at"]) < before][:FORGET_PER_FILE]
        for name in old:
            try:
                self.container.delete_blob(name)
            except ResourceNotFoundError:
                pass  # another writer forgot it first
        if old:
            log.info("forgot %d feedback files older than %s", len(old), LABEL_RETENTION, extra={"model": model})

    # -- the monitor's figures: <series>/<model>/<day>.jsonl -----------------------------------------------
    @staticmethod
    def _series_prefix(model: str, series: FigureSeries) -> str:
        if series not in FIGURE_SERIES:
            raise ValueError(f"no figure series {series!r}: one of {', '.join(FIGURE_SERIES)}")
        return f"{series}/{model}/"

    def record_figure(self, model: str, figure: dict[str, Any], series: FigureSeries = "performance") -> None:
        """See FeedbackStore: one line appended to the day's append blob; a new day forgets the days past
        ``FIGURE_DAYS``. Writers do not race: each append is atomic, and readers order lines by ``at``."""
        from azure.core import MatchConditions
        from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError

        day = str(figure["at"])[:10]
        blob = self.container.get_blob_client(f"{self._series_prefix(model, series)}{day}.jsonl")
        line = (json.dumps(figure, separators=(",", ":")) + "\n").encode()
        try:
            blob.append_block(line)
            return
        except ResourceNotFoundError:
            pass
        try:
            blob.create_append_blob(match_condition=MatchConditions.IfMissing)
        except (ResourceExistsError, ResourceModifiedError):
            pass  # another writer began the day
        blob.append_block(line)
        self._forget_days(model, series, datetime.fromisoformat(day) - timedelta(days=FIGURE_DAYS))

    def _series_blobs(self, model: str, series: FigureSeries) -> list[Any]:
        """The series' blobs, oldest first: the days, after a ``<series>/<model>.json`` an earlier version kept."""
        prefix = self._series_prefix(model, series)
        legacy = f"{prefix[:-1]}.json"
        found = [b for b in self.container.list_blobs(name_starts_with=prefix[:-1])
                 if b.name == legacy or b.name.startswith(prefix)]
        return sorted(found, key=lambda b: (b.name != legacy, b.name))

    def _forget_days(self, model: str, series: FigureSeries, before: datetime) -> None:
        cutoff = before.date().isoformat()
        for blob in self._series_blobs(model, series):
            day = blob.name.rsplit("/", 1)[-1].removesuffix(".jsonl")
            if (day < cutoff) if blob.name.endswith(".jsonl") else (blob.last_modified.date().isoformat() < cutoff):
                self.container.delete_blob(blob.name)

    def figures(self, model: str, limit: int = 100, series: FigureSeries = "performance") -> list[dict[str, Any]]:
        """See FeedbackStore: the newest days are read until ``limit`` figures are found."""
        found: list[dict[str, Any]] = []
        for blob in reversed(self._series_blobs(model, series)):
            raw = self.container.get_blob_client(blob.name).download_blob().readall()
            if blob.name.endswith(".json"):
                day = list(json.loads(raw).get("figures") or [])
            else:
                day = [json.loads(line) for line in raw.splitlines() if line.strip()]
            found = sorted(day, key=lambda f: str(f.get("at"))) + found
            if len(found) >= limit:
                break
        return found[-limit:]
