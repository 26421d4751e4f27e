"""Access control on every surface: trusted proxies, log access, API keys, CORS, rate limit."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar, Request, get
from litestar.testing import AsyncTestClient

from app.api.security import (
    OWNER_STATE_KEY,
    KeyRing,
    client_of,
    cors_config,
    presented_key,
    security_middleware,
)
from app.config import load_settings
from tests.conftest import AppFactory, FromPeer, client_from, make_settings, wav_bytes

KEY_A = "key-a-0123456789abcdef"
KEY_B = "key-b-0123456789abcdef"
AUTHORIZED = "admin@example.org"


def bearer(key: str) -> dict[str, str]:
    """The header OpenAI SDKs send."""
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def log_dir(tmp_path: Path) -> Path:
    """A log directory with one log file in it."""
    directory = tmp_path / "logs"
    directory.mkdir()
    (directory / "whisper_api.log").write_text("event=job_finished\n")
    return directory


def logs_app(build_app: AppFactory, log_dir: Path, **overrides: Any) -> Litestar:
    """An app whose logs can be downloaded by AUTHORIZED (via a proxy) or local callers."""
    return build_app(
        log_dir=str(log_dir),
        log_file="whisper_api.log",
        log_authorized_mails=(AUTHORIZED,),
        **overrides,
    )


# ---------------------------------------------------------------- /api/v1/logs


@pytest.mark.parametrize(
    "forged",
    [
        {"X-Email": AUTHORIZED},
        {"X-Forwarded-Email": AUTHORIZED},
        {"X-Forwarded-For": "127.0.0.1"},
        {"X-Real-IP": "127.0.0.1"},
        {"Forwarded": "for=127.0.0.1"},
        {"Host": "localhost"},
        {"Host": "127.0.0.1:3001"},
        {"X-Email": AUTHORIZED, "X-Forwarded-For": "127.0.0.1", "Host": "localhost"},
    ],
)
async def test_logs_refuse_forged_headers_from_a_remote_peer(
    build_app: AppFactory, log_dir: Path, forged: dict[str, str]
) -> None:
    """Without TRUSTED_PROXIES a remote peer gets 401 whatever X-Email, XFF or Host it sends."""
    app = logs_app(build_app, log_dir)
    async with client_from(app, "203.0.113.7") as client:
        response = await client.get("/api/v1/logs", headers=forged)
    assert response.status_code == 401


@pytest.mark.parametrize(
    "forged",
    [
        {"X-Email": AUTHORIZED},
        {"X-Forwarded-For": "127.0.0.1"},
        {"Forwarded": "for=127.0.0.1"},
        {"Host": "localhost"},
    ],
)
async def test_logs_refuse_forged_headers_from_an_untrusted_peer_when_proxies_are_set(
    build_app: AppFactory, log_dir: Path, forged: dict[str, str]
) -> None:
    """A peer outside TRUSTED_PROXIES is not believed even when some proxy is trusted."""
    app = logs_app(build_app, log_dir, trusted_proxies=("10.0.0.1",))
    async with client_from(app, "203.0.113.7") as client:
        response = await client.get("/api/v1/logs", headers=forged)
    assert response.status_code == 401


async def test_logs_through_trusted_proxy_for_an_authorized_mail(
    build_app: AppFactory, log_dir: Path
) -> None:
    """Through a trusted proxy, an authorized X-Email gets the zip; another e-mail gets 401."""
    app = logs_app(build_app, log_dir, trusted_proxies=("10.0.0.0/8",))
    async with client_from(app, "10.0.0.2") as client:
        forwarded = {"X-Forwarded-For": "203.0.113.7"}
        allowed = await client.get("/api/v1/logs", headers={**forwarded, "X-Email": AUTHORIZED})
        refused = await client.get(
            "/api/v1/logs", headers={**forwarded, "X-Email": "mallory@example.org"}
        )
    assert allowed.status_code == 200
    assert zipfile.ZipFile(io.BytesIO(allowed.content)).namelist() == ["whisper_api.log"]
    assert refused.status_code == 401


async def test_logs_for_a_local_peer_and_never_with_localhost_bypass_off(
    build_app: AppFactory, log_dir: Path
) -> None:
    """A loopback peer gets the zip (LOG_ALLOW_LOCALHOST); with it off, 401."""
    async with client_from(logs_app(build_app, log_dir), "127.0.0.1") as client:
        assert (await client.get("/api/v1/logs")).status_code == 200
    off = logs_app(build_app, log_dir, log_allow_localhost=False)
    async with client_from(off, "127.0.0.1") as client:
        assert (await client.get("/api/v1/logs")).status_code == 401


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),  # the proxy named no client: unknown, not local
        ({"X-Forwarded-For": "203.0.113.7"}, 401),  # a remote user through the local proxy
        ({"X-Forwarded-For": "127.0.0.1, 203.0.113.7"}, 401),  # forging a loopback entry
        ({"X-Forwarded-For": "127.0.0.1"}, 200),  # someone on the proxy's host itself
        ({"Forwarded": "for=203.0.113.7"}, 401),
        ({"Forwarded": "for=127.0.0.1, for=203.0.113.7"}, 401),
        ({"Forwarded": 'for="[::1]:5000"'}, 200),
        # A proxy that maintains X-Forwarded-For passes a forged Forwarded through.
        ({"X-Forwarded-For": "203.0.113.7", "Forwarded": "for=127.0.0.1"}, 401),
    ],
)
async def test_local_proxy_does_not_make_everybody_local(
    build_app: AppFactory, log_dir: Path, headers: dict[str, str], status: int
) -> None:
    """With a proxy on this host trusted, the localhost rule judges the forwarded client."""
    app = logs_app(build_app, log_dir, trusted_proxies=("127.0.0.1", "::1"))
    async with client_from(app, "127.0.0.1") as client:
        response = await client.get("/api/v1/logs", headers=headers)
    assert response.status_code == status


async def test_userinfo_ignores_identity_headers_from_untrusted_peers(
    build_app: AppFactory,
) -> None:
    """X-Email and X-User mean nothing unless a trusted proxy sent them."""
    app = build_app(log_authorized_mails=(AUTHORIZED,))
    async with client_from(app, "203.0.113.7") as client:
        body = (
            await client.get("/api/v1/userinfo", headers={"X-Email": AUTHORIZED, "X-User": "a"})
        ).json()
    assert body == {"email": None, "user": None, "may_read_logs": False}


# ---------------------------------------------------------------- forwarded headers


def echo_app(**overrides: Any) -> Litestar:
    """A minimal app with the service's security middleware and routes that echo the client."""

    @get("/api/v1/whoami", sync_to_thread=False)
    def whoami(request: Request[Any, Any, Any]) -> dict[str, Any]:
        return {
            "client": request.client.host if request.client else None,
            "scheme": request.url.scheme,
        }

    @get("/v1/models", sync_to_thread=False)
    def openai_like() -> dict[str, str]:
        return {"object": "list"}

    @get("/healthz", sync_to_thread=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    settings = make_settings(**overrides)
    return Litestar(
        route_handlers=[whoami, openai_like, healthz],
        middleware=security_middleware(settings),
        cors_config=cors_config(settings),
    )


async def test_forwarded_headers_rewrite_client_and_scheme_only_from_trusted_proxies() -> None:
    """X-Forwarded-For/-Proto set client and scheme from a trusted peer, never from others."""
    app = echo_app(trusted_proxies=("10.0.0.0/8",))
    headers = {"X-Forwarded-For": "198.51.100.4, 10.0.0.9", "X-Forwarded-Proto": "https"}
    async with client_from(app, "10.0.0.2") as client:
        trusted = (await client.get("/api/v1/whoami", headers=headers)).json()
    async with client_from(app, "203.0.113.7") as client:
        untrusted = (await client.get("/api/v1/whoami", headers=headers)).json()
    # The rightmost address that is not itself a trusted proxy is the client.
    assert trusted == {"client": "198.51.100.4", "scheme": "https"}
    assert untrusted == {"client": "203.0.113.7", "scheme": "http"}


@pytest.mark.parametrize(
    ("forwarded", "expected"),
    [
        (
            "for=198.51.100.4;proto=https, for=10.0.0.9;proto=http",
            {"client": "198.51.100.4", "scheme": "https"},
        ),
        (
            'for="[2001:db8::1]:4711";proto=https;by=10.0.0.2',
            {"client": "2001:db8::1", "scheme": "https"},
        ),
        ('For="198.51.100.4:8080"', {"client": "198.51.100.4", "scheme": "http"}),
        # Every hop a trusted proxy: the leftmost is the client, as with X-Forwarded-For.
        ("for=10.0.0.7, for=10.0.0.9", {"client": "10.0.0.7", "scheme": "http"}),
        ("for=unknown;proto=https", {"client": "unknown", "scheme": "https"}),
    ],
)
async def test_rfc7239_forwarded_header_is_read_like_x_forwarded_for(
    forwarded: str, expected: dict[str, str]
) -> None:
    """RFC 7239 Forwarded (for=, proto=, quoted IPv6 with port) sets client and scheme."""
    app = echo_app(trusted_proxies=("10.0.0.0/8",))
    async with client_from(app, "10.0.0.2") as client:
        trusted = (await client.get("/api/v1/whoami", headers={"Forwarded": forwarded})).json()
    async with client_from(app, "203.0.113.7") as client:
        untrusted = (await client.get("/api/v1/whoami", headers={"Forwarded": forwarded})).json()
    assert trusted == expected
    assert untrusted == {"client": "203.0.113.7", "scheme": "http"}


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        (
            {"X-Forwarded-For": "198.51.100.4", "Forwarded": 'for="198.51.100.4:5000"'},
            "198.51.100.4",
        ),
        ({"X-Forwarded-For": "198.51.100.4", "Forwarded": "for=127.0.0.1"}, "10.0.0.2"),
    ],
)
async def test_both_forwarded_headers_must_agree(headers: dict[str, str], expected: str) -> None:
    """With X-Forwarded-For and Forwarded both present, a client is believed only if they agree."""
    app = echo_app(trusted_proxies=("10.0.0.0/8",))
    async with client_from(app, "10.0.0.2") as client:
        body = (await client.get("/api/v1/whoami", headers=headers)).json()
    assert body["client"] == expected


async def test_forwarded_headers_are_ignored_without_trusted_proxies() -> None:
    """By default (TRUSTED_PROXIES empty) nobody can set the client address or scheme."""
    headers = {"X-Forwarded-For": "198.51.100.4", "X-Forwarded-Proto": "https"}
    async with client_from(echo_app(), "127.0.0.1") as client:
        body = (await client.get("/api/v1/whoami", headers=headers)).json()
    assert body == {"client": "127.0.0.1", "scheme": "http"}


# ---------------------------------------------------------------- API keys


async def test_api_keys_guard_every_api_route(build_app: AppFactory) -> None:
    """With API_KEYS set, API routes answer 401 (Litestar shape) without a valid key."""
    app = build_app(api_keys=(KEY_A,))
    async with AsyncTestClient(app=app) as client:
        for method, path in [
            ("GET", "/api/v1/decoder_status"),
            ("GET", "/api/v1/version"),
            ("GET", "/api/v1/userinfo"),
            ("GET", "/api/v1/status?task_id=x"),
            ("GET", "/api/v1/tasks/x"),
            ("DELETE", "/api/v1/tasks/x"),
            ("POST", "/api/v1/transcribe"),
            ("POST", "/api/v1/translate"),
        ]:
            missing = await client.request(method, path)
            wrong = await client.request(method, path, headers=bearer(KEY_B))
            for response in (missing, wrong):
                assert response.status_code == 401, (method, path)
                assert response.headers["www-authenticate"].startswith("Bearer")
                assert set(response.json()) == {"status_code", "detail"}
        ok = await client.get("/api/v1/decoder_status", headers=bearer(KEY_A))
    assert ok.status_code == 200


async def test_public_routes_stay_open_with_api_keys(build_app: AppFactory) -> None:
    """Health, readiness, docs and their assets, the schema, the UI, privacy and login: no key."""
    async with AsyncTestClient(app=build_app(api_keys=(KEY_A,))) as client:
        for path in (
            "/healthz",
            "/readyz",
            "/docs",
            "/docs/openapi.json",
            "/docs/assets/swagger-ui-bundle.js",
            "/",
            "/index.html",
            "/api/v1/privacy",
        ):
            assert (await client.get(path)).status_code == 200, path
        login = await client.get("/api/v1/login", follow_redirects=False)
    assert login.status_code == 303


async def test_openai_surface_gets_openai_shaped_401(build_app: AppFactory) -> None:
    """Paths under /v1/ answer 401 in OpenAI's error shape, which the SDKs parse."""
    async with AsyncTestClient(app=build_app(api_keys=(KEY_A,))) as client:
        missing = await client.get("/v1/models")
        wrong = await client.get("/v1/models", headers=bearer(KEY_B))
        ok = await client.get("/v1/models", headers=bearer(KEY_A))
        open_health = await client.get("/healthz")
    for response in (missing, wrong):
        assert response.status_code == 401
        error = response.json()["error"]
        assert set(error) == {"message", "type", "param", "code"}
        assert error["code"] == "invalid_api_key"
    assert ok.status_code == 200
    assert open_health.status_code == 200


async def test_401_takes_each_surface_shape_and_is_counted(build_app: AppFactory) -> None:
    """A missing key is answered in the shape of the surface asked, and counted as unauthorized."""
    async with AsyncTestClient(app=build_app(api_keys=(KEY_A,))) as client:
        files = {"file": ("a.wav", wav_bytes(), "audio/wav")}
        openai = await client.post("/v1/audio/transcriptions", files=files)
        asr = await client.post("/asr", files={"audio_file": ("a.wav", wav_bytes(), "audio/wav")})
        tasks = await client.post("/api/v1/transcribe", files=files)
        metrics = (await client.get("/metrics")).text
    assert openai.status_code == asr.status_code == tasks.status_code == 401
    assert openai.json()["error"]["code"] == "invalid_api_key"
    assert set(asr.json()) == {"detail"}
    assert tasks.json()["status_code"] == 401
    assert openai.headers["www-authenticate"].startswith("Bearer")
    assert 'whisper_api_uploads_rejected_total{reason="unauthorized"} 3.0' in metrics


@pytest.mark.parametrize(
    "authorization",
    ["", "Bearer", "Bearer ", f"Basic {KEY_A}", f"Token {KEY_A}", f"Bearer {KEY_A}x", KEY_A],
)
async def test_malformed_authorization_is_refused(
    build_app: AppFactory, authorization: str
) -> None:
    """Anything but `Bearer <exact key>` is a 401."""
    async with AsyncTestClient(app=build_app(api_keys=(KEY_A,))) as client:
        response = await client.get("/api/v1/version", headers={"Authorization": authorization})
    assert response.status_code == 401


def scope_of(kind: str, authorization: str | None = None, *protocols: str) -> Any:
    """A bare ASGI scope of `kind` with an Authorization header and subprotocols where given."""
    headers = [(b"authorization", authorization.encode())] if authorization is not None else []
    scope: dict[str, Any] = {"type": kind, "headers": [(b"host", b"testserver"), *headers]}
    if kind == "websocket":
        scope["subprotocols"] = list(protocols)
    return scope


@pytest.mark.parametrize(
    ("scope", "expected"),
    [
        (scope_of("http", f"Bearer {KEY_A}"), KEY_A),
        (scope_of("http", f"bearer   {KEY_A} "), KEY_A),
        (scope_of("http", f"Basic {KEY_A}"), None),
        (scope_of("http", "Bearer "), None),
        (scope_of("http"), None),
        (scope_of("websocket", f"Bearer {KEY_A}", "realtime"), KEY_A),
        (scope_of("websocket", None, "realtime", f"openai-insecure-api-key.{KEY_A}"), KEY_A),
        (scope_of("websocket", "Bearer ", f"openai-insecure-api-key.{KEY_B}"), KEY_B),
        (scope_of("websocket", f"Bearer {KEY_A}", f"openai-insecure-api-key.{KEY_B}"), KEY_A),
        (scope_of("websocket", None, "realtime"), None),
    ],
)
def test_one_function_reads_the_key_of_requests_and_websockets(
    scope: Any, expected: str | None
) -> None:
    """A Bearer header on both; on a websocket, failing that, the browser's key subprotocol."""
    assert presented_key(scope) == expected


def test_key_ring_identifies_each_key_and_nothing_else() -> None:
    """Each configured key maps to its own stable owner id; other tokens to None."""
    ring = KeyRing([KEY_A, KEY_B])
    owner_a, owner_b = ring.identify(KEY_A), ring.identify(KEY_B)
    assert owner_a is not None and owner_b is not None and owner_a != owner_b
    assert KeyRing([KEY_B, KEY_A]).identify(KEY_A) == owner_a  # independent of order
    assert KEY_A not in owner_a and KEY_A[:8] not in owner_a  # the id reveals no key
    for token in (None, "", KEY_A[:-1], KEY_A + " ", KEY_A.upper()):
        assert ring.identify(token) is None


async def test_tasks_are_bound_to_the_key_that_created_them(build_app: AppFactory) -> None:
    """Key B gets 404 for key A's task on every task route; key A sees and deletes it."""
    app = build_app(api_keys=(KEY_A, KEY_B))
    async with AsyncTestClient(app=app) as client:
        created = await client.post(
            "/api/v1/transcribe", files={"file": ("a.wav", wav_bytes())}, headers=bearer(KEY_A)
        )
        assert created.status_code == 200
        task_id = created.json()["task_id"]
        for method, path in [
            ("GET", f"/api/v1/status?task_id={task_id}"),
            ("GET", f"/api/v1/tasks/{task_id}"),
            ("GET", f"/api/v1/tasks/{task_id}/result"),
            ("GET", f"/api/v1/tasks/{task_id}/events"),
            ("GET", f"/api/v1/srt?task_id={task_id}"),
            ("DELETE", f"/api/v1/tasks/{task_id}"),
        ]:
            response = await client.request(method, path, headers=bearer(KEY_B))
            assert response.status_code == 404, (method, path)
        own = await client.get(f"/api/v1/tasks/{task_id}", headers=bearer(KEY_A))
        assert own.status_code == 200
        deleted = await client.delete(f"/api/v1/tasks/{task_id}", headers=bearer(KEY_A))
        assert deleted.status_code == 200
        gone = await client.get(f"/api/v1/tasks/{task_id}", headers=bearer(KEY_A))
    assert gone.status_code == 404


def test_api_keys_file_is_read_with_comments(tmp_path: Path) -> None:
    """API_KEYS_FILE adds one key a line to API_KEYS; blank lines and # comments are skipped."""
    keys_file = tmp_path / "keys"
    keys_file.write_text(f"# team keys\n{KEY_B}\n\n{KEY_A}\n")
    settings = load_settings({"API_KEYS": KEY_A, "API_KEYS_FILE": str(keys_file)})
    assert settings.api_keys == (KEY_A, KEY_B)
    assert KEY_A not in repr(settings)


# ---------------------------------------------------------------- CORS


async def test_cors_is_off_by_default(client: AsyncTestClient[Litestar]) -> None:
    """Without CORS_ALLOW_ORIGINS no origin gets a grant, simple request or preflight."""
    origin = {"Origin": "https://evil.example"}
    simple = await client.get("/api/v1/version", headers=origin)
    preflight = await client.options(
        "/api/v1/transcribe", headers={**origin, "Access-Control-Request-Method": "POST"}
    )
    for response in (simple, preflight):
        assert "access-control-allow-origin" not in response.headers
        assert "access-control-allow-credentials" not in response.headers


async def test_cors_grants_listed_origins_only(build_app: AppFactory) -> None:
    """A listed origin is granted (with credentials); an unlisted one gets nothing."""
    app = build_app(cors_allow_origins=("https://app.example",))
    async with AsyncTestClient(app=app) as client:
        listed = await client.get("/api/v1/version", headers={"Origin": "https://app.example"})
        unlisted = await client.get("/api/v1/version", headers={"Origin": "https://evil.example"})
        preflight = await client.options(
            "/api/v1/transcribe",
            headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
        )
    assert listed.headers["access-control-allow-origin"] == "https://app.example"
    assert listed.headers["access-control-allow-credentials"] == "true"
    for response in (unlisted, preflight):
        # Without Access-Control-Allow-Origin the browser shares nothing with the page.
        assert "access-control-allow-origin" not in response.headers


async def test_cors_wildcard_never_allows_credentials(build_app: AppFactory) -> None:
    """CORS_ALLOW_ORIGINS=* lets any site read, but never with the user's credentials."""
    app = build_app(cors_allow_origins=("*",))
    async with AsyncTestClient(app=app) as client:
        plain = await client.get("/api/v1/version", headers={"Origin": "https://any.example"})
        cookie = await client.get(
            "/api/v1/version", headers={"Origin": "https://any.example", "Cookie": "session=1"}
        )
    assert plain.headers["access-control-allow-origin"] == "*"
    for response in (plain, cookie):
        assert "access-control-allow-credentials" not in response.headers


async def test_cors_preflight_needs_no_api_key(build_app: AppFactory) -> None:
    """A listed origin's preflight succeeds without a key (browsers send none there)."""
    app = build_app(cors_allow_origins=("https://app.example",), api_keys=(KEY_A,))
    async with AsyncTestClient(app=app) as client:
        preflight = await client.options(
            "/api/v1/transcribe",
            headers={
                "Origin": "https://app.example",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization",
            },
        )
        refused = await client.get("/api/v1/version", headers={"Origin": "https://app.example"})
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == "https://app.example"
    # The 401 carries the grant, so the page can read why it was refused.
    assert refused.status_code == 401
    assert refused.headers["access-control-allow-origin"] == "https://app.example"


# ---------------------------------------------------------------- rate limit


async def test_rate_limit_per_client_address(build_app: AppFactory) -> None:
    """RATE_LIMIT=3/minute: the 4th API request of one client gets 429; others are unaffected."""
    peer = FromPeer(build_app(rate_limit="3/minute"), "203.0.113.7")
    async with AsyncTestClient(app=peer) as client:  # type: ignore[arg-type]
        statuses = [(await client.get("/api/v1/version")).status_code for _ in range(4)]
        limited = await client.get("/api/v1/version")
        health = [(await client.get("/healthz")).status_code for _ in range(5)]
        peer.host = "203.0.113.8"
        other_status = (await client.get("/api/v1/version")).status_code
    assert statuses == [200, 200, 200, 429]
    assert int(limited.headers["retry-after"]) >= 1
    assert health == [200] * 5  # health checks are never limited
    assert other_status == 200


async def test_rate_limit_cannot_be_dodged_with_forwarded_headers(build_app: AppFactory) -> None:
    """An untrusted client changing X-Forwarded-For each time is still one client."""
    app = build_app(rate_limit="2/minute")
    async with client_from(app, "203.0.113.7") as client:
        statuses = [
            (
                await client.get("/api/v1/version", headers={"X-Forwarded-For": f"192.0.2.{n}"})
            ).status_code
            for n in range(3)
        ]
    assert statuses == [200, 200, 429]


async def test_rate_limit_keys_on_the_forwarded_client_behind_a_trusted_proxy(
    build_app: AppFactory,
) -> None:
    """Behind a trusted proxy each forwarded client has its own budget."""
    app = build_app(rate_limit="2/minute", trusted_proxies=("10.0.0.1",))
    async with client_from(app, "10.0.0.1") as proxy:

        async def status(client_ip: str) -> int:
            response = await proxy.get("/api/v1/version", headers={"X-Forwarded-For": client_ip})
            return response.status_code

        first = [await status("198.51.100.1") for _ in range(3)]
        second = [await status("198.51.100.2") for _ in range(2)]
    assert first == [200, 200, 429]
    assert second == [200, 200]


async def test_privacy_info_says_whether_tasks_are_bound_to_keys(build_app: AppFactory) -> None:
    """/api/v1/privacy says, without a key, that keys are needed and bind tasks to them."""
    async with AsyncTestClient(app=build_app(api_keys=(KEY_A,))) as client:
        body = (await client.get("/api/v1/privacy")).json()
    async with AsyncTestClient(app=build_app()) as client:
        open_body = (await client.get("/api/v1/privacy")).json()
    assert body["tasks_bound_to_api_key"] is True
    assert body["api_key_required"] is True
    assert open_body["api_key_required"] is False


@pytest.mark.parametrize("keys", [(), (KEY_A,)])
async def test_openapi_names_the_bearer_scheme_only_with_api_keys(
    build_app: AppFactory, keys: tuple[str, ...]
) -> None:
    """With API keys the schema has a bearer security scheme (Swagger's Authorize); else none."""
    async with AsyncTestClient(app=build_app(api_keys=keys)) as client:
        schema = (await client.get("/docs/openapi.json")).json()
    schemes = schema.get("components", {}).get("securitySchemes")
    if keys:
        assert schemes == {
            "apiKey": {
                "type": "http",
                "scheme": "bearer",
                "description": schemes["apiKey"]["description"],
            }
        }
        assert schema["security"] == [{"apiKey": []}]
    else:
        assert not schemes and "security" not in schema


def test_a_client_is_its_key_else_its_address_and_neither_in_clear() -> None:
    """client_of: the key's owner id where keys are required, else a hash of the address."""
    from_address: Any = {"type": "http", "client": ("203.0.113.7", 5000), "state": {}}
    other_address: Any = {"type": "http", "client": ("203.0.113.8", 5000), "state": {}}
    with_key: Any = {
        "type": "http",
        "client": ("203.0.113.7", 5000),
        "state": {OWNER_STATE_KEY: "key-0123456789abcdef"},
    }
    assert client_of(from_address) == client_of(dict(from_address, state={}))  # stable
    assert client_of(from_address) != client_of(other_address)
    assert "203.0.113" not in client_of(from_address)
    assert client_of(with_key) == "key-0123456789abcdef"  # one key, one client, anywhere
