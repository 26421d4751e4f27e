"""The OpenAI-compatible routes on a fake transcriber: formats, options, streaming, every error."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import srt
import webvtt

from tests.asgi_helpers import eventually, local_store, serve, service_of, sse_data
from tests.conftest import AppFactory, FakeTranscriber, wav_bytes

TRANSCRIBE = "/v1/audio/transcriptions"
TRANSLATE = "/v1/audio/translations"
ERROR_KEYS = ["message", "type", "param", "code"]


@pytest.fixture
async def client(build_app: AppFactory) -> AsyncIterator[httpx.AsyncClient]:
    """A client on an app with the fake transcriber and default settings."""
    async with serve(build_app()) as test_client:
        yield test_client


async def post_audio(
    client: httpx.AsyncClient,
    route: str = TRANSCRIBE,
    data: bytes | None = None,
    fields: dict[str, Any] | None = None,
) -> httpx.Response:
    """POST a WAV as OpenAI's SDK does: multipart `file` plus form fields."""
    form: dict[str, Any] = {"model": "whisper-1"} | (fields or {})
    files = {"file": ("speech.wav", wav_bytes(2.0) if data is None else data, "audio/wav")}
    return await client.post(route, files=files, data=form)


def assert_openai_error(response: Any, status: int, param: str | None = None) -> dict[str, Any]:
    """The body is exactly OpenAI's error shape, with this status and param."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert list(body) == ["error"]
    assert list(body["error"]) == ERROR_KEYS
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert body["error"]["param"] == param
    error: dict[str, Any] = body["error"]
    return error


@pytest.fixture
def fake_transcriber() -> FakeTranscriber:
    """A fake that speaks five words in three segments."""
    return FakeTranscriber(text="hello there general kenobi again", segment_count=3)


async def test_json_is_text_and_duration_usage(client: httpx.AsyncClient) -> None:
    """response_format=json (the default) answers text and usage in whole seconds."""
    response = await post_audio(client, fields={"model": "whisper-1"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == {
        "text": "hello there general kenobi again",
        "usage": {"type": "duration", "seconds": 2},
    }


async def test_text_srt_vtt_have_their_content_types(client: httpx.AsyncClient) -> None:
    """text is plain text with a newline; srt and vtt parse and carry their media types."""
    text = await post_audio(client, fields={"response_format": "text"})
    assert text.headers["content-type"] == "text/plain; charset=utf-8"
    assert text.text == "hello there general kenobi again\n"

    srt_response = await post_audio(client, fields={"response_format": "srt"})
    assert srt_response.headers["content-type"].startswith("application/x-subrip")
    subtitles = list(srt.parse(srt_response.text))
    assert [s.index for s in subtitles] == [1, 2, 3]
    assert subtitles[-1].end.total_seconds() == pytest.approx(2.0)

    vtt_response = await post_audio(client, fields={"response_format": "vtt"})
    assert vtt_response.headers["content-type"] == "text/vtt; charset=utf-8"
    captions = list(webvtt.from_string(vtt_response.text))
    assert " ".join(c.text for c in captions) == "hello there general kenobi again"


async def test_srt_honours_shaping_fields(client: httpx.AsyncClient) -> None:
    """max_words_per_cue as a form field cuts srt cues (an extension OpenAI lacks)."""
    response = await post_audio(client, fields={"response_format": "srt", "max_words_per_cue": "1"})
    assert len(list(srt.parse(response.text))) == 5


async def test_verbose_json_with_words_and_segments(
    client: httpx.AsyncClient, fake_transcriber: FakeTranscriber
) -> None:
    """Both granularities: OpenAI's verbose_json with segments and top-level words."""
    response = await post_audio(
        client,
        fields={
            "response_format": "verbose_json",
            "timestamp_granularities[]": ["word", "segment"],
            "language": "en",
        },
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert list(body) == ["task", "language", "duration", "text", "segments", "words", "usage"]
    assert body["task"] == "transcribe"
    assert body["language"] == "english"
    assert [w["word"] for w in body["words"]] == ["hello", "there", "general", "kenobi", "again"]
    assert len(body["segments"]) == 3
    assert fake_transcriber.calls[-1].word_timestamps is True


async def test_verbose_json_word_granularity_only_drops_segments(
    client: httpx.AsyncClient,
) -> None:
    """Only word granularity: words but no segments, as OpenAI answers."""
    response = await post_audio(
        client,
        fields={"response_format": "verbose_json", "timestamp_granularities[]": "word"},
    )
    body = response.json()
    assert "segments" not in body and len(body["words"]) == 5


async def test_translation_verbose_json_is_a_translate_task(
    client: httpx.AsyncClient, fake_transcriber: FakeTranscriber
) -> None:
    """Translations run as translate jobs and report english in verbose_json."""
    fake_transcriber.language = "de"
    response = await post_audio(client, TRANSLATE, fields={"response_format": "verbose_json"})
    body = response.json()
    assert (body["task"], body["language"]) == ("translate", "english")
    assert fake_transcriber.calls[-1].task == "translate"


async def test_options_reach_the_engine(
    client: httpx.AsyncClient, fake_transcriber: FakeTranscriber
) -> None:
    """language, prompt, temperature and model are passed on; 0 means automatic fallback."""
    await post_audio(
        client,
        fields={"language": "German", "prompt": "Grüße", "temperature": "0", "model": "base"},
    )
    await post_audio(client, fields={"temperature": "0.4"})
    automatic, fixed = fake_transcriber.calls[-2:]
    assert automatic.language == "de"
    assert automatic.initial_prompt == "Grüße"
    assert automatic.model == "base"
    assert isinstance(automatic.temperature, tuple) and automatic.temperature[0] == 0.0
    assert len(automatic.temperature) > 1
    assert fixed.temperature == (0.4,)
    assert fixed.model is None  # whisper-1: the server's choice


async def test_synchronous_jobs_are_not_kept(build_app: AppFactory) -> None:
    """Once answered, a synchronous job is erased from the task store."""
    app = build_app()
    async with serve(app) as client:
        assert (await post_audio(client)).status_code == 200
        assert len(local_store(service_of(app))) == 0


async def test_stream_sends_deltas_then_done_with_full_text(
    client: httpx.AsyncClient,
) -> None:
    """stream=true: one delta per segment, then done whose text equals the joined deltas."""
    response = await post_audio(client, fields={"stream": "true"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = sse_data(response.text)
    deltas = [e["delta"] for e in events if e["type"] == "transcript.text.delta"]
    done = events[-1]
    assert len(deltas) == 3
    assert done == {
        "type": "transcript.text.done",
        "text": "hello there general kenobi again",
        "usage": {"type": "duration", "seconds": 2},
    }
    assert "".join(deltas).strip() == done["text"]
    assert not deltas[0].startswith(" ")


async def test_stream_of_a_failed_job_ends_with_an_error_event(
    client: httpx.AsyncClient, fake_transcriber: FakeTranscriber
) -> None:
    """A job that fails mid-stream ends the stream with an OpenAI error object."""
    fake_transcriber.fail_with = RuntimeError("boom")
    response = await post_audio(client, fields={"stream": "true"})
    error = sse_data(response.text)[-1]["error"]
    assert list(error) == ERROR_KEYS
    assert "RuntimeError" in error["message"]


async def test_failed_job_is_a_server_error(
    client: httpx.AsyncClient, fake_transcriber: FakeTranscriber
) -> None:
    """A job that fails answers 500 in OpenAI's shape with the reason."""
    fake_transcriber.fail_with = RuntimeError("boom")
    error = assert_openai_error(await post_audio(client), 500)
    assert error["type"] == "server_error"
    assert "RuntimeError" in error["message"]


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"response_format": "docx"}, "response_format"),
        ({"timestamp_granularities[]": "word"}, "timestamp_granularities"),
        (
            {"response_format": "srt", "timestamp_granularities[]": "word"},
            "timestamp_granularities",
        ),
        (
            {"response_format": "verbose_json", "timestamp_granularities[]": "letter"},
            "timestamp_granularities",
        ),
        ({"model": "whisper-9"}, "model"),
        ({"language": "klingon"}, "language"),
        ({"temperature": "1.5"}, "temperature"),
        ({"temperature": "warm"}, "temperature"),
        ({"stream": "maybe"}, "stream"),
        ({"response_format": "srt", "max_line_width": "0"}, "max_line_width"),
    ],
)
async def test_bad_fields_are_400_naming_the_param(
    client: httpx.AsyncClient, fields: dict[str, str], param: str
) -> None:
    """Each bad field answers 400 invalid_request_error naming that field."""
    error = assert_openai_error(await post_audio(client, fields=fields), 400, param)
    assert error["type"] == "invalid_request_error"


async def test_model_above_max_model_is_400(build_app: AppFactory) -> None:
    """A catalogue model above MAX_MODEL is refused with code model_not_allowed."""
    async with serve(build_app(max_model="base")) as client:
        error = assert_openai_error(
            await post_audio(client, fields={"model": "small"}), 400, "model"
        )
        assert error["code"] == "model_not_allowed"
        assert (await post_audio(client, fields={"model": "tiny"})).status_code == 200


async def test_translation_with_english_only_cap_is_400(build_app: AppFactory) -> None:
    """MAX_MODEL=tiny.en cannot translate: 400 in OpenAI's shape, saying why."""
    async with serve(build_app(max_model="tiny.en")) as client:
        error = assert_openai_error(await post_audio(client, TRANSLATE), 400, "model")
        assert "translate" in error["message"]


async def test_bad_uploads_are_400_on_file(client: httpx.AsyncClient) -> None:
    """Garbage, an empty file, no file at all, and a non-multipart body all answer 400."""
    garbage = assert_openai_error(await post_audio(client, data=b"not audio at all"), 400, "file")
    assert garbage["code"] == "undecodable_audio"
    assert_openai_error(await post_audio(client, data=b""), 400, "file")
    no_file = await client.post(TRANSCRIBE, data={"model": "whisper-1"}, files={"x": ("", b"")})
    assert no_file.status_code == 400
    not_multipart = await client.post(TRANSCRIBE, json={"model": "whisper-1"})
    assert_openai_error(not_multipart, 400)


async def test_too_large_is_413(build_app: AppFactory) -> None:
    """An upload over MAX_UPLOAD_MB answers 413 in OpenAI's shape."""
    async with serve(build_app(max_upload_mb=1)) as client:
        big = wav_bytes(40.0)  # 1.28 MB
        error = assert_openai_error(await post_audio(client, data=big), 413, "file")
        assert error["code"] == "file_too_large"


async def test_queue_full_is_429_with_retry_after(
    build_app: AppFactory, fake_transcriber: FakeTranscriber
) -> None:
    """With one running and one waiting job, the next request is 429 with Retry-After."""
    gate = threading.Event()
    fake_transcriber.gate = gate
    app = build_app(max_task_queue_size=1)
    async with serve(app) as client:
        service = service_of(app)
        running = asyncio.create_task(post_audio(client))
        await eventually(lambda: service.backend.running_here())
        waiting = asyncio.create_task(post_audio(client))
        await eventually(lambda: service.backend.counts().waiting == 1)
        refused = await post_audio(client)
        error = assert_openai_error(refused, 429)
        assert error["type"] == "rate_limit_error"
        assert int(refused.headers["retry-after"]) >= 1
        gate.set()
        assert (await running).status_code == (await waiting).status_code == 200


async def test_models_list_what_can_be_loaded(build_app: AppFactory) -> None:
    """/v1/models lists whisper-1, the diarize alias and the offline models within the cap;
    unknown ids are 404."""
    async with serve(build_app(max_model="tiny.en")) as client:
        listing = (await client.get("/v1/models")).json()
        assert listing["object"] == "list"
        assert [m["id"] for m in listing["data"]] == [
            "whisper-1",
            "gpt-4o-transcribe-diarize",
            "tiny.en",
        ]
        assert all(m["object"] == "model" and m["owned_by"] for m in listing["data"])
        one = await client.get("/v1/models/tiny.en")
        assert one.json()["id"] == "tiny.en"
        missing = await client.get("/v1/models/base")
        assert assert_openai_error(missing, 404, "model")["code"] == "model_not_found"
    async with serve(build_app()) as client:
        ids = [m["id"] for m in (await client.get("/v1/models")).json()["data"]]
        assert ids == ["whisper-1", "gpt-4o-transcribe-diarize", "tiny.en", "base"]


async def test_client_disconnect_cancels_the_job(
    build_app: AppFactory, fake_transcriber: FakeTranscriber
) -> None:
    """A client that hangs up while its job runs cancels the job and frees the worker."""
    gate = threading.Event()
    fake_transcriber.gate = gate
    app = build_app()
    async with serve(app):  # the worker runs on this loop
        service = service_of(app)
        boundary = "xyz"
        body = (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n'
                f"Content-Type: audio/wav\r\n\r\n"
            ).encode()
            + wav_bytes(1.0)
            + f"\r\n--{boundary}--\r\n".encode()
        )
        hang_up = asyncio.Event()
        sent: list[dict[str, Any]] = []
        delivered = False

        async def receive() -> dict[str, Any]:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            await hang_up.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": TRANSCRIBE,
            "raw_path": TRANSCRIBE.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": [
                (b"content-type", f"multipart/form-data; boundary={boundary}".encode()),
                (b"content-length", str(len(body)).encode()),
            ],
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 80),
        }
        call = asyncio.create_task(app(scope, receive, send))  # type: ignore[arg-type]
        await eventually(lambda: service.backend.running_here())
        hang_up.set()
        await asyncio.wait_for(call, 5)
        await eventually(lambda: not service.backend.running_here())
        assert len(local_store(service)) == 0
        assert not gate.is_set()  # the job stopped on cancellation, not because it was let go
