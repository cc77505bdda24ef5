"""The one mixin that carries dataclasses across the Durable boundary as plain JSON."""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from dataclasses import asdict
from enum import Enum
from typing import Any, TypeVar

T = TypeVar("T")


class Json:
    """Mixin: dataclass <-> JSON-safe dict, nested dataclasses and enums included."""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict of this object."""
        return asdict(self)  # type: ignore[call-overload,no-any-return]

    @classmethod
    def from_dict(cls: type[T], data: dict[str, Any]) -> T:
        """Build from a dict made by ``to_dict``; keys it does not know are ignored (newer senders add fields)."""
        hints = _field_types(cls)  # type: ignore[arg-type]
        return cls(**{k: _build(hints[k], v) for k, v in data.items() if k in hints})


@functools.cache
def _field_types(cls: type) -> dict[str, Any]:
    """Field name -> its resolved type (annotations are strings under ``from __future__ import annotations``)."""
    resolved = typing.get_type_hints(cls)
    return {f.name: resolved[f.name] for f in dataclasses.fields(cls) if f.init}


def _build(kind: Any, value: Any) -> Any:
    """``value`` as an instance of ``kind`` where ``kind`` is a Json dataclass or an enum (also inside
    ``X | None`` and ``list[X]``); anything else is passed through as JSON gave it."""
    if value is None:
        return None
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(kind) if a is not type(None)]
        return _build(options[0], value) if len(options) == 1 else value
    if origin is list and isinstance(value, list):
        (item,) = typing.get_args(kind) or (Any,)
        return [_build(item, v) for v in value]
    if isinstance(kind, type) and issubclass(kind, Json) and isinstance(value, dict):
        return kind.from_dict(value)
    if isinstance(kind, type) and issubclass(kind, Enum) and not isinstance(value, kind):
        return kind(value)
    return value
