"""Notices out (``mlops.notices``): an event on the app's topic and a message to an incoming webhook.

Both are best effort, each in its own try: a topic or receiver that is down is logged with the reason and
never fails the run that sent the notice (the orchestrator also ignores a failed notify activity).
"""

from __future__ import annotations

import logging
from typing import Any

import requests

from mlops import notices
from mlops.contracts import Notice, Notified

log = logging.getLogger("mlops.notify")
WEBHOOK_TIMEOUT_SECONDS = 10


class Notifier:
    """Sends notices to the topic (``publisher``, if any) and the webhook (``webhook_url``, if any)."""

    def __init__(self, publisher: Any, webhook_url: str | None, public_url: str | None) -> None:
        self.publisher = publisher  # adapters.eventgrid.TopicPublisher or None
        self.webhook_url = webhook_url
        self.public_url = public_url

    def send(self, notice: Notice, *, event: bool = True) -> Notified:
        """Send ``notice``; ``event=False`` when its event is already published (the monitor's drift event)."""
        return Notified(event=self._event(notice) if event else "off", webhook=self._webhook(notice))

    def _event(self, notice: Notice) -> str:
        if self.publisher is None:
            return "off"
        try:
            self.publisher.notice(notices.EVENT_TYPES[notices.NoticeKind(notice.kind)], notices.subject(notice),
                                  notices.event_data(notice, self.public_url))
        except Exception as exc:
            log.warning("the %s event for %s was not published: %s", notice.kind, notice.run_id, exc,
                        extra={"model": notice.model, "run_id": notice.run_id})
            return f"failed: {type(exc).__name__}: {exc}"[:300]
        return "sent"

    def _webhook(self, notice: Notice) -> str:
        if not self.webhook_url:
            return "off"
        try:
            resp = requests.post(self.webhook_url, json=notices.message(notice, self.public_url),
                                 timeout=WEBHOOK_TIMEOUT_SECONDS)
            resp.raise_for_status()
        except Exception as exc:  # the receiver's problem, never the run's; the URL may hold a token: not logged
            log.warning("the %s message for %s was not delivered: %s", notice.kind, notice.run_id,
                        type(exc).__name__, extra={"model": notice.model, "run_id": notice.run_id})
            return f"failed: {type(exc).__name__}"
        return "sent"
