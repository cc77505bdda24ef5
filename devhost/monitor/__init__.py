"""The monitor page: one self-contained HTML page over the public Durable HTTP API.

``GET /admin/devhost/monitor`` serves ``page.html`` (inline CSS and script, no build step, nothing
fetched from elsewhere) under a Content-Security-Policy that allows exactly those inline blocks (by
their SHA-256) and calls to this origin. The page lists, inspects and manages instances with the
same ``/runtime/webhooks/durabletask`` routes any client uses, sending the key it was opened with
(``?code=``) as ``x-functions-key``. The route is an admin route: open by default, the master key
with ``--enable-auth`` (see docs/devhost.md, "Monitor page").
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Callable
from importlib import resources

from aiohttp import web

MONITOR_ROUTE = "/admin/devhost/monitor"
_BLOCK = re.compile(r"<(script|style)>(.*?)</\1>", re.DOTALL)


def load_page() -> str:
    """The page's HTML, as shipped in the package (``devhost/monitor/page.html``)."""
    return resources.files(__name__).joinpath("page.html").read_text(encoding="utf-8")


def content_security_policy(html: str) -> str:
    """A CSP that runs the page's own inline ``<script>`` and ``<style>`` blocks (by hash) and nothing else.

    Hashes rather than 'unsafe-inline': an injected block or handler attribute would not run
    (https://developer.mozilla.org/docs/Web/HTTP/Headers/Content-Security-Policy/script-src#unsafe_hash_expressions).
    """
    hashes: dict[str, list[str]] = {"script": [], "style": []}
    for kind, body in _BLOCK.findall(html):
        digest = base64.b64encode(hashlib.sha256(body.encode("utf-8")).digest()).decode()
        hashes[kind].append(f"'sha256-{digest}'")
    if not hashes["script"] or not hashes["style"]:
        raise ValueError("the monitor page must hold one inline <script> and one inline <style> block")
    return ("default-src 'none'; "
            f"script-src {' '.join(hashes['script'])}; style-src {' '.join(hashes['style'])}; "
            "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


class MonitorPage:
    """The handler for ``GET /admin/devhost/monitor``; ``is_admin`` decides who may load it."""

    def __init__(self, is_admin: Callable[[web.Request], bool]) -> None:
        self.is_admin = is_admin
        self.html = load_page()
        self.headers = {
            "Content-Security-Policy": content_security_policy(self.html),
            "X-Content-Type-Options": "nosniff",
            "X-Frame-Options": "DENY",
            "Referrer-Policy": "no-referrer",  # the URL may carry ?code=<master key>
            "Cache-Control": "no-store",
        }

    async def handle(self, request: web.Request) -> web.Response:
        """The page, or 401 when keys are enforced and the master key is missing or wrong."""
        if not self.is_admin(request):
            return web.json_response({"error": "the master key is required (?code=<master key>)"}, status=401,
                                     headers={"Cache-Control": "no-store"})
        return web.Response(text=self.html, content_type="text/html", charset="utf-8", headers=self.headers)
