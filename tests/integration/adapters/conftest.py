"""Fixtures for the adapters' integration tests: one Azurite for the module, a fresh container per test."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from azure.storage.blob import BlobServiceClient

from devhost.azurite import Azurite


@pytest.fixture(scope="module")
def azurite() -> Iterator[Azurite]:
    """A real Azurite blob service (in memory), stopped after the module."""
    with Azurite(in_memory=True) as az:
        yield az


@pytest.fixture
def container(azurite: Azurite) -> Any:
    """A container client on a container name no other test uses (created by whoever needs it)."""
    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    return service.get_container_client(f"control-{uuid.uuid4().hex[:12]}")
