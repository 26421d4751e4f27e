"""Every surface's rejections: the right status, the surface's own shape, counted once by reason."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.asgi_helpers import scrape, upload, value
from tests.conftest import FakeTranscriber, build_fake_app, wav_bytes

KEY = "rejections-test-key-0123456789"
SURFACES = {
    "tasks": ("/api/v1/transcribe", "file"),
    "openai": ("/v1/audio/transcriptions", "file"),
    "asr": ("/asr", "audio_file"),
}


async def post(
    client: AsyncTestClient[Litestar], surface: str, data: bytes | None = None, **kw: Any
) -> Any:
    """One upload to `surface`, with English pinned so the model choice never refuses it."""
    route, field = SURFACES[surface]
    files = {field: ("clip.wav", wav_bytes() if data is None else data, "audio/wav")}
    params = {"language": "en"} if surface != "openai" else {}
    fields = {"language": "en"} if surface == "openai" else {}
    return await client.post(route, files=files, params=params, data=fields, **kw)


def assert_shape(surface: str, response: Any, status: int) -> None:
    """The error is in the surface's own shape."""
    assert response.status_code == status, response.text
    body = response.json()
    if surface == "openai":
        assert set(body["error"]) == {"message", "type", "param", "code"}
    elif surface == "asr":
        assert set(body) == {"detail"}
    else:
        assert body["status_code"] == status and body["detail"]


async def rejected(client: AsyncTestClient[Litestar], reason: str) -> float:
    """How many uploads /metrics counts as refused for `reason`."""
    return value(await scrape(client), "whisper_api_uploads_rejected_total", reason=reason)


@pytest.fixture
def gate() -> AsyncIterator[threading.Event]:
    """A gate that holds the running job until the test ends."""
    held = threading.Event()
    yield held  # type: ignore[misc]
    held.set()


@pytest.mark.parametrize("surface", SURFACES)
async def test_missing_key_is_unauthorized(surface: str) -> None:
    """No API key: 401 in the surface's shape, counted as unauthorized."""
    app, _ = build_fake_app(FakeTranscriber(), api_keys=(KEY,))
    async with AsyncTestClient(app=app) as client:
        assert_shape(surface, await post(client, surface), 401)
        assert await rejected(client, "unauthorized") == 1


@pytest.mark.parametrize("surface", SURFACES)
async def test_body_over_max_upload_mb_is_too_large(surface: str) -> None:
    """A body past MAX_UPLOAD_MB: 413, counted as too_large."""
    app, _ = build_fake_app(FakeTranscriber(), max_upload_mb=1)
    async with AsyncTestClient(app=app) as client:
        assert_shape(surface, await post(client, surface, b"\0" * (2 * 1024 * 1024)), 413)
        assert await rejected(client, "too_large") == 1


@pytest.mark.parametrize("surface", SURFACES)
async def test_audio_over_the_duration_limit_is_too_long(surface: str) -> None:
    """Audio past MAX_AUDIO_DURATION_S: 413 at upload, counted as too_long, not as bad audio."""
    app, _ = build_fake_app(FakeTranscriber(), max_audio_duration_s=0.5)
    async with AsyncTestClient(app=app) as client:
        assert_shape(surface, await post(client, surface, wav_bytes(2.0)), 413)
        assert await rejected(client, "too_long") == 1
        assert await rejected(client, "bad_audio") == 0


@pytest.mark.parametrize("surface", SURFACES)
async def test_bytes_that_are_not_audio_are_bad_audio(surface: str) -> None:
    """Text sent as audio: 400 at upload, counted as bad_audio."""
    app, _ = build_fake_app(FakeTranscriber())
    async with AsyncTestClient(app=app) as client:
        assert_shape(surface, await post(client, surface, b"just some text, no audio"), 400)
        assert await rejected(client, "bad_audio") == 1


@pytest.mark.parametrize("surface", SURFACES)
async def test_full_queue_is_queue_full_with_retry_after(
    surface: str, gate: threading.Event
) -> None:
    """With the queue full, each surface answers 429 + Retry-After at once (queue_full)."""
    app, _ = build_fake_app(FakeTranscriber(gate=gate), max_task_queue_size=1, shutdown_grace_s=0)
    async with AsyncTestClient(app=app) as client:
        running = await upload(client, params={"language": "en"})
        assert running.status_code == 200
        waiting = await upload(client, params={"language": "en"})
        assert waiting.status_code == 200
        refused = await post(client, surface)
        assert_shape(surface, refused, 429)
        assert int(refused.headers["retry-after"]) >= 1
        assert await rejected(client, "queue_full") == 1


@pytest.mark.parametrize("surface", SURFACES)
async def test_queued_bytes_past_max_queued_mb_are_queue_full(
    surface: str, gate: threading.Event
) -> None:
    """Past MAX_QUEUED_MB of waiting uploads, 429 + Retry-After though places are free."""
    app, service = build_fake_app(
        FakeTranscriber(gate=gate), max_queued_mb=1, max_task_queue_size=50, shutdown_grace_s=0
    )
    async with AsyncTestClient(app=app) as client:
        assert (await upload(client, params={"language": "en"})).status_code == 200  # runs
        big = wav_bytes(25.0)  # 800 KB waiting
        assert (await upload(client, big, params={"language": "en"})).status_code == 200
        assert service.backend.counts().waiting_bytes == len(big)
        refused = await post(client, surface, wav_bytes(10.0))  # 320 KB more: over 1 MB
        assert_shape(surface, refused, 429)
        assert "MB of uploads" in refused.text
        assert int(refused.headers["retry-after"]) >= 1
        assert await rejected(client, "queue_full") == 1
        assert service.backend.counts().waiting == 1


@pytest.mark.parametrize("surface", SURFACES)
async def test_uploads_while_shutting_down_are_refused(surface: str) -> None:
    """While draining, uploads get 503 + Retry-After, counted as shutting_down."""
    app, service = build_fake_app(FakeTranscriber())
    async with AsyncTestClient(app=app) as client:
        service.begin_draining()
        refused = await post(client, surface)
        assert_shape(surface, refused, 503)
        assert int(refused.headers["retry-after"]) >= 1
        assert await rejected(client, "shutting_down") == 1


@pytest.mark.parametrize("surface", SURFACES)
async def test_over_the_rate_limit_is_rate_limited(surface: str) -> None:
    """Past RATE_LIMIT, uploads get 429 in the surface's shape, counted as rate_limited."""
    app, _ = build_fake_app(FakeTranscriber(), rate_limit="1/minute")
    async with AsyncTestClient(app=app) as client:
        assert (await client.get("/api/v1/version")).status_code == 200
        assert_shape(surface, await post(client, surface), 429)
        assert await rejected(client, "rate_limited") == 1


KEY_B = "rejections-test-key-b-0123456789"


@pytest.mark.parametrize("surface", SURFACES)
async def test_one_clients_share_of_the_queue_is_client_queue_full(
    surface: str, gate: threading.Event
) -> None:
    """Past MAX_QUEUED_PER_CLIENT one key gets 429 + Retry-After naming it; another key queues."""
    app, service = build_fake_app(
        FakeTranscriber(gate=gate), api_keys=(KEY, KEY_B), max_task_queue_size=4, shutdown_grace_s=0
    )
    assert service.settings.queued_per_client == 2  # half of MAX_TASK_QUEUE_SIZE
    first = {"Authorization": f"Bearer {KEY}"}
    async with AsyncTestClient(app=app) as client:
        for _ in range(3):  # one runs, two wait
            assert (await post(client, "tasks", headers=first)).status_code == 200
        refused = await post(client, surface, headers=first)
        assert_shape(surface, refused, 429)
        assert "MAX_QUEUED_PER_CLIENT" in refused.text
        assert int(refused.headers["retry-after"]) >= 1
        other = await post(client, "tasks", headers={"Authorization": f"Bearer {KEY_B}"})
        assert other.status_code == 200
        assert await rejected(client, "client_queue_full") == 1
        assert await rejected(client, "queue_full") == 0
        metrics = await scrape(client)
        assert value(metrics, "whisper_api_queue_clients") == 2
        assert value(metrics, "whisper_api_queue_depth_most_per_client") == 2
