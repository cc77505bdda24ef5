"""``mlops run <id> --follow``: the run's stages, live, until it ends (bounded, Ctrl-C safe)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.live import Live

from mlops.vocabulary import ACTIVE_RUNTIME_STATUSES

from .client import ApiCallError
from .views import run_view

# a connection error or a 5xx while following is retried this many times in a row before giving up: a
# deployment's restart or a dropped connection should not end a long watch
MAX_FAILED_POLLS = 3
NOT_FOUND = 404  # a run just queued has no instance until the model's lifecycle starts it: waited for


class FollowTimeout(Exception):
    """The run was still active when the time allowed ran out."""


def follow(fetch: Callable[[], dict[str, Any]], console: Console, interval: float, timeout: float,
           sleep: Callable[[float], None] = time.sleep) -> dict[str, Any]:
    """Poll ``fetch`` every ``interval`` s until the run is no longer active; its last document.

    On a terminal the run's view is redrawn in place (rich ``Live``); in a pipe or a log each
    stage's change of state is printed once, as a line. A 404 before the run was first seen is a run
    that is queued and not started yet: waited for. At most ``ceil(timeout / interval) + 1`` polls;
    FollowTimeout after them. KeyboardInterrupt goes to the caller, with the live view closed.
    """
    polls = math.ceil(timeout / interval) + 1
    seen: set[tuple[str, str]] = set()
    started = told_queued = False
    with Live(console=console, auto_refresh=False, transient=False) if console.is_terminal else _NoLive() as live:
        failures = 0
        for n in range(polls):
            try:
                body = fetch()
            except ApiCallError as exc:
                if exc.status == NOT_FOUND and not started:
                    if not told_queued:
                        told_queued = True
                        console.print("the run has not started: queued behind the model's current action, or no "
                                      "run has this id; waiting", highlight=False)
                elif (exc.status is not None and exc.status < 500) or failures >= MAX_FAILED_POLLS:
                    raise
                else:
                    failures += 1
                    console.print(f"[yellow]{exc.message}; trying again[/]")
            else:
                if not started and not isinstance(live, Live):
                    console.print(f"following {body['kind']} {body['id']} ({body['model']})", highlight=False)
                started = True
                failures = 0
                if isinstance(live, Live):
                    live.update(run_view(body), refresh=True)
                else:
                    _print_changes(console, body, seen)
                if body["status"] not in ACTIVE_RUNTIME_STATUSES:
                    return body
            if n + 1 < polls:
                sleep(interval)
    raise FollowTimeout(f"still active after {timeout:g} s" if started else f"not started after {timeout:g} s")


def _print_changes(console: Console, body: dict[str, Any], seen: set[tuple[str, str]]) -> None:
    for stage in body["stages"]:
        key = (stage["name"], stage["state"])
        if key not in seen:
            seen.add(key)
            console.print(f"  {(stage['ended'] or stage['started'] or '')[11:19]:<8} {stage['name']}: "
                          f"{stage['state']}", markup=False, highlight=False)


class _NoLive:
    """Stands in for ``Live`` when the output is not a terminal."""

    def __enter__(self) -> _NoLive:
        return self

    def __exit__(self, *exc: object) -> None:
        return None
