"""The landing container in Blob Storage, behind the ``Landing`` port."""

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
