"""The one mixin that carries dataclasses across the Durable boundary as plain JSON."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, TypeVar

T = TypeVar("T")


class Json:
    """Mixin: dataclass <-> JSON-safe dict."""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict of this object."""
        return asdict(self)  # type: ignore[call-overload,no-any-return]

    @classmethod
    def from_dict(cls: type[T], data: dict[str, Any]) -> T:
        """Build from a dict made by ``to_dict``; keys it does not know are ignored (newer senders add fields)."""
        known = getattr(cls, "__dataclass_fields__", {})
        return cls(**{k: v for k, v in data.items() if k in known})
