"""Being told when a human is needed: what each notice says, as an event and as a chat message.

Four moments need a person: a run waits for approval (it waits up to the policy's timeout, then is rejected),
a release or a rollback moved live traffic back to an earlier version, the monitor found drift, and the monitor
found the champion's performance on ground truth decayed. Each goes out
as an event on the app's Event Grid topic (Event Grid's schema, one event type per kind, documented in
docs/operator.md) and, when ``MLOPS_NOTIFY_WEBHOOK_URL`` is set, as a message to an incoming webhook. The
message's ``text`` is what Slack's incoming webhooks and Teams' incoming webhooks (and Power Automate's
"post to a channel when a webhook request is received") both display. Sending is best effort: a failure is
logged and never changes the run.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from .contracts import Notice
from .events import APP_DRIFT_EVENT_TYPE, APP_PERFORMANCE_EVENT_TYPE


class NoticeKind(StrEnum):
    """Why someone is told."""

    APPROVAL_REQUIRED = "approval_required"
    ROLLED_BACK = "rolled_back"
    DRIFT_DETECTED = "drift_detected"
    PERFORMANCE_DEGRADED = "performance_degraded"


MONITOR_FINDINGS = frozenset({NoticeKind.DRIFT_DETECTED, NoticeKind.PERFORMANCE_DEGRADED})  # not runs: model pages

EVENT_TYPES = {
    NoticeKind.APPROVAL_REQUIRED: "MLOps.Run.ApprovalRequired",
    NoticeKind.ROLLED_BACK: "MLOps.Model.RolledBack",
    NoticeKind.DRIFT_DETECTED: APP_DRIFT_EVENT_TYPE,  # the monitor's own drift event: published once, by it
    NoticeKind.PERFORMANCE_DEGRADED: APP_PERFORMANCE_EVENT_TYPE,  # likewise the monitor's performance event
}
_TITLES = {
    NoticeKind.APPROVAL_REQUIRED: "{model}: run {run_id} waits for approval",
    NoticeKind.ROLLED_BACK: "{model}: live traffic rolled back ({run_id})",
    NoticeKind.DRIFT_DETECTED: "{model}: drift detected on v{version}",
    NoticeKind.PERFORMANCE_DEGRADED: "{model}: performance of v{version} degraded on ground truth",
}


def links(notice: Notice, public_url: str | None) -> dict[str, str]:
    """Where to look and act: the run in the API and the dashboard, and for an approval the approve/reject calls
    (they need the operator role, and the caller's own function key: none is ever put in a message)."""
    if not public_url:
        return {}
    base = public_url.rstrip("/")
    if notice.kind in MONITOR_FINDINGS:  # the monitor's finding, not a run: the model's page
        return {"model": f"{base}/api/models/{notice.model}", "dashboard": f"{base}/api/dashboard"}
    found = {"run": f"{base}/api/runs/{notice.run_id}", "dashboard": f"{base}/api/dashboard"}
    if notice.kind == NoticeKind.APPROVAL_REQUIRED:
        found |= {"approve": f"POST {base}/api/runs/{notice.run_id}/approve",
                  "reject": f"POST {base}/api/runs/{notice.run_id}/reject"}
    return found


def event_data(notice: Notice, public_url: str | None) -> dict[str, Any]:
    """The event's ``data``: the notice and its links."""
    return {"model": notice.model, "version": notice.version, "run_id": notice.run_id, "reason": notice.reason,
            **notice.detail, "links": links(notice, public_url)}


def subject(notice: Notice) -> str:
    """The event's subject: the model and the run (the drift monitor's tick), so subscriptions can filter by
    prefix."""
    return f"models/{notice.model}/runs/{notice.run_id}"


def message(notice: Notice, public_url: str | None) -> dict[str, Any]:
    """The webhook body: a title line, the reason, and the links, as ``text``."""
    kind = NoticeKind(notice.kind)
    title = _TITLES[kind].format(model=notice.model, run_id=notice.run_id, version=notice.version or "?")
    lines = [f"**{title}**", notice.reason]
    lines += [f"{name}: {url}" for name, url in links(notice, public_url).items()]
    return {"text": "\n\n".join(lines), "kind": str(kind), "model": notice.model, "run_id": notice.run_id}
