"""Which failures of a port call are transient: the classification activities use to mark retries."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from mlops.errors import PlatformError, TransientError

F = TypeVar("F", bound=Callable[..., Any])

_RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})


def transient(exc: BaseException) -> bool:
    """True for errors a retry may cure: a platform error flagged retryable, a connection that failed,
    a storage call answered 408/429/5xx (azure-core's own retries already ran)."""
    if isinstance(exc, PlatformError):
        return exc.retryable
    from azure.core.exceptions import HttpResponseError, ServiceRequestError, ServiceResponseError

    if isinstance(exc, ServiceRequestError | ServiceResponseError | ConnectionError | TimeoutError):
        return True
    return isinstance(exc, HttpResponseError) and exc.status_code in _RETRYABLE_STATUS


def marks_transient(fn: F) -> F:
    """Wrap an activity so a transient failure reaches the orchestrator as ``TransientError`` (it retries those)."""
    @functools.wraps(fn)
    def activity(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            if transient(exc):
                raise TransientError(f"{type(exc).__name__}: {exc}") from exc
            raise

    return activity  # type: ignore[return-value]
