"""``python -m devhost``: run a Python v2 Functions app locally, with Durable Functions and Event Grid."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from .app_loader import AppLoadError
from .config import ConfigError, build_config
from .server import serve
from .subscriptions import SubscriptionError
from .timers import ScheduleError


def main(argv: list[str] | None = None) -> int:
    """Parse options, build the configuration and serve until interrupted."""
    parser = argparse.ArgumentParser(prog="python -m devhost", description=__doc__)
    parser.add_argument("--app", default="function_app.py", type=Path, help="the app file (default function_app.py)")
    parser.add_argument("--port", default=7071, type=int, help="HTTP port (default 7071; 0 picks a free one)")
    parser.add_argument("--state-dir", default=None, type=Path,
                        help="where history and keys live (default .devhost/ next to the app)")
    parser.add_argument("--clock", choices=("real", "virtual"), default="real",
                        help="real time, or a virtual clock that POST /admin/devhost/clock can advance")
    parser.add_argument("--enable-auth", action="store_true",
                        help="enforce function, admin and system keys (as func start --enableAuth); without it, "
                             "as Core Tools, no key is needed (also: the DEVHOST_ENABLE_AUTH=true setting)")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # The Azure SDKs log every HTTP request at INFO; keep that for --log-level DEBUG.
    if args.log_level.upper() != "DEBUG":
        logging.getLogger("azure").setLevel(logging.WARNING)
    try:
        config = build_config(args.app, port=args.port, state_dir=args.state_dir,
                              virtual_clock=args.clock == "virtual", enable_auth=args.enable_auth)
        asyncio.run(serve(config))
    except (ConfigError, AppLoadError, SubscriptionError, ScheduleError, ValueError) as exc:
        print(f"devhost: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"devhost: cannot start: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
