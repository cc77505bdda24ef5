"""Which deployments of a model can go: the rollback window has ended, or the version was turned down.

A promotion keeps the replaced deployment for ``release.rollback_window_hours`` (the version is
tagged ``release=retired`` and ``retired.keep_until``), so a rollback is a traffic switch. After
that, an idle deployment only costs money (in Azure ML each one holds its own instances), so it
is deleted. A version tagged ``rejected`` (its canary failed) or ``rolled back`` is deleted at
once: it is known bad, and the registry still holds it.

A deployment is deleted only when all of these hold:
  * its name is this app's name for one of the model's registered versions (others are not ours);
  * it is not the champion's deployment, nor the one ``previous`` names while its window runs;
  * it carries no traffic and no mirrored traffic;
  * its version's tags say the release ended as above.

The lifecycle runs the deletion between runs (it is the model's singleton), so a release or a
rollback never sees a deployment vanish under it; a rollback redeploys a version whose
deployment is gone.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime

from .contracts import Removal
from .ports import ModelVersion, Platform, TrafficSplit
from .runs import deployment_name
from .vocabulary import KEEP_UNTIL_TAG, RELEASE_TAG, Alias, ReleaseTag


def due_removals(model: str, deployments: Collection[str], split: TrafficSplit, versions: Sequence[ModelVersion],
                 champion: str | None, now: datetime) -> list[Removal]:
    """The deployments of ``model`` that can be deleted at ``now`` (timezone-aware)."""
    live = {d for d, p in split.traffic.items() if p > 0} | {d for d, p in split.mirror_traffic.items() if p > 0}
    out = []
    for v in versions:
        dep = deployment_name(model, v.version)
        if dep not in deployments or dep in live or v.version == champion:
            continue
        release = v.tags.get(RELEASE_TAG, "")
        if release in (ReleaseTag.REJECTED, ReleaseTag.ROLLED_BACK):
            out.append(Removal(dep, v.version, f"v{v.version} was {release}"))
        elif release == ReleaseTag.RETIRED:
            keep_until = _parse(v.tags.get(KEEP_UNTIL_TAG, ""))
            if keep_until is not None and keep_until <= now:
                out.append(Removal(dep, v.version, f"the rollback window of v{v.version} ended at "
                                                   f"{keep_until.isoformat()}"))
    return out


def plan(platform: Platform, model: str, endpoint: str, now: datetime) -> list[Removal]:
    """What ``due_removals`` says for the model as the platform has it now (reads only)."""
    deployments, split = platform.list_deployments(endpoint), platform.get_traffic(endpoint)
    if all(split.traffic.get(d, 0) > 0 or split.mirror_traffic.get(d, 0) > 0 for d in deployments):
        return []  # every deployment serves: nothing to look up in the registry
    champion = platform.get_alias(model, Alias.CHAMPION)
    return due_removals(model, deployments, split, platform.list_model_versions(model),
                        champion.version if champion else None, now)


def _parse(text: str) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None  # a hand-edited tag: keep the deployment rather than guess
    return parsed if parsed.tzinfo else None
