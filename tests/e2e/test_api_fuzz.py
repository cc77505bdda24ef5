"""Schemathesis generates requests from /api/openapi.json; none may get a 5xx.

Requests go in with the function key and without a signed-in principal, so every action is
refused (401) and every read runs for real. Bounded: a few examples per operation.
"""

from __future__ import annotations

import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from stacklab import Lab


def test_generated_requests_never_get_a_5xx(lab: Lab) -> None:
    base = f"{lab.info.devhost_url}/api"
    headers = {"x-functions-key": lab.info.function_key}
    doc = requests.get(f"{base}/openapi.json", headers=headers, timeout=30).json()
    schema = schemathesis.openapi.from_dict(doc)
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 10

    for operation in operations:
        @given(case=operation.as_strategy())
        @settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def check(case: schemathesis.Case) -> None:
            response = case.call(base_url=base, headers=headers, timeout=60)
            if response.status_code >= 500:
                failures.append(f"{case.method} {case.formatted_path} {case.query}: {response.status_code} "
                                f"{response.text[:200]}")

        check()
    assert not failures, "\n".join(failures)
