"""The landing container in Blob Storage, behind the ``Landing`` port, and the ranged read of a landed blob."""

from __future__ import annotations

from typing import Any

from mlops.events import not_data
from mlops.ports import DataRef


class BlobLanding:
    """Data files under ``<model>/`` in the landing container."""

    def __init__(self, container_client: Any) -> None:
        self.container = container_client

    def newest(self, model: str, allowed_suffixes: tuple[str, ...]) -> DataRef | None:
        """See Landing. What counts as data is what the BlobCreated trigger accepts (``mlops.events.not_data``)."""
        blobs = [b for b in self.container.list_blobs(name_starts_with=f"{model}/")
                 if not_data(b.name, int(b.size or 0), allowed_suffixes) is None]
        if not blobs:
            return None
        newest = max(blobs, key=lambda b: b.last_modified)
        return DataRef(url=f"{self.container.url.rstrip('/')}/{newest.name}", etag=newest.etag,
                       content_length=int(newest.size))


def head_of_blob(client: Any, max_bytes: int) -> bytes:
    """The first ``max_bytes`` of a blob (azure-storage-blob ``BlobClient``): one ranged download.

    Storage answers 416 InvalidRange to a range starting at 0 only when the blob is empty.
    """
    from azure.core.exceptions import HttpResponseError

    try:
        return bytes(client.download_blob(offset=0, length=max_bytes).readall())
    except HttpResponseError as exc:
        if exc.status_code == 416:
            return b""
        raise
