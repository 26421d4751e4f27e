"""`GET /v1/realtime?intent=transcription`: live transcription over OpenAI's Realtime protocol.

Before the upgrade the route admits the connection, checking in this order
`?intent=` (transcription only), a browser's Origin (the server's own or one of
CORS_ALLOW_ORIGINS: browsers apply no CORS to websockets), RATE_LIMIT (shared
with the client's HTTP requests), the API key (the HTTP
middleware does not see websockets; `presented_key` reads `Authorization: Bearer`
or the `openai-insecure-api-key.<key>` subprotocol browsers must use), then the live
service's own checks: live transcription is on, the server is not shutting down,
a session slot is free (MAX_LIVE_SESSIONS). A refusal is a domain error: counted in
/metrics like a refused upload, and answered as a plain HTTP response in OpenAI's
error shape with the status, code, message and Retry-After `app.service.errors`
gives it. After the upgrade, client events feed a `LiveSession` and its events go
back as server events; every malformed event is answered with an `error` event.
The session ends when the client leaves, after LIVE_IDLE_TIMEOUT_S without a valid
client event, after LIVE_MAX_SESSION_S, or past MAX_AUDIO_DURATION_S of audio.
Audio and text live only in this connection's memory.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import secrets
from typing import Any
from urllib.parse import urlsplit

import msgspec
import structlog
from litestar import WebSocket, websocket
from litestar.exceptions import WebSocketDisconnect

from app.api.compat_schemas import OpenAIError, OpenAIErrorBody
from app.api.errors import count_refusal
from app.api.realtime.protocol import (
    BETA_UPDATE,
    GA_UPDATE,
    KEEP_EVENT,
    ProtocolError,
    error_event,
    render,
    session_event,
    task_created_event,
    updated_config,
)
from app.api.security import ConnectionRateLimit, KeyRing, presented_key
from app.clock import Clock
from app.service import TranscriptionService
from app.service.errors import (
    ErrorView,
    InvalidInputError,
    OriginNotAllowedError,
    RateLimitedError,
    UnauthorizedError,
    describe,
)
from app.service.live import OPENAI_LIVE_MODELS, KeptSession, LiveService
from app.transcription.live.announce import Announcer
from app.transcription.live.audio import SpeechScorer
from app.transcription.live.events import LiveEvent
from app.transcription.live.limits import AudioLimitError, BufferFullError
from app.transcription.live.session import LiveConfig, LiveSession

__all__ = ["RealtimeRoute", "realtime_route"]

log = structlog.get_logger(__name__)

# One append may carry at most this much base64 (OpenAI allows 15 MiB).
MAX_APPEND_CHARS = 15 * 1024 * 1024
# Larger appends are decoded in a thread (a 15 MiB one takes the loop ~20 ms).
DECODE_ON_LOOP_CHARS = 256 * 1024
NOTHING = "nothing_to_keep"
_decoder = msgspec.json.Decoder()
_encoder = msgspec.json.Encoder()


class RealtimeRoute:
    """The route's collaborators: the live service, the batch service, keys and the clock."""

    def __init__(
        self,
        live: LiveService,
        service: TranscriptionService,
        *,
        api_keys: tuple[str, ...],
        clock: Clock,
        rate_limit: ConnectionRateLimit | None = None,
    ) -> None:
        self.live = live
        self.service = service
        self.keys = KeyRing(api_keys) if api_keys else None
        self.clock = clock
        self.rate_limit = rate_limit

    async def admit(self, socket: WebSocket[Any, Any, Any]) -> str | None:
        """Take a session slot for this connection; the key's owner id (None without API keys).

        Raises the domain error that refuses it: RateLimitedError, UnauthorizedError,
        or whatever `LiveService.open_session` raises.
        """
        intent = socket.query_params.get("intent")
        if intent not in (None, "transcription"):
            raise InvalidInputError(
                "this server only transcribes: connect with ?intent=transcription", param="intent"
            )
        if not self._origin_allowed(socket):
            raise OriginNotAllowedError()
        if self.rate_limit is not None:
            wait_s = await self.rate_limit.retry_after(socket.scope)
            if wait_s is not None:
                raise RateLimitedError(wait_s)
        owner = self._owner(socket)
        self.live.open_session(self.service)
        return owner

    def _origin_allowed(self, socket: WebSocket[Any, Any, Any]) -> bool:
        """A browser's Origin must be this server's own or one of CORS_ALLOW_ORIGINS.

        Browsers do not apply CORS to websockets, so without this check any site a
        user visits could open a session on a server without keys. Clients that are
        not browsers send no Origin and are not concerned.
        """
        origin = socket.headers.get("origin")
        if origin is None:
            return True
        allowed = self.live.settings.cors_allow_origins
        if "*" in allowed or origin.rstrip("/") in allowed:
            return True
        return urlsplit(origin).netloc.lower() == socket.headers.get("host", "").lower()

    def _owner(self, socket: WebSocket[Any, Any, Any]) -> str | None:
        if self.keys is None:
            return None
        presented = presented_key(socket.scope)
        owner = self.keys.identify(presented)
        if owner is None:
            raise UnauthorizedError(key_given=presented is not None)
        return owner

    async def refuse(self, socket: WebSocket[Any, Any, Any], refusal: ErrorView) -> None:
        """Count a refused session like any refused upload and answer it before the upgrade."""
        log.info("live_session_refused", status=refusal.status, reason=refusal.code)
        count_refusal(self.service, refusal)
        if refusal.reason is not None:
            self.live.metrics.session_refused(refusal.reason)
        await _refuse(socket, refusal)


def _subprotocols(socket: WebSocket[Any, Any, Any]) -> list[str]:
    return [str(p) for p in socket.scope.get("subprotocols", [])]


async def _refuse(socket: WebSocket[Any, Any, Any], refusal: ErrorView) -> None:
    """Answer the upgrade request with a plain HTTP error in OpenAI's shape.

    Where the server cannot send an HTTP answer to a websocket request, the
    connection is closed with 1008 (policy violation) and the message as reason.
    """
    await socket.receive()  # websocket.connect
    if "websocket.http.response" not in (socket.scope.get("extensions") or {}):
        await socket.close(code=1008, reason=refusal.message[:120])
        return
    error = OpenAIError(
        message=refusal.message,
        type="invalid_request_error",
        code=refusal.code,
        param=refusal.param,
    )
    body = _encoder.encode(OpenAIErrorBody(error=error))
    headers = [(b"content-type", b"application/json")]
    headers += [
        (name.lower().encode("latin-1"), value.encode("latin-1"))
        for name, value in (refusal.headers or {}).items()
    ]
    await socket.send(
        {"type": "websocket.http.response.start", "status": refusal.status, "headers": headers}
    )
    await socket.send({"type": "websocket.http.response.body", "body": body, "more_body": False})


class _Connection:
    """One accepted session: the receive loop, the pass runner and one sender."""

    def __init__(
        self,
        route: RealtimeRoute,
        socket: WebSocket[Any, Any, Any],
        scorer: SpeechScorer,
        *,
        owner: str | None,
    ) -> None:
        self.route = route
        self.socket = socket
        self.owner = owner
        self.beta = socket.headers.get("openai-beta", "").startswith("realtime")
        self.session_id = "sess_" + secrets.token_hex(10)
        self._send_lock = asyncio.Lock()
        self._last_event = route.clock.monotonic()
        self.session = LiveSession(
            LiveConfig(final_model=route.live.final_model),
            run_pass=route.live.run_pass,
            # A turn the detector opened is announced once it has a word (no empty item).
            emit=Announcer(self.emit),
            clock=route.clock,
            scorer=scorer,
            observer=route.live.metrics,
            limits=route.live.limits,
        )
        # The last kept task and how many completed turns it holds: keeping again
        # without a new turn answers with the same task instead of storing another.
        self._kept: KeptSession | None = None

    async def send(self, payload: dict[str, Any]) -> None:
        async with self._send_lock:
            await self.socket.send_data(_encoder.encode(payload).decode(), mode="text")

    async def emit(self, event: LiveEvent) -> None:
        for payload in render(event):
            await self.send(payload)

    async def serve(self) -> str:
        """Run the session; the outcome for /metrics."""
        live = self.route.live
        config = self.session.config
        await self.send(session_event("created", self.session_id, config, live.model, beta=False))
        runner = asyncio.create_task(self.session.run(), name="live-passes")
        receiver = asyncio.create_task(self._receive_loop(), name="live-receive")
        watchdog = asyncio.create_task(self._watch(), name="live-deadlines")
        try:
            done, _ = await asyncio.wait(
                {receiver, watchdog, runner}, return_when=asyncio.FIRST_COMPLETED
            )
            if runner in done:  # the runner only ends by failing: sending to a client gone
                runner.result()
            return (receiver if receiver in done else watchdog).result()
        finally:
            for task in (runner, receiver, watchdog):
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.gather(runner, receiver, watchdog)

    async def _receive_loop(self) -> str:
        while True:
            try:
                text = await self.socket.receive_data(mode="text")
            except WebSocketDisconnect:
                return "closed"
            try:
                followed = await self._handle(text)
            except AudioLimitError as exc:
                await self.send(error_event(exc.message, code="session_audio_limit"))
                return "audio_limit"
            if followed:
                # Only a valid event (with audio, for an append) keeps the session alive.
                self._last_event = self.route.clock.monotonic()

    async def _watch(self) -> str:
        """End the session at LIVE_MAX_SESSION_S, or after LIVE_IDLE_TIMEOUT_S without an event.

        Reads the route's clock, so tests move time instead of waiting for it. A
        session whose turns are still being transcribed is not idle: its client waits.
        """
        settings, clock = self.route.live.settings, self.route.clock
        ends_at = clock.monotonic() + settings.live_max_session_s
        idle_s = settings.live_idle_timeout_s
        while True:
            now = clock.monotonic()
            if now >= ends_at:
                message = "this session reached the server's maximum length"
                await self.send(error_event(message, code="session_expired"))
                return "expired"
            idle_at = self._last_event + idle_s
            if now >= idle_at:
                if not self.session.busy:
                    message = f"no client event for {idle_s:g} s"
                    await self.send(error_event(message, code="idle_timeout"))
                    return "idle"
                self._last_event = now  # wait another idle period for the turns to finish
                idle_at = now + idle_s
            await clock.sleep(min(ends_at, idle_at) - now)

    async def _handle(self, text: str | bytes) -> bool:
        """Follow one client event; False when it was answered with an `error` event."""
        try:
            event = _decoder.decode(text)
        except (msgspec.DecodeError, RecursionError):
            await self.send(error_event("the message is not JSON", code="invalid_json"))
            return False
        if not isinstance(event, dict):
            await self.send(error_event("an event must be a JSON object", code="invalid_json"))
            return False
        client_event = event.get("event_id") if isinstance(event.get("event_id"), str) else None
        try:
            return await self._dispatch(event)
        except ProtocolError as exc:
            error = error_event(
                exc.message, code=exc.code, param=exc.param, client_event=client_event
            )
        except (AudioLimitError, asyncio.CancelledError):
            raise
        except Exception as exc:  # a shape nobody foresaw: answered, and the session goes on
            log.warning("live_event_rejected", error=type(exc).__name__)
            error = error_event(
                "the event has a value this server cannot use",
                code="invalid_value",
                client_event=client_event,
            )
        await self.send(error)
        return False

    async def _dispatch(self, event: dict[str, Any]) -> bool:
        """Follow a decoded event; whether it counts as activity (an append needs audio)."""
        kind = event.get("type")
        if kind == "input_audio_buffer.append":
            audio = await _audio_of(event)
            try:
                await self.session.append(audio)
            except BufferFullError as exc:
                raise ProtocolError(exc.message, code="input_audio_buffer_full") from None
            return bool(audio)
        elif kind in (GA_UPDATE, BETA_UPDATE):
            await self._update(event, beta=kind == BETA_UPDATE)
        elif kind == "input_audio_buffer.commit":
            if not await self.session.commit():
                raise ProtocolError(
                    "the input audio buffer holds less than 100 ms of audio",
                    code="input_audio_buffer_commit_empty",
                )
        elif kind == "input_audio_buffer.clear":
            await self.session.clear()
        elif kind == KEEP_EVENT:
            await self._keep()
        else:
            raise ProtocolError(
                f"unknown or unsupported event type {str(kind)[:60]!r} (this server only "
                "transcribes)",
                code="unknown_event",
                param="type",
            )
        return True

    async def _keep(self) -> None:
        """Keep the session's completed turns as a task of this key; tell the client its id."""
        route = self.route
        turns = await self.session.settled()
        if self._kept is None or self._kept.turns != len(turns):
            try:
                self._kept = await route.live.keep(route.service, self.session, owner=self.owner)
            except Exception as exc:
                refusal = describe(exc)
                if refusal is None:
                    raise
                count_refusal(route.service, refusal)
                raise ProtocolError(refusal.message, code=refusal.code) from None
        if self._kept is None:
            raise ProtocolError("no turn has been transcribed yet: nothing to keep", code=NOTHING)
        await self.send(task_created_event(self._kept.task_id, self._kept.turns))

    async def _update(self, event: dict[str, Any], *, beta: bool) -> None:
        live = self.route.live
        config = updated_config(event, self.session.config, live.models, OPENAI_LIVE_MODELS)
        self.session.configure(config)
        await self.send(
            session_event("updated", self.session_id, config, live.model, beta=beta or self.beta)
        )


async def _audio_of(event: dict[str, Any]) -> bytes:
    audio = event.get("audio")
    if not isinstance(audio, str) or len(audio) > MAX_APPEND_CHARS:
        raise ProtocolError("audio must be base64 PCM16 of at most 15 MiB", param="audio")
    try:
        if len(audio) <= DECODE_ON_LOOP_CHARS:
            return base64.b64decode(audio, validate=True)
        return await asyncio.to_thread(base64.b64decode, audio, validate=True)
    except (binascii.Error, ValueError):
        raise ProtocolError("audio is not valid base64", param="audio") from None


def realtime_route(route: RealtimeRoute) -> Any:
    """The Litestar websocket handler for `route`."""

    @websocket("/v1/realtime")
    async def realtime(socket: WebSocket[Any, Any, Any]) -> None:
        try:
            owner = await route.admit(socket)
        except Exception as exc:
            refusal = describe(exc)
            if refusal is None:
                raise
            await route.refuse(socket, refusal)
            return
        outcome = "failed"
        try:
            offered = _subprotocols(socket)
            await socket.accept(subprotocols="realtime" if "realtime" in offered else None)
            log.info("live_session_started")
            route.live.warm_up()
            scorer = await route.live.scorer()
            outcome = await _Connection(route, socket, scorer, owner=owner).serve()
        except (WebSocketDisconnect, OSError):  # OSError: uvicorn's ClientDisconnected on send
            outcome = "closed"
        finally:
            route.live.close(outcome)
            with contextlib.suppress(Exception):
                await socket.close()

    return realtime
