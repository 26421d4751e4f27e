"""The whisper-asr-webservice routes on a fake transcriber: what Bazarr and subgen send."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import httpx
import numpy as np
import pytest
import srt

from tests.asgi_helpers import eventually, local_store, serve, service_of
from tests.conftest import AppFactory, FakeTranscriber, wav_bytes


def pcm_bytes(seconds: float) -> bytes:
    """Raw 16 kHz mono s16le PCM, as Bazarr's ffmpeg pipe produces it."""
    samples = (0.1 * np.sin(np.arange(int(16000 * seconds)) / 5) * 32767).astype("<i2")
    return samples.tobytes()


async def post_asr(
    client: httpx.AsyncClient,
    route: str = "/asr",
    params: dict[str, str] | None = None,
    data: bytes | None = None,
    name: str = "episode.wav",
) -> httpx.Response:
    """POST the audio in `audio_file` with options in the query string."""
    files = {"audio_file": (name, wav_bytes(2.0) if data is None else data)}
    return await client.post(route, params=params or {}, files=files)


def assert_asr_error(response: httpx.Response, status: int) -> str:
    """The body is FastAPI's `{"detail": "..."}`, as whisper-asr-webservice answers."""
    assert response.status_code == status, response.text
    body = response.json()
    assert list(body) == ["detail"]
    detail: str = body["detail"]
    assert detail
    return detail


@pytest.fixture
def fake_transcriber() -> FakeTranscriber:
    """A fake that speaks four words in two segments."""
    return FakeTranscriber(text="winter is coming soon", segment_count=2)


async def test_bazarr_request_raw_pcm_to_srt(
    build_app: AppFactory, fake_transcriber: FakeTranscriber
) -> None:
    """Bazarr's call: encode=false PCM, output=srt; SRT attachment with the engine header."""
    async with serve(build_app()) as client:
        response = await post_asr(
            client,
            params={
                "task": "transcribe",
                "language": "en",
                "output": "srt",
                "encode": "false",
                "video_file": "/media/show/episode.mkv",
            },
            data=pcm_bytes(3.0),
            name="audio_file",
        )
    assert response.status_code == 200, response.text
    assert response.headers["asr-engine"] == "faster_whisper"
    assert response.headers["content-type"].startswith("application/x-subrip")
    assert response.headers["content-disposition"].startswith(
        'attachment; filename="audio_file.srt"'
    )
    subtitles = list(srt.parse(response.text))
    # Readable cues by default: Whisper's two short segments make one cue of one line.
    assert [s.content for s in subtitles] == ["winter is coming soon"]
    assert subtitles[-1].end.total_seconds() == pytest.approx(3.0)
    assert fake_transcriber.audio_seen == [48000]  # 3 s at 16 kHz, read as raw samples
    assert fake_transcriber.calls[-1].language == "en"
    # Words are timed for the cues, not shown: the client asked for no word timestamps.
    assert fake_transcriber.calls[-1].cue_words
    assert not fake_transcriber.calls[-1].word_timestamps


@pytest.mark.parametrize(("output", "timed"), [("txt", False), ("json", False), ("vtt", True)])
async def test_asr_times_words_for_cues_only_when_it_answers_subtitles(
    build_app: AppFactory, fake_transcriber: FakeTranscriber, output: str, timed: bool
) -> None:
    """/asr asks for cue word timings only for srt/vtt: txt and json keep the cheaper decoding."""
    async with serve(build_app()) as client:
        response = await post_asr(
            client,
            params={"output": output, "encode": "false"},
            data=pcm_bytes(3.0),
            name="audio_file",
        )
    assert response.status_code == 200, response.text
    assert fake_transcriber.calls[-1].cue_words is timed


async def test_asr_srt_with_subtitle_shaping_off_gives_whisper_segments(
    build_app: AppFactory, fake_transcriber: FakeTranscriber
) -> None:
    """SUBTITLE_SHAPING=0: one cue per Whisper segment and no word timings asked, as before."""
    async with serve(build_app(subtitle_shaping=False)) as client:
        response = await post_asr(
            client,
            params={"output": "srt", "encode": "false"},
            data=pcm_bytes(3.0),
            name="audio_file",
        )
    assert response.status_code == 200, response.text
    assert [s.content for s in srt.parse(response.text)] == ["winter is", "coming soon"]
    assert not fake_transcriber.calls[-1].cue_words


@pytest.mark.parametrize(
    ("output", "media", "start"),
    [
        ("txt", "text/plain", "winter is\ncoming soon\n"),
        ("vtt", "text/vtt", "WEBVTT\n"),
        ("tsv", "text/tab-separated-values", "start\tend\ttext\n"),
        ("json", "application/json", '{"text":"winter is coming soon"'),
    ],
)
async def test_every_output_with_its_type_and_file_name(
    build_app: AppFactory, output: str, media: str, start: str
) -> None:
    """txt (the default), vtt, tsv and json each come as an attachment named after the upload."""
    async with serve(build_app()) as client:
        params = {} if output == "txt" else {"output": output}
        response = await post_asr(client, params=params, name="Pilot.S01E01.wav")
    assert response.headers["content-type"].startswith(media)
    assert response.headers["content-type"].count("charset") <= 1
    assert f'filename="Pilot.S01E01.{output}"' in response.headers["content-disposition"]
    assert response.headers["asr-engine"] == "faster_whisper"
    assert response.text.startswith(start)


async def test_options_reach_the_engine(
    build_app: AppFactory, fake_transcriber: FakeTranscriber
) -> None:
    """task, language, initial_prompt, vad_filter and word_timestamps are passed on."""
    async with serve(build_app()) as client:
        await post_asr(
            client,
            params={
                "task": "translate",
                "language": "de",
                "initial_prompt": "Namen: Jon",
                "vad_filter": "true",
                "word_timestamps": "true",
            },
        )
    options = fake_transcriber.calls[-1]
    assert (options.task, options.language, options.initial_prompt) == (
        "translate",
        "de",
        "Namen: Jon",
    )
    assert options.vad_filter and options.word_timestamps


async def test_shaping_query_cuts_srt_cues(build_app: AppFactory) -> None:
    """max_words_per_cue in the query cuts the srt into one-word cues."""
    async with serve(build_app()) as client:
        response = await post_asr(client, params={"output": "srt", "max_words_per_cue": "1"})
    assert [s.content for s in srt.parse(response.text)] == ["winter", "is", "coming", "soon"]


async def test_detect_language_answers_the_webservice_fields(
    build_app: AppFactory, fake_transcriber: FakeTranscriber
) -> None:
    """detected_language (full name), language_code, confidence, plus the runners-up."""
    fake_transcriber.language = "de"
    app = build_app()
    async with serve(app) as client:
        response = await post_asr(
            client, "/detect-language", params={"encode": "false"}, data=pcm_bytes(2.0)
        )
        assert len(local_store(service_of(app))) == 0
    assert response.status_code == 200
    assert response.headers["asr-engine"] == "faster_whisper"
    body = response.json()
    assert list(body) == ["detected_language", "language_code", "confidence", "candidates"]
    assert (body["detected_language"], body["language_code"]) == ("german", "de")
    assert body["confidence"] == 0.9
    assert body["candidates"][0] == {
        "detected_language": "german",
        "language_code": "de",
        "confidence": 0.9,
    }
    assert [c["language_code"] for c in body["candidates"]] == ["de", "en", "fr"]
    assert fake_transcriber.calls == []  # detection only, no transcription


@pytest.mark.parametrize(
    "params",
    [
        {"output": "docx"},
        {"task": "summarise"},
        {"language": "klingon"},
        {"encode": "perhaps"},
        {"word_timestamps": "sometimes"},
        {"max_line_width": "-3"},
        {"model": "whisper-9"},
    ],
)
async def test_bad_query_values_are_400_detail(
    build_app: AppFactory, params: dict[str, str]
) -> None:
    """Each bad query value answers 400 with FastAPI's {"detail"} shape."""
    async with serve(build_app()) as client:
        assert_asr_error(await post_asr(client, params=params), 400)


async def test_bad_uploads_are_400_detail(build_app: AppFactory) -> None:
    """Garbage audio, odd-length PCM and a missing file all answer 400 {"detail"}."""
    async with serve(build_app()) as client:
        assert "decode" in assert_asr_error(await post_asr(client, data=b"garbage!"), 400)
        odd = await post_asr(client, "/detect-language", {"encode": "false"}, data=b"\x01\x02\x03")
        assert "odd number" in assert_asr_error(odd, 400)
        missing = await client.post("/asr", data={"x": "y"})
        assert_asr_error(missing, 400)


async def test_too_large_is_413_detail(build_app: AppFactory) -> None:
    """An upload over MAX_UPLOAD_MB answers 413 {"detail"}."""
    async with serve(build_app(max_upload_mb=1)) as client:
        assert_asr_error(await post_asr(client, data=pcm_bytes(40.0)), 413)


async def test_detection_with_english_only_cap_is_400_detail(build_app: AppFactory) -> None:
    """MAX_MODEL=tiny.en cannot detect languages: 400 {"detail"} that says why."""
    async with serve(build_app(max_model="tiny.en")) as client:
        detail = assert_asr_error(await post_asr(client, "/detect-language"), 400)
    assert "detect" in detail


async def test_failed_job_is_500_detail(
    build_app: AppFactory, fake_transcriber: FakeTranscriber
) -> None:
    """A job that fails answers 500 {"detail"} with the reason."""
    fake_transcriber.fail_with = RuntimeError("boom")
    async with serve(build_app()) as client:
        assert "RuntimeError" in assert_asr_error(await post_asr(client), 500)


async def test_queue_full_is_429_detail_with_retry_after(
    build_app: AppFactory, fake_transcriber: FakeTranscriber
) -> None:
    """With one running and one waiting job, /asr answers 429 {"detail"} with Retry-After."""
    gate = threading.Event()
    fake_transcriber.gate = gate
    app = build_app(max_task_queue_size=1)
    async with serve(app) as client:
        service = service_of(app)
        running = asyncio.create_task(post_asr(client))
        await eventually(lambda: service.backend.running_here())
        waiting = asyncio.create_task(post_asr(client, "/detect-language"))
        await eventually(lambda: service.backend.counts().waiting == 1)
        refused = await post_asr(client)
        assert "queue is full" in assert_asr_error(refused, 429)
        assert int(refused.headers["retry-after"]) >= 1
        gate.set()
        results: list[Any] = [await running, await waiting]
        assert [r.status_code for r in results] == [200, 200]


async def test_the_schema_documents_every_output_media_type(build_app: AppFactory) -> None:
    """/asr's 200 is documented with the media type of each output, not JSON alone."""
    async with serve(build_app()) as client:
        schema = (await client.get("/docs/openapi.json")).json()
    answers = schema["paths"]["/asr"]["post"]["responses"]["200"]["content"]
    assert set(answers) == {
        "application/json",
        "text/plain",
        "text/vtt",
        "application/x-subrip",
        "text/tab-separated-values",
    }
