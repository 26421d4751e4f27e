"""Access control for every HTTP surface: forwarded headers, API keys, rate limit, CORS.

Everything here is app-wide Litestar middleware built by `security_middleware(settings)`
and `cors_config(settings)` in `create_app`, so a surface added later (OpenAI's /v1,
/asr, the UI) is covered without doing anything. Order matters and is fixed here:

1. `ForwardedHeadersMiddleware` (only with TRUSTED_PROXIES): remembers the TCP peer,
   then rewrites the client address and scheme from X-Forwarded-For / X-Forwarded-Proto
   or RFC 7239 Forwarded when, and only when, the peer is trusted.
2. The rate limit (only with RATE_LIMIT), keyed by the client address after step 1.
3. `ApiKeyMiddleware` (only with API keys): `Authorization: Bearer <key>` on every
   route that is not public (see `is_public`).

Public routes, open without a key: /healthz, /readyz and /metrics (orchestrators and
scrapers; they hold no content or identities), /docs and the OpenAPI schema, the
UI's static files (route handlers with `opt={PUBLIC_OPT_KEY: True}`), the login
redirect (a browser navigation that cannot carry a bearer token) and /api/v1/privacy
(settings only, so the page can show its privacy notice and say that a key is needed
before anybody uploads).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from litestar import Request
from litestar.config.cors import CORSConfig
from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.middleware.rate_limit import RateLimitConfig, RateLimitMiddleware
from litestar.types import ASGIApp, Receive, Scope, Send
from litestar.types.asgi_types import RawHeaders

from app.api.forwarded import forwarded_request
from app.config import Settings, parse_rate_limit
from app.service.errors import UnauthorizedError

__all__ = [
    "KEY_SUBPROTOCOL",
    "OWNER_STATE_KEY",
    "PUBLIC_OPT_KEY",
    "ApiKeyMiddleware",
    "ConnectionRateLimit",
    "ForwardedHeadersMiddleware",
    "KeyRing",
    "Peer",
    "client_of",
    "cors_config",
    "is_local_client",
    "is_public",
    "owner_of",
    "peer_of",
    "presented_key",
    "rate_limit_config",
    "security_middleware",
]

PUBLIC_OPT_KEY = "public"
# A browser's WebSocket cannot set headers: it sends the key as this subprotocol's suffix.
KEY_SUBPROTOCOL = "openai-insecure-api-key."
PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/metrics", "/api/v1/login", "/api/v1/privacy"})
PUBLIC_PREFIXES = ("/docs",)
PEER_STATE_KEY = "whisper_api.peer"
OWNER_STATE_KEY = "whisper_api.owner"


# ---------------------------------------------------------------- who is asking


@dataclass(frozen=True, slots=True)
class Peer:
    """What the TCP connection itself says, before any forwarded header is believed."""

    address: str | None
    via_trusted_proxy: bool = False
    # The trusted proxy named the client (X-Forwarded-For or Forwarded).
    forwarded_client: bool = False


def _state(scope: Scope) -> dict[str, Any]:
    return scope.setdefault("state", {})


def peer_of(scope: Scope) -> Peer:
    """The connection's peer; without TRUSTED_PROXIES it is simply the client address."""
    recorded = _state(scope).get(PEER_STATE_KEY)
    if isinstance(recorded, Peer):
        return recorded
    client = scope.get("client")
    return Peer(address=client[0] if client else None)


def is_local_client(scope: Scope) -> bool:
    """Whether the real client is on this machine: the TCP peer, never Host or headers.

    Through a trusted proxy the client is the address the proxy forwarded (so a
    proxy on this host does not make everybody local); a trusted proxy that names
    no client leaves it unknown, which is not local.
    """
    peer = peer_of(scope)
    if peer.via_trusted_proxy and not peer.forwarded_client:
        return False
    client = scope.get("client")
    if not client:
        return False
    try:
        return ipaddress.ip_address(client[0]).is_loopback
    except ValueError:
        return False


def owner_of(scope: Scope) -> str | None:
    """The id of the API key that authenticated this request, or None without API keys."""
    owner = _state(scope).get(OWNER_STATE_KEY)
    return owner if isinstance(owner, str) else None


def client_of(scope: Scope) -> str:
    """Who is asking, for the per-client bounds and the fair queue: a hash, never in clear.

    The API key's owner id where keys are required (a key names one client
    wherever it connects from), else the address after the TRUSTED_PROXIES rules.
    Without keys a presented token is not believed: anybody could invent one per upload.
    """
    owner = owner_of(scope)
    if owner is not None:
        return owner
    client = scope.get("client")
    address = client[0] if client else "unknown"
    return "addr-" + hashlib.sha256(b"whisper-api client\0" + address.encode()).hexdigest()[:16]


def is_public(scope: Scope) -> bool:
    """Routes that stay open when API keys are required (see the module docstring)."""
    if scope["route_handler"].opt.get(PUBLIC_OPT_KEY):
        return True
    # The matched route's template, not the raw request path, so that `/healthz/`
    # and `/healthz` are judged alike and no path trick reaches a guarded route.
    template = scope.get("path_template", "")
    return template in PUBLIC_PATHS or any(
        template == prefix or template.startswith(prefix + "/") for prefix in PUBLIC_PREFIXES
    )


# ---------------------------------------------------------------- forwarded headers


class ForwardedHeadersMiddleware(ASGIMiddleware):
    """Believe X-Forwarded-For/-Proto and RFC 7239 Forwarded only from TRUSTED_PROXIES.

    A trusted peer's headers set the scope's client address and scheme (see
    `app.api.forwarded` for how they are read); anybody else's are ignored. The
    real TCP peer is recorded for `is_local_client` and `may_read_logs`.
    """

    scopes = (ScopeType.HTTP, ScopeType.WEBSOCKET)

    def __init__(self, trusted_proxies: Sequence[str]) -> None:
        self._networks = [ipaddress.ip_network(item, strict=False) for item in trusted_proxies]

    def is_trusted(self, host: str | None) -> bool:
        """Whether `host` lies in one of the TRUSTED_PROXIES networks."""
        if not host:
            return False
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in network for network in self._networks)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        """Record the TCP peer; from a trusted proxy, take the client and scheme it names."""
        client = scope.get("client")
        host = client[0] if client else None
        trusted = self.is_trusted(host)
        said = forwarded_request(scope["headers"], self.is_trusted) if trusted else None
        if said is not None and said.client is not None:
            scope["client"] = said.client
        if said is not None and said.scheme is not None:
            websocket = scope["type"] == ScopeType.WEBSOCKET
            scope["scheme"] = said.scheme.replace("http", "ws") if websocket else said.scheme
        _state(scope)[PEER_STATE_KEY] = Peer(
            address=host,
            via_trusted_proxy=trusted,
            forwarded_client=said is not None and said.client is not None,
        )
        await next_app(scope, receive, send)


# ---------------------------------------------------------------- API keys


class KeyRing:
    """The configured API keys, compared in constant time.

    Keys are kept only as SHA-256 digests; a presented token is hashed and compared
    with every digest by `hmac.compare_digest`, so neither the position of the first
    differing character nor the key's length shows in the timing.
    """

    def __init__(self, keys: Sequence[str]) -> None:
        self._digests = [(_digest(key), _owner_id(key)) for key in keys]

    def __len__(self) -> int:
        return len(self._digests)

    def identify(self, token: str | None) -> str | None:
        """The owner id of a valid key, or None; every digest is compared every time."""
        if token is None:
            return None
        presented = _digest(token)
        owner: str | None = None
        for digest, owner_id in self._digests:
            if hmac.compare_digest(presented, digest):
                owner = owner_id
        return owner


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).digest()


def _owner_id(key: str) -> str:
    """A stable, non-secret id for a key (tasks are bound to it); reveals nothing of the key."""
    return "key-" + hashlib.sha256(b"whisper-api task owner\0" + key.encode()).hexdigest()[:16]


def presented_key(scope: Scope) -> str | None:
    """The API key a request or a websocket presents, or None when it presents none.

    `Authorization: Bearer <key>` on both; on a websocket also the
    `openai-insecure-api-key.<key>` subprotocol, the only way a browser's
    WebSocket can send a key (it cannot set headers).
    """
    token = _bearer_token(scope["headers"])
    if token is not None or scope["type"] != ScopeType.WEBSOCKET:
        return token
    for protocol in scope.get("subprotocols", ()):
        if protocol.startswith(KEY_SUBPROTOCOL):
            return protocol[len(KEY_SUBPROTOCOL) :]
    return None


def _bearer_token(headers: RawHeaders) -> str | None:
    """The token of the first Authorization header, where it is a non-empty Bearer one."""
    for name, value in headers:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").strip().partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
            return None
    return None


class ApiKeyMiddleware(ASGIMiddleware):
    """Require `Authorization: Bearer <key>` on every route that is not public.

    On success the key's owner id is put in the scope (`owner_of`), so that tasks
    can be bound to the key that created them. Failures raise UnauthorizedError,
    which the app's one error handler renders in the shape of the surface asked.
    """

    # Only HTTP: the live websocket checks keys itself, before its upgrade (app.api.realtime).
    scopes = (ScopeType.HTTP,)

    def __init__(self, keys: Sequence[str]) -> None:
        self._ring = KeyRing(keys)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        """Let public routes and valid keys through; answer 401 otherwise."""
        if is_public(scope):
            await next_app(scope, receive, send)
            return
        token = presented_key(scope)
        owner = self._ring.identify(token)
        if owner is None:
            # Rendered in the surface's own shape, and counted, by the app's error handler.
            raise UnauthorizedError(key_given=token is not None)
        _state(scope)[OWNER_STATE_KEY] = owner
        await next_app(scope, receive, send)


# ---------------------------------------------------------------- rate limit


class _RateLimitMiddleware(RateLimitMiddleware):
    """Litestar's rate limit, plus Retry-After on its 429 (the OpenAI SDKs honour it)."""

    def create_response_headers(self, cache_object: Any) -> dict[str, str]:
        """The RateLimit-* headers and Retry-After with the seconds until the window resets."""
        headers = super().create_response_headers(cache_object)
        reset = headers.get(self.config.rate_limit_reset_header_key)
        if reset is not None:
            headers["Retry-After"] = str(max(1, int(reset)))
        return headers


def _client_address(request: Request[Any, Any, Any]) -> str:
    """The rate limit's key: the client address after the trusted-proxy rewrite."""
    return request.client.host if request.client else "unknown"


def _should_throttle(request: Request[Any, Any, Any]) -> bool:
    return not is_public(request.scope)


class ConnectionRateLimit:
    """RATE_LIMIT for the live websocket, which Litestar's HTTP middleware never sees.

    Uses the middleware's own bookkeeping (same store, same key per client), so a
    client's HTTP requests and live sessions draw on one budget.
    """

    def __init__(self, config: RateLimitConfig) -> None:
        self._config = config
        self._limiter = _RateLimitMiddleware(app=_never_called, config=config)
        self._lock = asyncio.Lock()

    async def retry_after(self, scope: Scope) -> int | None:
        """None when this connection is within the limit (it is counted); else seconds to wait."""
        app = scope["litestar_app"]
        request = app.request_class(scope)
        if not await self._limiter.should_check_request(request):
            return None
        store = self._config.get_store_from_app(app)
        key = self._limiter.cache_key_from_request(request)
        async with self._lock:
            history = await self._limiter.retrieve_cached_history(key, store)
            if len(history.history) >= self._limiter.max_requests:
                headers = self._limiter.create_response_headers(history)
                return int(headers.get("Retry-After", "1"))
            await self._limiter.set_cached_history(key, history, store)
        return None


async def _never_called(scope: Scope, receive: Receive, send: Send) -> None:
    raise AssertionError("ConnectionRateLimit only keeps the books")


def rate_limit_config(settings: Settings) -> RateLimitConfig | None:
    """RATE_LIMIT (e.g. `60/minute`) per client address on every non-public route."""
    if not settings.rate_limit:
        return None
    unit, count = parse_rate_limit(settings.rate_limit)
    return RateLimitConfig(
        rate_limit=(unit, count),  # type: ignore[arg-type]  # unit is one of RATE_LIMIT_UNITS
        identifier_for_request=_client_address,
        check_throttle_handler=_should_throttle,
        middleware_class=_RateLimitMiddleware,
    )


# ---------------------------------------------------------------- composition


def security_middleware(settings: Settings) -> list[Any]:
    """The app-wide middleware for `settings`, outermost first."""
    middleware: list[Any] = []
    if settings.trusted_proxies:
        middleware.append(ForwardedHeadersMiddleware(settings.trusted_proxies))
    rate_limit = rate_limit_config(settings)
    if rate_limit is not None:
        middleware.append(rate_limit.middleware)
    if settings.api_keys:
        middleware.append(ApiKeyMiddleware(settings.api_keys))
    return middleware


def cors_config(settings: Settings) -> CORSConfig | None:
    """CORS only for CORS_ALLOW_ORIGINS; credentials never together with `*`.

    Listed origins may send credentials (the proxy's session cookie, an
    Authorization header); `*` lets any site read responses, so then the browser
    is told not to send credentials at all.
    """
    origins = list(settings.cors_allow_origins)
    if not origins:
        return None
    allow_all = "*" in origins
    return CORSConfig(
        allow_origins=["*"] if allow_all else origins,
        allow_methods=["GET", "POST", "DELETE", "OPTIONS"],
        # Browser SDKs (OpenAI's) send headers of their own; every header is allowed.
        allow_headers=["*"],
        allow_credentials=not allow_all,
        expose_headers=["Retry-After", "Content-Disposition"],
        max_age=600,
    )
