"""devhost's built-in HTTP activity (call_http): its settings, request parsing and result shape."""

from __future__ import annotations

import json

import pytest

from devhost.http_activity import HttpCallError, HttpOptions, parse_request, response_json


def test_settings_default_and_bad_values_are_refused_by_name() -> None:
    assert HttpOptions.from_settings({}) == HttpOptions()
    assert HttpOptions.from_settings({"DEVHOST_HTTP_ASYNC_PATTERN": "false"}).async_pattern is False
    for name, value in (("DEVHOST_HTTP_MAX_POLLS", "lots"), ("DEVHOST_HTTP_TIMEOUT_SECONDS", "0"),
                        ("DEVHOST_HTTP_ASYNC_PATTERN", "maybe")):
        with pytest.raises(ValueError, match=name):
            HttpOptions.from_settings({name: value})


def test_the_request_is_read_from_the_array_the_extension_schedules() -> None:
    request = {"method": "GET", "uri": "http://127.0.0.1/x"}
    assert parse_request(json.dumps([request])) == request
    with pytest.raises(HttpCallError, match="no uri"):
        parse_request(json.dumps([{"method": "GET"}]))
    with pytest.raises(HttpCallError, match="not JSON"):
        parse_request("{")


def test_the_result_has_the_durable_http_response_shape() -> None:
    result = json.loads(response_json(201, [("Location", "/a"), ("Set-Cookie", "a=1"), ("set-cookie", "b=2"),
                                            ("Content-Type", "text/plain")], "made"))
    assert result == {"statusCode": 201, "headers": {"Location": "/a", "Set-Cookie": ["a=1", "b=2"]},
                      "content": "made"}
