"""Blob clients by URL, as the app builds them with its managed identity, served by a real Azurite.

``BlobClient.from_blob_url`` and ``ContainerClient.from_container_url`` are the two calls the Azure ML
platform makes. Their stand-ins check the call against the real signature and that the credential is the
app's identity, record it, and return the SDK's real clients on the same container and blob in Azurite
(storage is not faked: only where it lives is). Azure's ``https://<account>.blob.core.windows.net`` URLs map
to Azurite's development account; Azurite's own URLs (what devhost's BlobCreated events carry) stay as they
are.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote, urlparse

from azure.storage.blob import BlobClient, ContainerClient

from .identity import require_identity
from .state import State
from .strict import check_signature

REAL_FROM_BLOB_URL = BlobClient.from_blob_url
REAL_FROM_CONTAINER_URL = ContainerClient.from_container_url


def split_url(url: str) -> tuple[str, str, str]:
    """(account, container, blob) of an Azure or Azurite blob URL."""
    parsed = urlparse(url)
    parts = [unquote(p) for p in parsed.path.lstrip("/").split("/")]
    host = parsed.hostname or ""
    if host.endswith(".blob.core.windows.net"):
        if parsed.scheme != "https":
            raise AssertionError(f"{url}: Azure Storage with a token credential needs https")
        account = host.split(".", 1)[0]
    elif host in ("127.0.0.1", "localhost"):
        account, parts = parts[0], parts[1:]
    else:
        raise AssertionError(f"{url} is neither an Azure Storage nor an Azurite blob URL")
    if not parts or not parts[0]:
        raise AssertionError(f"{url} names no container")
    return account, parts[0], "/".join(parts[1:])


def from_blob_url(*args: Any, **kwargs: Any) -> BlobClient:
    """BlobClient.from_blob_url with the app's identity -> the real client on that blob in Azurite."""
    call = check_signature(REAL_FROM_BLOB_URL, "BlobClient.from_blob_url", args, kwargs)
    blob_url, credential = call["blob_url"], call["credential"]
    require_identity(credential, f"BlobClient.from_blob_url({blob_url})")
    account, container, blob = split_url(blob_url)
    if not blob:
        raise AssertionError(f"{blob_url} names no blob")
    state = State.from_env()
    state.record("storage.BlobClient.from_blob_url", {"url": blob_url, "account": account})
    return BlobClient.from_connection_string(state.workspace().storage, container, blob)


def from_container_url(*args: Any, **kwargs: Any) -> ContainerClient:
    """ContainerClient.from_container_url with the app's identity -> the real client on it in Azurite."""
    call = check_signature(REAL_FROM_CONTAINER_URL, "ContainerClient.from_container_url", args, kwargs)
    container_url, credential = call["container_url"], call["credential"]
    require_identity(credential, f"ContainerClient.from_container_url({container_url})")
    account, container, rest = split_url(container_url)
    if rest:
        raise AssertionError(f"{container_url} is a blob URL, not a container URL")
    state = State.from_env()
    state.record("storage.ContainerClient.from_container_url", {"url": container_url, "account": account})
    return ContainerClient.from_connection_string(state.workspace().storage, container)
