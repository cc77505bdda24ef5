"""Load a Python v2 programming-model app and index its functions by their bindings.

The Python worker imports ``function_app.py`` and looks for the one object that is a
``FunctionRegister`` (``func.FunctionApp``, ``df.DFApp``, ...), whatever the variable is
called; it refuses a module that defines several. devhost does the same.
"""

from __future__ import annotations

import importlib.util
import inspect
import re
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from azure.functions.decorators.function_app import FunctionRegister

HTTP_TRIGGER = "httpTrigger"
ORCHESTRATION_TRIGGER = "orchestrationTrigger"
ACTIVITY_TRIGGER = "activityTrigger"
ENTITY_TRIGGER = "entityTrigger"
EVENT_GRID_TRIGGER = "eventGridTrigger"
TIMER_TRIGGER = "timerTrigger"
BLOB_TRIGGER = "blobTrigger"
QUEUE_TRIGGER = "queueTrigger"
DURABLE_CLIENT = "durableClient"


class AppLoadError(Exception):
    """The app cannot be loaded or indexed; the message says why."""


@dataclass
class FunctionInfo:
    """One indexed function: its name, trigger binding, other bindings and the callable."""

    name: str
    trigger_type: str
    trigger: dict[str, Any]
    bindings: list[dict[str, Any]]
    func: Callable[..., Any]
    is_async: bool
    params: list[str] = field(default_factory=list)

    @property
    def trigger_param(self) -> str:
        """The parameter name the trigger value is passed under."""
        return str(self.trigger["name"])

    @property
    def durable_name(self) -> str:
        """The name orchestrations call it by: the trigger's ``activity``/``orchestration``/``entityName``, else
        the function name.

        The Durable extension registers activities, orchestrators and entities under the name given
        in their trigger attribute when there is one.
        """
        return str(self.trigger.get("activity") or self.trigger.get("orchestration")
                    or self.trigger.get("entityName") or self.name)

    def input_bindings(self, binding_type: str) -> list[dict[str, Any]]:
        """Non-trigger input bindings of one type (e.g. ``durableClient``)."""
        return [b for b in self.bindings if b.get("type") == binding_type]


@dataclass
class FunctionIndex:
    """All functions of an app, by kind."""

    app_path: Path
    functions: dict[str, FunctionInfo]

    def of_type(self, trigger_type: str) -> list[FunctionInfo]:
        """Functions whose trigger has this type."""
        return [f for f in self.functions.values() if f.trigger_type == trigger_type]

    def get(self, name: str, trigger_type: str | None = None) -> FunctionInfo | None:
        """A function by name, optionally only if its trigger has this type."""
        fn = self.functions.get(name)
        if fn is None or (trigger_type is not None and fn.trigger_type != trigger_type):
            return None
        return fn

    def entity(self, name: str) -> FunctionInfo | None:
        """An entity function by its entity name, in any case (entity ids carry the name in lower case)."""
        for fn in self.functions.values():
            if fn.trigger_type == ENTITY_TRIGGER and fn.durable_name.lower() == name.lower():
                return fn
        return None

    def durable(self, name: str, trigger_type: str) -> FunctionInfo | None:
        """An activity or orchestrator by the name orchestrations use for it."""
        for fn in self.functions.values():
            if fn.trigger_type == trigger_type and fn.durable_name == name:
                return fn
        return None


def _plain(value: Any) -> Any:
    """Turn enum values from the decorators' binding dicts into plain JSON values."""
    if hasattr(value, "value") and not isinstance(value, (str, int, float, bool)):
        return value.value
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def load_module(app_path: Path, module_name: str | None = None) -> Any:
    """Import the app module from its file, with its folder on ``sys.path`` (as the worker does).

    The module is registered under ``module_name``, by default the file's stem as the worker
    names it; another name lets two apps both called ``function_app.py`` live in one process.
    """
    if not app_path.is_file():
        raise AppLoadError(f"app file not found: {app_path}")
    folder = str(app_path.parent.resolve())
    if folder not in sys.path:
        sys.path.insert(0, folder)
    module_name = module_name or app_path.stem
    spec = importlib.util.spec_from_file_location(module_name, app_path)
    if spec is None or spec.loader is None:
        raise AppLoadError(f"cannot import {app_path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # the user's module failed at import: say so with its error
        raise AppLoadError(f"importing {app_path} failed: {type(exc).__name__}: {exc}") from exc
    return module


def find_app(module: Any) -> FunctionRegister:
    """Find the single FunctionRegister instance in the module, whatever its variable name."""
    apps = [v for v in vars(module).values() if isinstance(v, FunctionRegister)]
    unique = list({id(a): a for a in apps}.values())
    if not unique:
        raise AppLoadError(f"no FunctionApp/DFApp instance found in {module.__name__}")
    if len(unique) > 1:
        raise AppLoadError(f"multiple FunctionApp instances are defined in {module.__name__}; define one")
    return unique[0]


_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,127}$")


def index_app(app_path: Path, module_name: str | None = None) -> FunctionIndex:
    """Load the app (see ``load_module`` for ``module_name``) and index every function by its trigger and bindings."""
    module = load_module(app_path, module_name)
    app = find_app(module)
    functions: dict[str, FunctionInfo] = {}
    for fn in app.get_functions():
        name = fn.get_function_name()
        if not name or not _NAME_RE.match(name):
            raise AppLoadError(f"invalid function name {name!r}")
        if name.lower() in (n.lower() for n in functions):
            raise AppLoadError(f"function name {name!r} is defined twice")
        bindings = [_plain(b) for b in fn.get_bindings_dict()["bindings"]]
        triggers = [b for b in bindings if str(b.get("type", "")).endswith("Trigger")]
        if len(triggers) != 1:
            raise AppLoadError(f"function {name!r} must have exactly one trigger, found {len(triggers)}")
        user_func = fn.get_user_function()
        target = inspect.unwrap(user_func) if not hasattr(user_func, "orchestrator_function") else user_func
        try:
            params = list(inspect.signature(target).parameters)
        except (TypeError, ValueError):
            params = []
        functions[name] = FunctionInfo(
            name=name,
            trigger_type=str(triggers[0]["type"]),
            trigger=triggers[0],
            bindings=[b for b in bindings if b is not triggers[0]],
            func=user_func,
            is_async=inspect.iscoroutinefunction(user_func),
            params=params,
        )
    return FunctionIndex(app_path=app_path, functions=functions)


class FunctionContext:
    """The minimal ``func.Context`` the worker passes to a function that names a parameter ``context`` (every
    trigger devhost runs builds it the same way)."""

    def __init__(self, name: str) -> None:
        self.invocation_id = str(uuid.uuid4())
        self.function_name = name
        self.function_directory = ""
        self.trace_context = None
        self.retry_context = None
