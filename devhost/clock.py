"""The host clock: real UTC time, or a virtual clock that tests move forward.

With the virtual clock, time still flows at wall-clock speed, and ``advance`` adds an
offset, so a timer six hours away fires at once. The offset is kept in the store so
that virtual time never goes backwards across a restart.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta


class Clock:
    """UTC time source for timers and orchestration timestamps."""

    def __init__(self, virtual: bool = False, offset_seconds: float = 0.0) -> None:
        self.virtual = virtual
        self._offset = timedelta(seconds=offset_seconds if virtual else 0.0)
        self._lock = threading.Lock()
        self._listeners: list[Callable[[], None]] = []

    def now(self) -> datetime:
        """The current (possibly virtual) UTC time."""
        with self._lock:
            return datetime.now(UTC) + self._offset

    @property
    def offset_seconds(self) -> float:
        """How far virtual time is ahead of real time."""
        return self._offset.total_seconds()

    def advance(self, seconds: float) -> datetime:
        """Move virtual time forward; refused on the real clock."""
        if not self.virtual:
            raise ValueError("the clock is real; start devhost with --clock virtual to advance time")
        if seconds < 0:
            raise ValueError("time only moves forward: seconds must be >= 0")
        with self._lock:
            self._offset += timedelta(seconds=seconds)
        for listener in list(self._listeners):
            listener()
        return self.now()

    def on_advance(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` whenever time is advanced (the engine re-checks its timers)."""
        self._listeners.append(listener)
