"""/v1/realtime refusals: a domain error each, answered before the upgrade and counted."""

from __future__ import annotations

import math
from typing import Any

import msgspec
from litestar import Litestar
from prometheus_client.parser import text_string_to_metric_families

from app.service import TranscriptionService
from app.service.live import SESSION_RETRY_AFTER_S, LiveService
from tests.api.realtime.test_route import KEY, client_and_service

PATH = "/v1/realtime"


class Refusal(msgspec.Struct):
    """What a client that can read an HTTP answer to its upgrade request sees."""

    status: int
    headers: dict[str, str]
    error: dict[str, Any]


async def upgrade(
    app: Litestar,
    *,
    headers: tuple[tuple[str, str], ...] = (),
    subprotocols: tuple[str, ...] = (),
    query: bytes = b"intent=transcription",
) -> Refusal:
    """Ask `app` for the live upgrade on a server that can answer it with plain HTTP."""
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "websocket.connect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "websocket",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "scheme": "ws",
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 40000),
        "root_path": "",
        "path": PATH,
        "raw_path": PATH.encode(),
        "query_string": query,
        "headers": [(name.encode(), value.encode()) for name, value in headers],
        "subprotocols": list(subprotocols),
        "extensions": {"websocket.http.response": {}},
        "state": {},
    }
    await app(scope, receive, send)  # type: ignore[arg-type]
    start, body = sent
    assert start["type"] == "websocket.http.response.start", sent
    assert body["type"] == "websocket.http.response.body", sent
    answer = {name.decode(): value.decode() for name, value in start["headers"]}
    return Refusal(start["status"], answer, msgspec.json.decode(body["body"])["error"])


def counted(service: TranscriptionService, name: str, reason: str) -> float:
    """One counter's value for `reason` in the service's /metrics text (0 when absent)."""
    for family in text_string_to_metric_families(service.metrics.render().decode()):
        for sample in family.samples:
            if sample.name == name and sample.labels == {"reason": reason}:
                return float(sample.value)
    return 0.0


def app_of(**overrides: Any) -> tuple[Litestar, TranscriptionService, LiveService]:
    """The route's app (not started: refusals come before anything runs)."""
    test_client, service, live = client_and_service(**overrides)
    return test_client.app, service, live


def assert_shape(refusal: Refusal, status: int, code: str) -> None:
    """OpenAI's error body, as the SDKs read it, with the expected status and code."""
    assert refusal.status == status
    assert refusal.headers["content-type"] == "application/json"
    assert refusal.error["type"] == "invalid_request_error"
    assert refusal.error["code"] == code
    assert refusal.error["param"] is None
    assert refusal.error["message"]


async def test_a_missing_or_wrong_key_is_401_and_counted_as_unauthorized() -> None:
    """No key, or a wrong one (header or browser subprotocol): 401 invalid_api_key, counted."""
    app, service, _ = app_of(api_keys=(KEY,))
    missing = await upgrade(app)
    assert_shape(missing, 401, "invalid_api_key")
    assert missing.error["message"].startswith("this server requires an API key")
    assert "www-authenticate" in missing.headers
    wrong = await upgrade(app, subprotocols=("realtime", "openai-insecure-api-key.wrong-key"))
    assert_shape(wrong, 401, "invalid_api_key")
    assert wrong.error["message"] == "the API key is not valid"
    bearer = await upgrade(app, headers=(("authorization", "Bearer wrong-key"),))
    assert bearer.status == 401
    assert counted(service, "whisper_api_uploads_rejected_total", "unauthorized") == 3
    assert counted(service, "whisper_api_live_sessions_refused_total", "unauthorized") == 3


async def test_live_off_is_403_live_disabled_and_counted() -> None:
    """MAX_LIVE_SESSIONS=0: 403 live_disabled, counted under live_disabled."""
    app, service, _ = app_of(max_live_sessions=0)
    assert_shape(await upgrade(app), 403, "live_disabled")
    assert counted(service, "whisper_api_uploads_rejected_total", "live_disabled") == 1
    assert counted(service, "whisper_api_live_sessions_refused_total", "live_disabled") == 1


async def test_every_slot_taken_is_429_with_the_live_retry_after_and_counted() -> None:
    """MAX_LIVE_SESSIONS open: 429 too_many_sessions, Retry-After SESSION_RETRY_AFTER_S."""
    app, service, live = app_of(max_live_sessions=1)
    live.open_session(service)
    refusal = await upgrade(app)
    assert_shape(refusal, 429, "too_many_sessions")
    assert refusal.headers["retry-after"] == str(SESSION_RETRY_AFTER_S)
    assert "at most 1 live session" in refusal.error["message"]
    assert live.active == 1
    assert counted(service, "whisper_api_uploads_rejected_total", "too_many_sessions") == 1
    assert counted(service, "whisper_api_live_sessions_refused_total", "too_many_sessions") == 1


async def test_shutting_down_is_503_with_the_services_retry_after_and_counted() -> None:
    """While draining: 503 shutting_down with the Retry-After every upload gets, counted."""
    app, service, live = app_of(shutdown_grace_s=12.5)
    service.begin_draining()
    refusal = await upgrade(app)
    assert_shape(refusal, 503, "shutting_down")
    assert refusal.headers["retry-after"] == str(math.ceil(12.5))
    assert live.active == 0
    assert counted(service, "whisper_api_uploads_rejected_total", "shutting_down") == 1


async def test_past_the_rate_limit_is_429_rate_limit_exceeded_and_counted() -> None:
    """RATE_LIMIT spent: 429 rate_limit_exceeded with Retry-After, counted as rate_limited."""
    app, service, _ = app_of(rate_limit="1/minute", max_live_sessions=0)
    assert (await upgrade(app)).status == 403  # within the limit: the next check refuses
    refusal = await upgrade(app)
    assert_shape(refusal, 429, "rate_limit_exceeded")
    assert int(refusal.headers["retry-after"]) >= 1
    assert counted(service, "whisper_api_uploads_rejected_total", "rate_limited") == 1
    assert counted(service, "whisper_api_live_sessions_refused_total", "rate_limited") == 1


async def test_a_session_refused_for_its_key_takes_no_slot() -> None:
    """A connection refused before the slot check leaves the slot free for the next one."""
    app, service, live = app_of(api_keys=(KEY,), max_live_sessions=1)
    assert (await upgrade(app)).status == 401
    assert live.active == 0
    live.open_session(service)
    assert live.active == 1


async def test_a_page_of_another_site_is_403_origin_not_allowed_and_counted() -> None:
    """A browser Origin other than the server's own and CORS_ALLOW_ORIGINS' is refused."""
    app, service, live = app_of()
    foreign = (("host", "127.0.0.1:8000"), ("origin", "http://evil.example"))
    assert_shape(await upgrade(app, headers=foreign), 403, "origin_not_allowed")
    assert live.active == 0
    assert counted(service, "whisper_api_live_sessions_refused_total", "origin_not_allowed") == 1
    listed, _, _ = app_of(cors_allow_origins=("https://app.example.org",), max_live_sessions=0)
    allowed = (("host", "127.0.0.1:8000"), ("origin", "https://app.example.org"))
    assert (await upgrade(listed, headers=allowed)).status == 403  # past the check: live is off
    assert (await upgrade(listed, headers=allowed)).error["code"] == "live_disabled"


async def test_the_servers_own_page_and_clients_without_origin_pass_the_origin_check() -> None:
    """Same origin (Origin's host is the Host header) and no Origin at all are not refused."""
    app, _, _ = app_of(max_live_sessions=0)
    own = (("host", "127.0.0.1:8000"), ("origin", "http://127.0.0.1:8000"))
    assert (await upgrade(app, headers=own)).error["code"] == "live_disabled"
    assert (await upgrade(app, headers=(("host", "x"),))).error["code"] == "live_disabled"


async def test_an_intent_other_than_transcription_is_400() -> None:
    """`?intent=` is this server's to check: only transcription is served."""
    app, service, _ = app_of()
    scope_query = b"intent=conversation"
    refusal = await upgrade(app, query=scope_query)
    assert refusal.status == 400
    assert refusal.error["code"] == "invalid_request"
    assert counted(service, "whisper_api_uploads_rejected_total", "bad_request") == 1
