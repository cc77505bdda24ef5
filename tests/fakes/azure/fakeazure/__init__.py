"""A fake Azure for the Function App: Azure ML, Azure Monitor metrics and the app's identity, at the SDK boundary.

``install()`` replaces, in the running interpreter, exactly the names the Azure ML platform imports:
``azure.ai.ml.MLClient``, ``azure.identity.DefaultAzureCredential``,
``azure.monitor.querymetrics.MetricsClient``, ``azure.storage.blob.BlobClient.from_blob_url`` and
``azure.storage.blob.ContainerClient.from_container_url``. Nothing in the app changes: ``sitecustomize.py``
beside this package calls ``install()`` when ``FAKE_AZURE_STATE`` is set, so a process started with this
folder on PYTHONPATH talks to the fake cloud (tests only). Storage stays real (Azurite).
"""

from __future__ import annotations

from .state import ENV, State, Workspace

__all__ = ["ENV", "State", "Workspace", "install"]


def install() -> list[str]:
    """Point the SDK names the app uses at the fakes (idempotent); returns the SDK packages that are not installed.

    A package that is missing is left missing: the app then fails where it imports it, as it would in Azure.
    """
    import importlib

    missing = []
    for package in ("azure.identity", "azure.storage.blob", "azure.ai.ml", "azure.monitor.querymetrics"):
        try:
            importlib.import_module(package)
        except ImportError:
            missing.append(package)
    if "azure.identity" not in missing:
        import azure.identity

        from . import identity

        azure.identity.DefaultAzureCredential = identity.FakeManagedIdentity  # type: ignore[assignment,misc]
    if "azure.storage.blob" not in missing:
        from azure.storage.blob import BlobClient, ContainerClient

        from . import storage

        BlobClient.from_blob_url = staticmethod(storage.from_blob_url)  # type: ignore[assignment,method-assign]
        ContainerClient.from_container_url = staticmethod(  # type: ignore[assignment,method-assign]
            storage.from_container_url)
    if not {"azure.ai.ml", "azure.identity", "azure.storage.blob"} & set(missing):
        import azure.ai.ml

        from . import ml

        azure.ai.ml.MLClient = ml.make_client  # type: ignore[assignment,misc]
    if not {"azure.monitor.querymetrics", "azure.identity"} & set(missing):
        import azure.monitor.querymetrics

        from . import metrics

        azure.monitor.querymetrics.MetricsClient = metrics.make_client  # type: ignore[assignment,misc]
    return missing
