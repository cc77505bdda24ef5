"""Pure decisions of a release: its stages, which deployment is live, the split at a canary step."""

from __future__ import annotations

from .policy import Release

AB_STAGE = "a/b"


def stage_names(plan: Release) -> list[str]:
    """The release's timeline: deploy, smoke, [shadow], [a/b], one stage per canary step, promote."""
    return (["deploy", "smoke"] + (["shadow"] if plan.shadow.enabled else []) + ([AB_STAGE] if plan.ab.enabled else [])
            + [f"canary {s.traffic_percent}%" for s in plan.steps] + ["promote"])


def live_deployment(traffic: dict[str, int], exclude: str) -> str | None:
    """The deployment serving the most live traffic, other than ``exclude``."""
    live = {d: p for d, p in traffic.items() if d != exclude and p > 0}
    return max(live, key=lambda d: live[d]) if live else None


def canary_split(live: str | None, candidate: str, percent: int) -> dict[str, int]:
    """The split with ``percent`` on the candidate and the rest on the live deployment."""
    if live is None or percent >= 100:
        return {candidate: 100, **({live: 0} if live else {})}
    return {live: 100 - percent, candidate: percent}
