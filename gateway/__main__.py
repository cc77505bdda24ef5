"""``python -m gateway --port 7081 --state-dir DIR``: run the local scoring gateway (key: $MLOPS_GATEWAY_KEY)."""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

from aiohttp import web

from .server import MAX_MIRRORED_IN_FLIGHT, Gateway, build_app


def main() -> None:
    """Parse options and serve on 127.0.0.1 until SIGINT/SIGTERM."""
    parser = argparse.ArgumentParser(prog="python -m gateway", description=__doc__)
    parser.add_argument("--port", type=int, default=7081)
    parser.add_argument("--state-dir", type=Path, default=Path(".devhost/gateway"))
    parser.add_argument("--key", default=os.environ.get("MLOPS_GATEWAY_KEY"),
                        help="admin and scoring key (header x-gateway-key); default and preferred: $MLOPS_GATEWAY_KEY, "
                             "which other local users cannot read from the process list")
    parser.add_argument("--seed", type=int, default=None, help="seed the traffic router (tests)")
    parser.add_argument("--max-mirrored", type=int, default=MAX_MIRRORED_IN_FLIGHT,
                        help="mirrored requests running or queued at most; beyond it requests are not mirrored")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    gateway = Gateway(args.state_dir, args.key, args.seed, args.max_mirrored)
    print(f"scoring gateway ready on http://127.0.0.1:{args.port}", flush=True)
    web.run_app(build_app(gateway), host="127.0.0.1", port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
