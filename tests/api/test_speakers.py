"""Speaker labels on the HTTP surfaces (fake transcriber, real speaker stage and clips)."""

from __future__ import annotations

import base64
from typing import Any

import openai
import pytest
import srt
import webvtt
from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.asgi_helpers import sse_data
from tests.conftest import AppFactory, FakeTranscriber, wav_bytes
from tests.speaker_helpers import conversation, wav

THREE = ("ljspeech", "librispeech", "jfk")


@pytest.fixture
def talk_wav(fake_transcriber: FakeTranscriber) -> bytes:
    """A 3-voice conversation; the fake transcriber says a word every ~0.5 s over it."""
    talk = conversation(THREE, turns=8)
    words = max(4, int(talk.duration * 2))
    fake_transcriber.text = " ".join(f"w{index}" for index in range(words))
    fake_transcriber.segment_count = 6
    return wav(talk.audio)


async def _post(client: AsyncTestClient[Litestar], route: str, data: bytes, **fields: Any) -> Any:
    files = {"file": ("talk.wav", data, "audio/wav")}
    return await client.post(route, files=files, data=fields)


async def test_openai_sdk_parses_diarized_json(build_app: AppFactory, talk_wav: bytes) -> None:
    """The official SDK returns a TranscriptionDiarized with three lettered speakers."""
    async with AsyncTestClient(app=build_app()) as client:
        sdk = openai.AsyncOpenAI(
            base_url=f"{client.base_url}/v1", api_key="unused", http_client=client, max_retries=0
        )
        result = await sdk.audio.transcriptions.create(
            model="gpt-4o-transcribe-diarize",
            file=("talk.wav", talk_wav, "audio/wav"),
            response_format="diarized_json",
            chunking_strategy="auto",
        )
    assert isinstance(result, openai.types.audio.TranscriptionDiarized)
    assert {segment.speaker for segment in result.segments} == {"A", "B", "C"}
    assert [segment.id for segment in result.segments][:2] == ["seg_0", "seg_1"]
    assert all(s.type == "transcript.text.segment" for s in result.segments)


async def test_known_speaker_references_are_checked(build_app: AppFactory) -> None:
    """Names without clips, more than four, or a clip that is not audio: 400 naming the field."""
    clip = "data:audio/wav;base64," + base64.b64encode(wav_bytes(2.0)).decode()
    cases = [
        ({"known_speaker_names[]": ["Ann"]}, "known_speaker_names[]"),
        (
            {"known_speaker_names[]": list("ABCDE"), "known_speaker_references[]": [clip] * 5},
            "known_speaker_names[]",
        ),
        (
            {"known_speaker_names[]": ["Ann"], "known_speaker_references[]": ["data:,x"]},
            "known_speaker_references[]",
        ),
        (
            {
                "known_speaker_names[]": ["Ann"],
                "known_speaker_references[]": ["data:audio/wav;base64,aGVsbG8="],
            },
            "known_speaker_references[]",
        ),
    ]
    async with AsyncTestClient(app=build_app()) as client:
        for fields, param in cases:
            response = await _post(
                client,
                "/v1/audio/transcriptions",
                wav_bytes(1.0),
                response_format="diarized_json",
                **fields,
            )
            assert response.status_code == 400, response.text
            assert response.json()["error"]["param"] == param, response.text


async def test_diarized_stream_sends_segment_events(build_app: AppFactory, talk_wav: bytes) -> None:
    """stream=true: deltas, then one transcript.text.segment per segment, then done."""
    async with AsyncTestClient(app=build_app()) as client:
        response = await _post(
            client,
            "/v1/audio/transcriptions",
            talk_wav,
            response_format="diarized_json",
            stream="true",
        )
    events = sse_data(response.text)
    kinds = [event["type"] for event in events]
    assert kinds[0] == "transcript.text.delta" and kinds[-1] == "transcript.text.done"
    segments = [event for event in events if event["type"] == "transcript.text.segment"]
    assert segments and kinds.index("transcript.text.segment") > kinds.index(
        "transcript.text.delta"
    )
    assert {event["speaker"] for event in segments} == {"A", "B", "C"}


async def test_diarized_json_refused_for_translations(build_app: AppFactory) -> None:
    """Translations have no diarized_json, as at OpenAI."""
    async with AsyncTestClient(app=build_app()) as client:
        response = await _post(
            client, "/v1/audio/translations", wav_bytes(1.0), response_format="diarized_json"
        )
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "response_format"


async def test_task_api_diarize_gives_voices_in_vtt_and_srt(
    build_app: AppFactory, talk_wav: bytes
) -> None:
    """diarize=true with max_speakers: VTT voice spans (webvtt-py), SRT prefixes (srt), json."""
    async with AsyncTestClient(app=build_app()) as client:
        task = (
            await _post(client, "/api/v1/transcribe", talk_wav, diarize="true", max_speakers="3")
        ).json()
        task_id = task["task_id"]
        for _ in range(400):
            status = (await client.get(f"/api/v1/tasks/{task_id}")).json()["status"]
            if status in ("finished", "failed"):
                break
            await __import__("asyncio").sleep(0.05)
        assert status == "finished"
        result = f"/api/v1/tasks/{task_id}/result"
        vtt = (await client.get(result, params={"format": "vtt"})).text
        srt_text = (await client.get(result, params={"format": "srt"})).text
        body = (await client.get(result, params={"format": "json"})).json()
    voices = {caption.voice for caption in webvtt.from_string(vtt).captions}
    assert voices == {"A", "B", "C"}
    assert all(cue.content[:3] in ("A: ", "B: ", "C: ") for cue in srt.parse(srt_text))
    assert {segment["speaker"] for segment in body["segments"]} == {"A", "B", "C"}
    # Word timings were only needed for the labels: not asked for, not returned.
    assert all(segment["words"] is None for segment in body["segments"])


async def test_asr_accepts_whisper_asr_webservice_diarize(
    build_app: AppFactory, talk_wav: bytes
) -> None:
    """/asr?diarize=true&min_speakers=2&max_speakers=3&output=txt answers one line per turn."""
    async with AsyncTestClient(app=build_app()) as client:
        response = await client.post(
            "/asr",
            params={"diarize": "true", "min_speakers": "2", "max_speakers": "3", "output": "txt"},
            files={"audio_file": ("talk.wav", talk_wav, "audio/wav")},
        )
    assert response.status_code == 200, response.text
    starts = {line.split(":")[0] for line in response.text.splitlines()}
    assert starts == {"A", "B", "C"}


async def test_bad_speaker_counts_are_refused(build_app: AppFactory) -> None:
    """min above max, or a count that is not a whole number from 1, is a 400."""
    async with AsyncTestClient(app=build_app()) as client:
        for fields in ({"min_speakers": "3", "max_speakers": "2"}, {"num_speakers": "0"}):
            response = await _post(
                client, "/api/v1/transcribe", wav_bytes(1.0), diarize="true", **fields
            )
            assert response.status_code == 400, response.text


async def test_openai_sdk_streams_diarized_segments(build_app: AppFactory, talk_wav: bytes) -> None:
    """The SDK's stream yields typed segment events with speakers, then the done event."""
    async with AsyncTestClient(app=build_app()) as client:
        sdk = openai.AsyncOpenAI(
            base_url=f"{client.base_url}/v1", api_key="unused", http_client=client, max_retries=0
        )
        stream = await sdk.audio.transcriptions.create(
            model="gpt-4o-transcribe-diarize",
            file=("talk.wav", talk_wav, "audio/wav"),
            response_format="diarized_json",
            stream=True,
        )
        events = [event async for event in stream]
    segments = [
        e for e in events if isinstance(e, openai.types.audio.TranscriptionTextSegmentEvent)
    ]
    assert {segment.speaker for segment in segments} == {"A", "B", "C"}
    assert isinstance(events[-1], openai.types.audio.TranscriptionTextDoneEvent)
