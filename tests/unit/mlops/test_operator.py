"""mlops.operator: who is calling, who may post alerts, and which data an operator may point a retrain at."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from mlops.operator import (
    ApiError,
    Principal,
    RollbackBody,
    authorize_alert,
    landing_data_url,
    parse_body,
    principal_from_header,
)


def _header(value: Any) -> str:
    return base64.b64encode(json.dumps(value).encode()).decode()


def test_principal_header_gives_the_name_and_roles() -> None:
    claims = [{"typ": "name", "val": "alice"}, {"typ": "roles", "val": "mlops.operator"},
              {"typ": "http://schemas.microsoft.com/ws/2008/06/identity/claims/role", "val": "mlops.alerts"}]
    principal = principal_from_header(_header({"auth_typ": "aad", "claims": claims, "name_typ": "name",
                                               "role_typ": "http://schemas.microsoft.com/ws/2008/06/identity/"
                                                           "claims/role"}))
    assert principal == Principal("alice", ("mlops.operator", "mlops.alerts"))
    assert principal_from_header(None) is None and principal_from_header("") is None


@pytest.mark.parametrize("value", [
    ["x"],
    "a string",
    5,
    None,
    {"claims": 5},
    {"claims": ["x"]},
    {"claims": [{"typ": "roles"}]},
    {"claims": [{"typ": "roles", "val": {"nested": True}}]},
    {"claims": [], "role_typ": 7},
], ids=["list", "string", "number", "null", "claims-number", "claims-of-strings", "claim-without-val",
        "claim-val-object", "role-typ-number"])
def test_a_principal_header_of_the_wrong_shape_is_401_naming_what_is_wrong(value: Any) -> None:
    with pytest.raises(ApiError) as err:
        principal_from_header(_header(value))
    assert err.value.status == 401
    assert str(err.value).startswith("X-MS-CLIENT-PRINCIPAL")


def test_a_principal_header_that_is_not_base64_json_is_401() -> None:
    for value in ("%%%not-base64", base64.b64encode(b"{nope").decode(), base64.b64encode(b"\xff\xfe").decode()):
        with pytest.raises(ApiError) as err:
            principal_from_header(value)
        assert err.value.status == 401


# -- the alert webhook --------------------------------------------------------------------------------------------

ALERTER = Principal("azure-monitor", ("mlops.alerts",))
VIEWER = Principal("victor", ("mlops.viewer",))


def test_an_alert_from_a_principal_with_the_alert_role_is_allowed() -> None:
    assert authorize_alert(ALERTER, "mlops.alerts", presented_key=None, alert_key=None) == "azure-monitor"


def test_an_alert_with_the_dedicated_key_is_allowed_without_a_principal() -> None:
    who = authorize_alert(None, "mlops.alerts", presented_key="s3cret-alert-key", alert_key="s3cret-alert-key")
    assert who == "alert webhook (MLOPS_ALERT_KEY)"


@pytest.mark.parametrize(("principal", "presented", "alert_key", "status"), [
    (None, None, None, 401),  # only the function key
    (None, "the-dashboard-function-key", None, 401),  # no alert key configured: a function key is not enough
    (None, "the-dashboard-function-key", "s3cret-alert-key", 401),
    (VIEWER, None, None, 403),
    (VIEWER, "the-dashboard-function-key", "s3cret-alert-key", 403),
])
def test_an_alert_without_the_role_or_the_dedicated_key_is_refused(principal: Principal | None,
                                                                    presented: str | None, alert_key: str | None,
                                                                    status: int) -> None:
    with pytest.raises(ApiError) as err:
        authorize_alert(principal, "mlops.alerts", presented_key=presented, alert_key=alert_key)
    assert err.value.status == status
    assert "mlops.alerts" in str(err.value)


# -- operator-supplied data references ----------------------------------------------------------------------------

AZURITE = "http://127.0.0.1:10000/devstoreaccount1/landing"
AZURE = "https://acct.blob.core.windows.net/landing"


@pytest.mark.parametrize(("url", "landing"), [
    (f"{AZURITE}/credit/d1.csv", AZURITE),
    (f"{AZURE}/credit/d1.csv", AZURE),
    (f"{AZURE}/credit/2024/05/d%201.csv", AZURE + "/"),
    ("https://ACCT.blob.core.windows.net/landing/credit/d1.csv", AZURE),  # host names are case-insensitive
])
def test_a_blob_in_the_landing_container_is_accepted(url: str, landing: str) -> None:
    assert landing_data_url(url, landing) == url


@pytest.mark.parametrize(("url", "reason"), [
    ("file:///proc/self/environ", "must be a blob in the landing container"),
    ("/etc/passwd", "must be a blob in the landing container"),
    ("http://169.254.169.254/metadata/identity/oauth2/token", "must be a blob in the landing container"),
    ("https://other.blob.core.windows.net/landing/credit/d1.csv", "must be a blob in the landing container"),
    ("http://acct.blob.core.windows.net/landing/credit/d1.csv", "must be a blob in the landing container"),
    ("https://acct.blob.core.windows.net:8443/landing/credit/d1.csv", "must be a blob in the landing container"),
    ("https://evil@acct.blob.core.windows.net/landing/credit/d1.csv", "must be a blob in the landing container"),
    ("https://acct.blob.core.windows.net/landing2/credit/d1.csv", "must be a blob in the landing container"),
    ("https://acct.blob.core.windows.net/mlops-control/requests/x.json", "must be a blob in the landing container"),
    ("https://acct.blob.core.windows.net/landing", "names no blob"),
    ("https://acct.blob.core.windows.net/landing/", "names no blob"),
    ("https://acct.blob.core.windows.net/landing/credit/../../mlops-control/x.json", "'..'"),
    ("https://acct.blob.core.windows.net/landing/credit/%2e%2e/%2E%2E/other/x.csv", "'..'"),
    ("https://acct.blob.core.windows.net/landing/credit\\..\\x.csv", "backslash"),
    ("https://acct.blob.core.windows.net/landing/credit/d1.csv?sv=2024&sig=x", "query"),
    ("https://acct.blob.core.windows.net/landing/credit/d1.csv#frag", "fragment"),
])
def test_anything_but_a_blob_in_the_landing_container_is_400_with_the_reason(url: str, reason: str) -> None:
    with pytest.raises(ApiError) as err:
        landing_data_url(url, AZURE)
    assert err.value.status == 400
    assert str(err.value).startswith("data_url: ") and reason in str(err.value)


def test_a_body_nested_too_deeply_to_parse_is_400() -> None:
    with pytest.raises(ApiError) as err:
        parse_body(RollbackBody, b"[" * 100_000 + b"]" * 100_000)
    assert err.value.status == 400 and "not valid JSON" in str(err.value)
