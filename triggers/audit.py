"""The audit trail: who did what to which target, when and why (operator actions and alerts)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from adapters import runtime


async def record(who: str, roles: Iterable[str], action: str, target: str, reason: str,
                 result: dict[str, Any]) -> str:
    """Write one audit entry; returns its id."""
    entry_id = uuid.uuid4().hex[:12]
    entry = {"id": entry_id, "who": who, "roles": list(roles), "what": action, "target": target, "why": reason,
             "when": datetime.now(UTC).isoformat(), "result": result}
    # Blob I/O: off the event loop, which also serves the host's own HTTP API.
    await asyncio.to_thread(runtime.control().record_audit, entry)
    return entry_id
