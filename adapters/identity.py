"""The app's Azure identity: ``DefaultAzureCredential``, which is the managed identity in Azure
(https://learn.microsoft.com/azure/developer/python/sdk/authentication/overview), created only when a client
first needs it, so that importing an adapter and running locally never touch azure.identity."""

from __future__ import annotations

from typing import Any


def managed_identity() -> Any:
    """A new DefaultAzureCredential."""
    from azure.identity import DefaultAzureCredential

    return DefaultAzureCredential()


class WithIdentity:
    """A client that signs in as the app: ``credential`` is the one given (tests pass fakes), or the managed
    identity on first use."""

    _credential: Any = None

    @property
    def credential(self) -> Any:
        """The credential given, else DefaultAzureCredential: the app's managed identity in Azure."""
        if self._credential is None:
            self._credential = managed_identity()
        return self._credential
