"""Upload limits: refused before the body is read, audio length, and no spooling to disk."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from litestar import Litestar
from litestar.enums import RequestEncodingType
from litestar.handlers import HTTPRouteHandler
from litestar.testing import AsyncTestClient

from app.asgi import create_app
from app.composition import build_service
from tests.attack_clients import BOUNDARY, multipart_head
from tests.conftest import AppFactory, FakeTranscriber, fake_manager, make_settings, wav_bytes


@dataclass
class AsgiExchange:
    """One request driven straight through the ASGI interface, recording what was read."""

    chunks: list[bytes]
    content_length: int | None = None
    consumed: int = 0
    status: int | None = None
    body: bytes = b""
    messages: list[dict[str, Any]] = field(default_factory=list)

    async def run(self, app: Any, path: str = "/api/v1/transcribe") -> None:
        """POST the chunks one `receive()` at a time."""
        headers = [(b"content-type", f"multipart/form-data; boundary={BOUNDARY}".encode())]
        if self.content_length is not None:
            headers.append((b"content-length", str(self.content_length).encode()))
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "root_path": "",
            "query_string": b"",
            "headers": headers,
            "client": ("127.0.0.1", 40000),
            "server": ("127.0.0.1", 3001),
            "state": {},
        }

        async def receive() -> dict[str, Any]:
            if self.consumed < len(self.chunks):
                self.consumed += 1
                more = self.consumed < len(self.chunks)
                return {
                    "type": "http.request",
                    "body": self.chunks[self.consumed - 1],
                    "more_body": more,
                }
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            self.messages.append(message)
            if message["type"] == "http.response.start":
                self.status = message["status"]
            elif message["type"] == "http.response.body":
                self.body += message.get("body", b"")

        await app(scope, receive, send)


async def test_declared_oversize_body_gets_413_without_being_read(build_app: AppFactory) -> None:
    """A Content-Length over MAX_UPLOAD_MB is answered 413 before one body byte is read."""
    app = build_app(max_upload_mb=1)
    async with AsyncTestClient(app=app):
        exchange = AsgiExchange(chunks=[b"x" * 1024] * 4, content_length=2 * 1024 * 1024)
        await exchange.run(app)
    assert exchange.status == 413
    assert b"1 MB" in exchange.body
    assert exchange.consumed == 0


async def test_streamed_oversize_body_gets_413_as_soon_as_it_passes_the_limit(
    build_app: AppFactory,
) -> None:
    """Without Content-Length the body is counted while it streams in and cut off at the limit."""
    app = build_app(max_upload_mb=1)
    chunk = b"\0" * (256 * 1024)
    async with AsyncTestClient(app=app):
        exchange = AsgiExchange(chunks=[multipart_head(), *[chunk] * 40])  # 10 MB in all
        await exchange.run(app)
    assert exchange.status == 413
    assert exchange.consumed <= 6  # the head, four chunks to reach 1 MB, one past it


async def test_full_queue_gets_429_before_the_body_is_read() -> None:
    """With every queue place taken, an upload is refused without reading its body."""
    gate = threading.Event()
    settings = make_settings(max_task_queue_size=1, cpu_fallback_model="base")
    service = build_service(settings, fake_manager(settings, FakeTranscriber(gate=gate)))
    app = create_app(settings, service=service)
    try:
        async with AsyncTestClient(app=app) as client:
            files = {"file": ("a.wav", wav_bytes())}
            running = await client.post("/api/v1/transcribe", files=files)
            while service.backend.counts().waiting:  # wait until the worker has taken it
                await client.get("/healthz")
            waiting = await client.post("/api/v1/transcribe", files=files)
            exchange = AsgiExchange(chunks=[multipart_head(), wav_bytes(10.0)])
            await exchange.run(app)
    finally:
        gate.set()
    assert running.status_code == 200 and waiting.status_code == 200
    assert exchange.status == 429
    assert exchange.consumed == 0
    assert any(
        name == b"retry-after"
        for message in exchange.messages
        for name, _ in message.get("headers", [])
    )


async def test_failed_uploads_give_their_queue_place_back(build_app: AppFactory) -> None:
    """Bad uploads release the place they held, so a queue of one keeps accepting."""
    app = build_app(max_task_queue_size=1)
    async with AsyncTestClient(app=app) as client:
        for _ in range(5):
            bad = await client.post("/api/v1/transcribe", files={"file": ("x.txt", b"not audio")})
            assert bad.status_code == 400
        good = await client.post("/api/v1/transcribe", files={"file": ("a.wav", wav_bytes())})
    assert good.status_code == 200


async def test_audio_longer_than_the_limit_gets_413_naming_it(build_app: AppFactory) -> None:
    """MAX_AUDIO_DURATION_S: longer audio is refused with 413 and the limit in the message."""
    async with AsyncTestClient(app=build_app(max_audio_duration_s=1.5)) as client:
        too_long = await client.post(
            "/api/v1/transcribe", files={"file": ("long.wav", wav_bytes(3.0))}
        )
        fine = await client.post("/api/v1/transcribe", files={"file": ("ok.wav", wav_bytes(1.0))})
    assert too_long.status_code == 413
    assert "1.5 s" in too_long.json()["detail"]
    assert fine.status_code == 200


def test_no_route_lets_litestar_parse_multipart(real_app: Litestar) -> None:
    """Litestar's multipart parser spools big parts to temp files: no handler may use it."""
    spooling = {RequestEncodingType.MULTI_PART, RequestEncodingType.URL_ENCODED}
    checked = 0
    for route in real_app.routes:
        for handler in getattr(route, "route_handlers", []):
            if not isinstance(handler, HTTPRouteHandler):
                continue
            checked += 1
            data = handler.parsed_fn_signature.parameters.get("data")
            if data is None:
                continue
            media_type = getattr(data.kwarg_definition, "media_type", None)
            assert media_type not in spooling, handler.handler_name
            assert "UploadFile" not in repr(data.annotation), handler.handler_name
    assert checked > 10
