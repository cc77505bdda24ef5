"""The CLI's HTTP client for the operator API of any deployment: the local stack or an app in Azure.

Two credentials, either or both:

- a function key, sent as ``x-functions-key`` (every route of the API is ``auth_level=FUNCTION``;
  https://learn.microsoft.com/azure/azure-functions/function-keys-how-to);
- an Entra ID bearer token for the app registration's scope (``api://<app id>/.default``), from
  ``azure-identity``'s ``DefaultAzureCredential`` (https://learn.microsoft.com/python/api/azure-identity/azure.identity.defaultazurecredential).
  App Service authentication validates it and hands the app the caller's principal with its app
  roles in ``X-MS-CLIENT-PRINCIPAL`` (https://learn.microsoft.com/azure/app-service/configure-authentication-user-identities),
  which is what the operator actions check for ``mlops.operator``.

Errors never surface as tracebacks: an HTTP error is ``ApiCallError`` with the status and the
server's own message (the ``error`` field of its JSON body), a connection failure names the URL
that could not be reached, a credential that yields no token says which scope it was asked for.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import click
import requests

if TYPE_CHECKING:
    from azure.core.credentials import AccessToken, TokenCredential

CredentialFactory = Callable[[], "TokenCredential"]
TIMEOUT_SECONDS = 30
# a token is asked for again this long before it expires, so no call goes out with one about to lapse
TOKEN_MARGIN_SECONDS = 120


class ApiCallError(click.ClickException):
    """A call to the API failed: the message says which call, the status and the server's reason."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def default_credential() -> TokenCredential:
    """``DefaultAzureCredential``: environment, workload or managed identity, Azure CLI, azd, ... in that order."""
    from azure.identity import DefaultAzureCredential

    return DefaultAzureCredential()


class BearerToken:
    """Tokens for one scope from one credential, asked for once and again only shortly before they expire."""

    def __init__(self, credential: TokenCredential, scope: str) -> None:
        """``scope``: the app registration's, e.g. ``api://<app id>/.default``."""
        self.credential = credential
        self.scope = scope
        self._token: AccessToken | None = None

    def header(self) -> str:
        """The ``Authorization`` header's value."""
        from azure.core.exceptions import ClientAuthenticationError

        if self._token is None or self._token.expires_on - TOKEN_MARGIN_SECONDS <= time.time():
            try:
                self._token = self.credential.get_token(self.scope)
            except ClientAuthenticationError as exc:  # CredentialUnavailableError is one too
                raise ApiCallError(f"no Entra ID token for scope {self.scope}: {exc.message}") from exc
        return f"Bearer {self._token.token}"


@dataclass
class ApiClient:
    """Calls ``<url>/api/<path>`` with the function key and/or a bearer token; returns the JSON body."""

    url: str
    key: str | None = None
    token: BearerToken | None = None
    timeout: float = TIMEOUT_SECONDS

    def __post_init__(self) -> None:
        """One session: connections are kept between the calls of a command (``run --follow`` polls)."""
        self.url = self.url.rstrip("/")
        self.session = requests.Session()

    def call(self, method: str, path: str, *, params: dict[str, Any] | None = None,
             body: dict[str, Any] | None = None) -> Any:
        """The decoded JSON body of a 2xx answer; ApiCallError with the server's message otherwise."""
        where = f"{method} /api/{path}"
        headers = {"Accept": "application/json"}
        if self.key:
            headers["x-functions-key"] = self.key
        if self.token is not None:
            headers["Authorization"] = self.token.header()
        try:
            resp = self.session.request(method, f"{self.url}/api/{path}", params=params, json=body,
                                        headers=headers, timeout=self.timeout)
        except requests.Timeout as exc:
            raise ApiCallError(f"{where}: {self.url} did not answer within {self.timeout:g} s") from exc
        except requests.RequestException as exc:
            raise ApiCallError(f"{where}: could not reach {self.url}: {_reason(exc)}") from exc
        decoded = _json_or_none(resp)
        if resp.status_code >= 400:
            raise ApiCallError(f"{where}: HTTP {resp.status_code}: {_message(resp, decoded)}", resp.status_code)
        if decoded is None and resp.content:
            raise ApiCallError(f"{where}: {self.url} answered HTTP {resp.status_code} with something that is not "
                               f"JSON ({resp.headers.get('Content-Type', 'no content type')}): {_snippet(resp)}")
        return decoded if decoded is not None else {}


def _json_or_none(resp: requests.Response) -> Any:
    if not resp.content:
        return None
    try:
        return resp.json()
    except ValueError:
        return None


def _message(resp: requests.Response, decoded: Any) -> str:
    """The server's reason: the API's ``{"error": ...}``, else the body's start, else the status' phrase."""
    if isinstance(decoded, dict) and isinstance(decoded.get("error"), str):
        return str(decoded["error"])
    if decoded is not None:
        return json.dumps(decoded)[:300]
    return _snippet(resp) or resp.reason or "no message"


def _snippet(resp: requests.Response) -> str:
    return " ".join(resp.text.split())[:300]


def _reason(exc: requests.RequestException) -> str:
    """The innermost cause's message (requests wraps urllib3's, which wraps the socket's), without the pool's repr."""
    cause: BaseException = exc
    for _ in range(10):  # a chain is a few links long; bounded all the same
        inner = cause.__cause__ or cause.__context__
        if inner is None:
            break
        cause = inner
    return str(cause) or type(cause).__name__
