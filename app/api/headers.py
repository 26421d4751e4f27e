"""Headers every response gets: browser protections, and no caching of task state.

Applied as a Litestar `before_send` hook, so they are on every answer, the
router's own 404s and the error handler's included.

The page (web/) and /docs must respect the Content-Security-Policy: scripts,
styles, images, fonts and `fetch` from this origin only; no inline `<script>`,
no inline `style` attributes or `<style>` blocks, no `eval`; the page's audio
player may play `blob:` URLs of the file being uploaded. The page may be framed
by this origin only.
"""

from __future__ import annotations

from typing import Any

from litestar.datastructures import MutableScopeHeaders
from litestar.types import Message, Scope

__all__ = ["CONTENT_SECURITY_POLICY", "NO_STORE_PREFIXES", "add_response_headers"]

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "media-src 'self' blob:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'self'",
    )
)

BROWSER_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "SAMEORIGIN",  # frame-ancestors for browsers without CSP level 2
}

# Routes whose answers carry transcripts, task state or server state: never stored
# by a browser or a shared cache. The UI's static files may be cached.
NO_STORE_PREFIXES = ("/api/", "/v1/", "/asr", "/detect-language", "/healthz", "/readyz", "/metrics")


async def add_response_headers(message: Message, scope: Scope) -> None:
    """Add the browser protections to every response, and `no-store` on the API's."""
    if message["type"] != "http.response.start":
        return
    headers = MutableScopeHeaders.from_message(message)
    for name, value in BROWSER_HEADERS.items():
        headers[name] = value
    path: Any = scope.get("path", "")
    if isinstance(path, str) and path.startswith(NO_STORE_PREFIXES):
        headers["Cache-Control"] = "no-store"
