"""The task API on the real bundled models and the real speech clips in ../shared/audio."""

from __future__ import annotations

import re
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from app.asgi import create_app
from app.bench.runner import word_error_rate
from tests.asgi_helpers import eventually, wait_final
from tests.conftest import make_settings, reference_text, shared_clip

pytestmark = pytest.mark.real_model


async def transcribe_file(
    client: AsyncTestClient[Litestar],
    clip: str,
    *,
    route: str = "/api/v1/transcribe",
    params: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Upload a shared clip and wait for its final state."""
    path = shared_clip(clip)
    response = await client.post(
        route, files={"file": (path.name, path.read_bytes())}, params=params or {}
    )
    assert response.status_code == 200, response.text
    return await wait_final(client, response.json()["task_id"], limit_s=60)


async def test_jfk_within_ten_percent_wer_on_default_cpu_model(real_app: Litestar) -> None:
    """The default CPU set-up steps down to bundled `base` and transcribes jfk within 10% WER."""
    async with AsyncTestClient(app=real_app) as client:
        body = await transcribe_file(client, "en_jfk.flac")
    assert body["status"] == "finished", body["error"]
    assert body["used_model_size"] == "base"
    assert body["used_device"] == "cpu"
    assert body["source_language"] == "en"
    assert word_error_rate(reference_text("en_jfk.flac"), body["transcript"]) <= 0.10


@pytest.mark.parametrize(
    ("clip", "language"),
    [
        ("de_picovoice_test_de.wav", "de"),
        ("fr_picovoice_test_fr.wav", "fr"),
        ("ru_coqui_ru.wav", "ru"),
        ("zh_aishell_BAC009S0724W0121.wav", "zh"),
    ],
)
async def test_languages_are_detected(real_app: Litestar, clip: str, language: str) -> None:
    """German, French, Russian and Chinese clips come back with the right source_language."""
    async with AsyncTestClient(app=real_app) as client:
        body = await transcribe_file(client, clip)
    assert body["status"] == "finished", body["error"]
    assert body["source_language"] == language
    assert body["transcript"]


async def test_german_clip_translates_to_english(real_app: Litestar) -> None:
    """/api/v1/translate turns the German clip into English words."""
    async with AsyncTestClient(app=real_app) as client:
        body = await transcribe_file(client, "de_picovoice_test_de.wav", route="/api/v1/translate")
    assert body["status"] == "finished", body["error"]
    assert body["source_language"] == "de"
    words = set(re.findall(r"[a-z]+", body["transcript"].lower()))
    assert words & {"the", "was", "room", "used", "behind"}, body["transcript"]
    assert not words & {"der", "wurde", "als", "diesem"}, body["transcript"]


async def test_tiny_en_cap_runs_english_on_the_bundled_english_model() -> None:
    """MAX_MODEL=tiny.en runs an English job on the bundled tiny.en, within 10% WER."""
    settings = make_settings(max_model="tiny.en")
    async with AsyncTestClient(app=create_app(settings)) as client:
        body = await transcribe_file(client, "en_jfk.flac", params={"language": "en"})
        refused = await client.post(
            "/api/v1/translate",
            files={"file": ("jfk.flac", shared_clip("en_jfk.flac").read_bytes())},
        )
    assert body["status"] == "finished", body["error"]
    assert body["used_model_size"] == "tiny.en"
    assert word_error_rate(reference_text("en_jfk.flac"), body["transcript"]) <= 0.10
    assert refused.status_code == 400
    assert "English-only" in refused.json()["detail"]


async def test_develop_mode_uses_smallest_model_for_english() -> None:
    """DEVELOP_MODE picks tiny.en for English and steps to base for a detection job."""
    settings = make_settings(develop_mode=True)
    async with AsyncTestClient(app=create_app(settings)) as client:
        english = await transcribe_file(client, "en_jfk.flac", params={"language": "en"})
        detected = await transcribe_file(client, "de_picovoice_test_de.wav")
    assert english["used_model_size"] == "tiny.en"
    assert detected["used_model_size"] == "base"
    assert detected["source_language"] == "de"


async def test_idle_unload_shows_in_decoder_status_and_the_next_job_reloads() -> None:
    """After UNLOAD_MODEL_AFTER_S idle the model goes (decoder_status says so) and the next job
    loads it again. The timer itself moves on fake time, and the memory it gives back is
    measured on the real model, in tests/transcription/models/test_manager.py."""
    settings = make_settings(unload_model_after_s=1, cpu_fallback_model="base")
    async with AsyncTestClient(app=create_app(settings)) as client:
        first = await transcribe_file(client, "en_jfk.flac")
        loaded = (await client.get("/api/v1/decoder_status")).json()
        unloaded = await eventually(lambda: _unloaded_status(client), limit_s=20)
        second = await transcribe_file(client, "en_jfk.flac")
    assert first["status"] == second["status"] == "finished"
    assert loaded["is_model_loaded"] is True
    assert unloaded["is_model_loaded"] is False
    assert unloaded["last_loaded_model_size"] == "base"
    assert second["used_model_size"] == "base"  # loaded again for the second job


async def _unloaded_status(client: AsyncTestClient[Litestar]) -> dict[str, Any] | None:
    """/api/v1/decoder_status once it says no model is loaded; None before."""
    status: dict[str, Any] = (await client.get("/api/v1/decoder_status")).json()
    return None if status["is_model_loaded"] else status
