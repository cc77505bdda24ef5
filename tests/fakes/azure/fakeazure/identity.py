"""DefaultAzureCredential's stand-in: the app's managed identity, which hands out tokens and nothing else."""

from __future__ import annotations

import time
from typing import Any

from azure.core.credentials import AccessToken, AccessTokenInfo
from azure.identity import DefaultAzureCredential as RealCredential

from .strict import check_call


class FakeManagedIdentity:
    """Answers get_token/get_token_info as DefaultAzureCredential does; records which scopes were asked."""

    def __init__(self, **kwargs: Any) -> None:
        check_call(RealCredential, "__init__", (), kwargs, bound_self=True)
        self.scopes: list[str] = []

    def get_token(self, *scopes: str, claims: str | None = None, tenant_id: str | None = None,
                  **kwargs: Any) -> AccessToken:
        """A token for the scopes (never sent anywhere: every Azure call stops at a fake)."""
        check_call(RealCredential, "get_token", scopes, {"claims": claims, "tenant_id": tenant_id, **kwargs}, True)
        if not scopes:
            raise ValueError("get_token needs at least one scope")
        self.scopes.extend(scopes)
        return AccessToken("fake-managed-identity-token", int(time.time()) + 3600)

    def get_token_info(self, *scopes: str, options: Any = None) -> AccessTokenInfo:
        """The token as AccessTokenInfo (azure-core's newer credential protocol)."""
        check_call(RealCredential, "get_token_info", scopes, {"options": options}, True)
        self.scopes.extend(scopes)
        return AccessTokenInfo("fake-managed-identity-token", int(time.time()) + 3600)

    def close(self) -> None:
        """Nothing to release."""

    def __enter__(self) -> FakeManagedIdentity:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def require_identity(credential: Any, what: str) -> None:
    """The app must call Azure with its managed identity: never a key, a SAS or no credential at all."""
    if not isinstance(credential, FakeManagedIdentity):
        raise AssertionError(f"{what} was called with credential {type(credential).__name__}, not the app's "
                             f"DefaultAzureCredential (managed identity)")
