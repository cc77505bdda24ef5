"""Domain errors. Each names the thing that is wrong and its value.

The HTTP layer turns them into 400/404/409 with the message as the body.
"""

from __future__ import annotations


class MlopsError(Exception):
    """Base of every domain error."""


class EventError(MlopsError):
    """An incoming event does not fit its schema; ``field`` names where."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class PolicyError(MlopsError):
    """A model policy is invalid; ``field`` is the dotted path of the bad field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class FeedbackError(MlopsError):
    """A ground-truth file does not fit (``feedback/<model>/<file>.csv``); ``field`` names where (a column, a
    line), ``source`` the file."""

    def __init__(self, field: str, message: str, source: str = "") -> None:
        super().__init__(f"{source + ': ' if source else ''}{field}: {message}")
        self.field = field
        self.source = source


class SettingError(MlopsError):
    """An app setting is missing or bad; ``name`` is the setting."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"setting {name}: {message}")
        self.name = name


class PlatformError(MlopsError):
    """The ML platform refused or failed a call; ``what`` names the object."""

    def __init__(self, what: str, message: str, *, retryable: bool = False) -> None:
        super().__init__(f"{what}: {message}")
        self.what = what
        self.retryable = retryable


class NotFoundError(PlatformError):
    """The named object does not exist on the platform."""


TRANSIENT_MARK = "[transient]"


class TransientError(MlopsError):
    """A failure worth retrying (a service unreachable, throttled or failing with 5xx).

    Activities raise it; its message crosses the Durable boundary as text, so it starts with
    ``TRANSIENT_MARK`` and orchestrators recognise it with ``is_transient``.
    """

    def __init__(self, message: str) -> None:
        super().__init__(f"{TRANSIENT_MARK} {message}")


def is_transient(failure: BaseException | str) -> bool:
    """True if an activity failure (the exception a failed task raises, or its text) is worth retrying."""
    return TRANSIENT_MARK in str(failure)
