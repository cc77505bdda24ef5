"""Strict stand-ins: every call a fake answers must exist on the real SDK class and bind to its signature.

``Strict(RealClass, impl)`` looks each attribute up on the real class first (``inspect.getattr_static``), so a
method the SDK does not have raises AttributeError as the SDK would, and a call whose arguments do not bind to
the real signature (``inspect.signature(...).bind``) raises TypeError naming it. Only then does the fake answer.
"""

from __future__ import annotations

import inspect
from typing import Any

_MISSING = object()


class SdkCallError(TypeError):
    """A call the real SDK would refuse: no such method, or arguments its signature does not take."""


def check_call(real: Any, name: str, args: tuple[Any, ...], kwargs: dict[str, Any], bound_self: bool) -> None:
    """Raise SdkCallError unless ``real.<name>(*args, **kwargs)`` binds to the real signature."""
    target = getattr(real, name)
    sig = inspect.signature(target)
    try:
        if bound_self and "self" in sig.parameters:
            sig.bind(None, *args, **kwargs)
        else:
            sig.bind(*args, **kwargs)
    except TypeError as exc:
        owner = getattr(real, "__name__", type(real).__name__)
        raise SdkCallError(f"{owner}.{name}{sig} does not take args={args!r} kwargs={sorted(kwargs)}: {exc}") from exc


def check_signature(real: Any, what: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    """The arguments by name, defaults filled in; SdkCallError unless ``real(*args, **kwargs)`` binds (``real``: the
    SDK's function, kept before it was patched)."""
    sig = inspect.signature(real)
    try:
        bound = sig.bind(*args, **kwargs)
    except TypeError as exc:
        raise SdkCallError(f"{what}{sig} does not take args={args!r} kwargs={sorted(kwargs)}: {exc}") from exc
    bound.apply_defaults()
    return dict(bound.arguments)


class Strict:
    """A proxy over ``impl`` that only lets through what ``real`` (the SDK's class) has, with its signatures."""

    def __init__(self, real: type, impl: Any) -> None:
        object.__setattr__(self, "_real", real)
        object.__setattr__(self, "_impl", impl)

    def __getattr__(self, name: str) -> Any:
        real, impl = self._real, self._impl
        static = inspect.getattr_static(real, name, _MISSING)
        if static is _MISSING:
            raise AttributeError(f"{real.__module__}.{real.__qualname__} has no attribute {name!r}: the SDK has "
                                 f"no such call")
        answer: Any = getattr(impl, name, _MISSING)
        if answer is _MISSING:
            raise NotImplementedError(f"the fake of {real.__qualname__} does not answer {name!r}: teach it first")
        if not (inspect.isfunction(static) or isinstance(static, (staticmethod, classmethod))):
            return answer  # a property or plain attribute (MLClient.jobs, ...)
        bound_self = inspect.isfunction(static)

        def call(*args: Any, **kwargs: Any) -> Any:
            check_call(real, name, args, kwargs, bound_self)
            return answer(*args, **kwargs)

        call.__name__ = name
        return call

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"the fake of {self._real.__qualname__} is read-only ({name})")

    def __repr__(self) -> str:
        return f"<strict fake of {self._real.__module__}.{self._real.__qualname__}>"
