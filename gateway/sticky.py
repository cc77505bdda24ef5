"""Sticky assignment for an A/B experiment: a unit (a user, a session) always gets the same deployment.

A unit's bucket is the first 8 bytes of SHA-256(``salt|unit``) as a fraction of 2**64; the live deployments, in
name order, take consecutive shares of [0, 1) by their percents. The same unit and salt give the same deployment
wherever the hash is computed (this gateway, or an Azure caller that pins the ``azureml-model-deployment``
header, docs/gateway.md), and a new salt (the next experiment) shuffles the units again. Assignment follows the
weights: over many units each deployment gets its percent of them, which the experiment's sample-ratio check
counts.

Standard library only: the Function App and callers may import it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any

HEADER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,63}$")  # an HTTP header name (a token), up to 64 characters
MAX_SALT = 128
MAX_UNIT = 256  # a longer unit id is not a unit id: the request is assigned at random


class StickyError(ValueError):
    """A sticky setting the gateway refuses (``header`` and ``salt``)."""


def bucket(salt: str, unit: str) -> float:
    """The unit's place in [0, 1) for this salt."""
    digest = hashlib.sha256(f"{salt}|{unit}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def assign(traffic: Mapping[str, int], salt: str, unit: str) -> str | None:
    """The deployment that serves ``unit`` under the live split ``traffic`` (None: nothing takes traffic)."""
    live = sorted((d, p) for d, p in traffic.items() if p > 0)
    if not live:
        return None
    place = bucket(salt, unit) * sum(p for _, p in live)
    for deployment, percent in live:
        place -= percent
        if place < 0:
            return deployment
    return live[-1][0]


def validate_sticky(value: Any) -> dict[str, str] | None:
    """``{"header": ..., "salt": ...}`` checked (StickyError), or None for no stickiness."""
    if value is None:
        return None
    if not isinstance(value, dict) or set(value) != {"header", "salt"}:
        raise StickyError('sticky must be {"header": <request header naming the unit>, "salt": <experiment id>}')
    header, salt = value["header"], value["salt"]
    if not isinstance(header, str) or not HEADER_NAME.match(header):
        raise StickyError(f"sticky.header must be an HTTP header name (letters, digits, '-'; up to 64), got {header!r}")
    if not isinstance(salt, str) or not 0 < len(salt) <= MAX_SALT:
        raise StickyError(f"sticky.salt must be a string of 1 to {MAX_SALT} characters")
    return {"header": header.lower(), "salt": salt}
