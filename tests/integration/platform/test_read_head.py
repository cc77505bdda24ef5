"""Platform.read_head: the first bytes of a landed file, read with a ranged download, on both platforms."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from azure.core.credentials import AzureNamedKeyCredential
from azure.storage.blob import BlobServiceClient

from adapters.azureml import AzureMLConfig, AzureMLPlatform
from adapters.local import LocalPlatform
from devhost.azurite import ACCOUNT, ACCOUNT_KEY, Azurite
from mlops.errors import NotFoundError
from mlops.ports import DataRef

BIG = os.urandom(3 * 1024 * 1024)


@pytest.fixture(scope="module")
def blobs(azurite: Azurite) -> BlobServiceClient:
    """Azurite with container ``landing`` holding big.csv (3 MiB), small.csv and empty.csv."""
    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    container = service.get_container_client("landing")
    if not container.exists():
        container.create_container()
    container.upload_blob("m/big.csv", BIG, overwrite=True)
    container.upload_blob("m/small.csv", b"a,b\n1,2\n", overwrite=True)
    container.upload_blob("m/empty.csv", b"", overwrite=True)
    return service


def _url(blobs: BlobServiceClient, name: str) -> DataRef:
    return DataRef(url=blobs.get_blob_client("landing", f"m/{name}").url)


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory, blobs: BlobServiceClient) -> LocalPlatform:
    return LocalPlatform(tmp_path_factory.mktemp("head") / "mlops", blob_service=blobs)


@pytest.fixture(scope="module")
def azureml(blobs: BlobServiceClient) -> AzureMLPlatform:
    # Azurite's development account stands in for the app's identity: the same BlobClient, another credential
    return AzureMLPlatform(AzureMLConfig("sub", "rg", "ws", "cpu", "env"),
                           credential=AzureNamedKeyCredential(ACCOUNT, ACCOUNT_KEY))


@pytest.fixture(params=["local", "azureml"])
def platform(request: pytest.FixtureRequest, local: LocalPlatform, azureml: AzureMLPlatform) -> object:
    return {"local": local, "azureml": azureml}[request.param]


def test_read_head_returns_the_first_bytes_of_a_blob(platform: LocalPlatform, blobs: BlobServiceClient) -> None:
    assert platform.read_head(_url(blobs, "big.csv"), 1000) == BIG[:1000]


def test_read_head_of_a_blob_shorter_than_asked_returns_all_of_it(platform: LocalPlatform,
                                                                  blobs: BlobServiceClient) -> None:
    assert platform.read_head(_url(blobs, "small.csv"), 1000) == b"a,b\n1,2\n"
    assert platform.read_head(_url(blobs, "empty.csv"), 1000) == b""


def test_read_head_of_a_missing_blob_is_not_found(platform: LocalPlatform, blobs: BlobServiceClient) -> None:
    with pytest.raises(NotFoundError):
        platform.read_head(_url(blobs, "missing.csv"), 1000)


def test_read_head_of_a_local_file_reads_its_first_bytes(local: LocalPlatform, tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_bytes(BIG)
    assert local.read_head(DataRef(url=path.as_uri()), 10) == BIG[:10]
