"""Azure ML's rules for an online endpoint's ``traffic`` and ``mirror_traffic``, written once.

The local gateway enforces them on ``PUT /endpoints/{e}/traffic`` (a 400 with the reason) and the
Azure ML platform adapter checks them before it sends a split (a ``PlatformError``), so a split the
gateway takes is one Azure ML takes too. The rules follow
https://learn.microsoft.com/azure/machine-learning/how-to-safely-rollout-online-endpoints and the
endpoint schema (https://learn.microsoft.com/azure/machine-learning/reference-yaml-endpoint-online):

* every deployment named exists on the endpoint;
* a percent is a whole number from 0 to 100: a fraction, a string or a boolean is refused, never rounded;
* live traffic adds up to 100 (or to 0: nothing is served);
* at most one deployment is mirrored, with at most 50 % of the requests;
* a deployment takes live or mirrored traffic, never both.

Standard library only: the Function App imports this module (through ``adapters.azureml``), and it
has none of the gateway's own dependencies.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

MAX_MIRROR_PERCENT = 50  # Azure ML: mirror traffic may not exceed 50 %


class SplitError(Exception):
    """A split Azure ML would refuse; ``field`` names what is wrong (``traffic``, a deployment, ...)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field} {message}")
        self.field = field
        self.message = message


def validate_split(deployments: Collection[str], traffic: Mapping[str, Any], mirror_traffic: Mapping[str, Any]) -> None:
    """Raise SplitError unless Azure ML would take this split; the percents may be any JSON value."""
    for name in [*traffic, *mirror_traffic]:
        if name not in deployments:
            raise SplitError(f"deployment {name!r}", "does not exist on this endpoint")
    for name, pct in {**traffic, **mirror_traffic}.items():
        if not isinstance(pct, int) or isinstance(pct, bool) or not 0 <= pct <= 100:
            raise SplitError(f"percent for {name!r}", f"must be an integer 0..100, got {pct!r}")
    total = sum(traffic.values())
    if traffic and total not in (0, 100):
        raise SplitError("traffic", f"must add up to 100, got {total}")
    mirrored = {name: pct for name, pct in mirror_traffic.items() if pct > 0}
    if len(mirrored) > 1:
        raise SplitError("mirror_traffic", "may name at most one deployment")
    for name, pct in mirrored.items():
        if pct > MAX_MIRROR_PERCENT:
            raise SplitError("mirror_traffic", f"may not exceed {MAX_MIRROR_PERCENT} %, got {pct} for {name!r} "
                                               f"(Azure ML mirrors at most {MAX_MIRROR_PERCENT} % of the requests)")
        if traffic.get(name, 0) > 0:
            raise SplitError(f"deployment {name!r}", "cannot take live and mirrored traffic at once")
